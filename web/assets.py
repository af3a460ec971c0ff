"""Public pass images of each program (`GET /assets/{program}/{name}.png`), for Google Wallet.

Google fetches a LoyaltyClass's `programLogo` (and `heroImage`) from a public URL (facts:
../shared/facts/google-wallet.md §1.3), so the images of the program's template, the same files the
Apple pass carries, are served here. Only the template's own PNG images are served, from the copies
read at load (passes/programs.py): the name is looked up among them, never joined to a path, so
nothing else of the template folder (program.json, pass.strings) or of the disk can be reached,
and there is no directory listing.

The URLs themselves are built by passes/assets.py (pure; service/google.py uses them for the classes).
"""

from __future__ import annotations

from typing import Final

from starlette.requests import Request
from starlette.responses import Response

from passes.programs import Program
from web.errors import ApiError

PNG_TYPE: Final = "image/png"
# A month: the URL does not change when the template's image does (a deploy), so not "immutable";
# the ETag lets a cache revalidate cheaply after that.
CACHE_CONTROL: Final = "public, max-age=2592000"


def asset_names(program: Program) -> tuple[str, ...]:
    """The names the route serves for `program`: its template's PNG images, without `.png`."""
    return tuple(f.name[: -len(".png")] for f in program.images if "/" not in f.name)


async def program_asset(request: Request) -> Response:
    programs = request.app.state.services.programs
    program = programs.get(request.path_params["program"])
    if program is None:
        raise ApiError(404, "unknown_program", "no such program")
    name = request.path_params["name"]
    found = program.file(name + ".png") if name in asset_names(program) else None
    if found is None:
        # the code is the closest ERROR_CODES (web/routing.py) has for "no such image"
        raise ApiError(404, "unknown_asset", "the program has no such image")
    etag = f'"{found.sha1}"'
    headers = {"Cache-Control": CACHE_CONTROL, "ETag": etag}
    if etag in (tag.strip() for tag in request.headers.get("if-none-match", "").split(",")):
        return Response(status_code=304, headers=headers)
    return Response(found.data, media_type=PNG_TYPE, headers=headers)
