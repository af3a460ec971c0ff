"""The stores page: the table with search, the create/edit/delete form, CSV/GeoJSON import with every bad
row shown, and the map of all stores. Fields are checked by web/stores.py's own readers (as PUT and
POST /v1/stores/import do), so the console accepts exactly what the API accepts."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import anyio
from starlette.datastructures import UploadFile
from starlette.responses import Response

from geo.locations import StoreLocation
from web import stores as api
from web.console.common import Console, console_route, form_float, page, see_other
from web.errors import ApiError

PATH = "/console/stores"
FIELDS = ("id", "program", "name", "lat", "lon", "address", "timezone")


def map_data(console: Console, locations: Sequence[StoreLocation], radius_m: int | None = None) -> str:
    """The map's data (the data-map attribute the page script reads): stores, radius, tile URL."""
    return json.dumps(
        {
            "tiles": console.services.settings.tiles_url,
            "radius_m": radius_m,
            "stores": [{"id": s.id, "name": s.name, "lat": s.lat, "lon": s.lon} for s in locations],
        },
        ensure_ascii=False,
    )


def _matches(loc: StoreLocation, query: str) -> bool:
    query = query.casefold()
    return query in loc.name.casefold() or query in loc.id.casefold()


async def _page(
    console: Console,
    *,
    editing: StoreLocation | None = None,
    values: dict[str, Any] | None = None,
    error: str = "",
    import_errors: list[dict[str, Any]] | None = None,
    status_code: int = 200,
) -> Response:
    request = console.request
    every = await console.services.store.list_store_locations(None)
    query = request.query_params.get("q", "").strip()[:100]
    shown = [loc for loc in every if _matches(loc, query)] if query else every
    if values is None:
        values = (
            {
                "id": editing.id,
                "program": editing.program,
                "name": editing.name,
                "lat": editing.lat,
                "lon": editing.lon,
                "address": editing.address,
                "timezone": editing.timezone,
            }
            if editing is not None
            else {**dict.fromkeys(FIELDS, ""), "program": next(iter(sorted(console.services.programs)), "")}
        )
    notice = {"saved": "saved", "deleted": "deleted"}.get(request.query_params.get("done", ""), "")
    imported = request.query_params.get("imported", "")
    return page(
        request,
        "console/stores.html",
        {
            "stores": shown,
            "total": len(every),
            "query": query,
            "values": values,
            "editing": editing is not None or bool(values.get("editing")),
            "programs": sorted(console.services.programs),
            "error": error,
            "import_errors": import_errors,
            "notice": notice,
            "imported": imported if imported.isdigit() else "",
            "map": map_data(console, shown),
        },
        language=console.language,
        role=console.role,
        section="stores",
        status_code=status_code,
    )


@console_route
async def console_stores(console: Console) -> Response:
    edit = console.request.query_params.get("edit", "")
    editing = await console.services.store.get_store_location(edit) if api.ID_RE.fullmatch(edit) else None
    return await _page(console, editing=editing)


@console_route
async def console_save_store(console: Console) -> Response:
    values: dict[str, Any] = {name: console.field(name) for name in FIELDS}
    values["editing"] = console.field("editing") == "1"
    body: dict[str, Any] = {
        "program": values["program"],
        "name": values["name"],
        "lat": form_float(values["lat"]),
        "lon": form_float(values["lon"]),
        "address": values["address"] or None,
        "timezone": values["timezone"] or None,
    }
    try:
        if not api.ID_RE.fullmatch(values["id"]):
            raise ApiError(400, "invalid_field", "id: 1 to 64 of A-Z a-z 0-9 . _ -")
        location = await api._location(values["id"], body, console.services.programs)
    except ApiError as exc:
        return await _page(console, values=values, error=exc.message, status_code=400)
    await console.services.store.put_store_location(location)
    return see_other(f"{PATH}?done=saved")


@console_route
async def console_delete_store(console: Console) -> Response:
    location_id = console.request.path_params["id"]
    if api.ID_RE.fullmatch(location_id):
        await console.services.store.delete_store_location(location_id)
    return see_other(f"{PATH}?done=deleted")


def _media_type(upload: UploadFile) -> str:
    name = (upload.filename or "").lower()
    if name.endswith(".csv") or (upload.content_type or "").startswith("text/csv"):
        return "text/csv"
    return "application/geo+json"


@console_route
async def console_import_stores(console: Console) -> Response:
    upload = console.form.get("file") if console.form is not None else None
    if not isinstance(upload, UploadFile):
        return await _page(console, import_errors=[{"line": 0, "reason": "no file"}], status_code=400)
    raw = await upload.read(api.IMPORT_MAX_BYTES + 1)
    rows = api._Rows(console.services.programs)
    if len(raw) > api.IMPORT_MAX_BYTES:
        rows.fail(0, f"the file is over {api.IMPORT_MAX_BYTES} bytes")
    else:
        # the same parsers as POST /v1/stores/import, in a worker thread for the zone look-ups
        parse = api._csv_rows if _media_type(upload) == "text/csv" else api._geojson_rows
        try:
            await anyio.to_thread.run_sync(parse, raw, rows)
        except ApiError as exc:  # GeoJSON that is not JSON at all
            rows.fail(0, exc.message)
    if rows.errors:
        return await _page(console, import_errors=rows.errors, status_code=400)
    await console.services.store.put_store_locations(rows.locations)
    return see_other(f"{PATH}?imported={len(rows.locations)}")
