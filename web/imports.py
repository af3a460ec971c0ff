"""Bulk import over HTTP (role `issuer`): a CSV of an existing member base becomes a job (service/imports.py)."""

from __future__ import annotations

import re
import time
from typing import Any

import anyio
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from cards.bounds import POINTS_MAX, decimal
from service.imports import MAX_BYTES, ImportRunner, job_id_for, new_job, parse_csv, progress, result_lines
from store.port import ImportJob
from web.auth import require_role
from web.body import read_body
from web.errors import ApiError
from web.services import Services

ROLES = ("issuer",)
JOB_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def _services(request: Request) -> Services:
    return request.app.state.services


def _runner(request: Request) -> ImportRunner:
    return request.app.state.import_runner


def _welcome_bonus(request: Request) -> int:
    text = request.query_params.get("welcome_bonus")
    if text is None or text == "":
        return 0
    value = decimal(text, 13)
    if value is None or value > POINTS_MAX:
        raise ApiError(400, "invalid_query", f"welcome_bonus: a whole number from 0 to {POINTS_MAX}")
    return value


async def import_cards(request: Request) -> Response:
    require_role(request, *ROLES)
    services = _services(request)
    name = request.query_params.get("program") or ""
    program = services.programs.get(name)
    if program is None:
        raise ApiError(404, "unknown_program", f"program {name!r} does not exist")
    bonus = _welcome_bonus(request)
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != "text/csv":
        raise ApiError(415, "unsupported_media_type", "Content-Type must be text/csv")
    raw = await read_body(request, MAX_BYTES)
    # 100 000 phone numbers take seconds to parse: in a worker thread, so the event loop keeps serving
    parsed = await anyio.to_thread.run_sync(parse_csv, raw, program)
    if parsed.errors:
        shown = "" if parsed.bad_cells == len(parsed.errors) else f", the first {len(parsed.errors)} listed"
        return JSONResponse(
            {
                "error": {
                    "code": "invalid_rows",
                    "message": f"{parsed.bad_cells} problems{shown}; nothing imported",
                },
                "errors": parsed.errors,
            },
            status_code=422,
        )
    runner = _runner(request)
    job_id = job_id_for(program.program, bonus, raw)
    job = new_job(job_id, program.program, len(parsed.rows), bonus, time.time(), "http")
    if await services.store.create_import_job(job, parsed.rows):
        runner.submit(job_id, stored_here=True)
    else:
        # the same file again: its job, resumed if its runner died
        existing = await services.store.get_import_job(job_id)
        if existing is not None and runner.abandoned(existing):
            runner.submit(job_id)
    return JSONResponse({"job": job_id}, status_code=202)


async def _job(request: Request) -> ImportJob:
    require_role(request, *ROLES)
    job_id = request.path_params["id"]
    job = await _services(request).store.get_import_job(job_id) if JOB_ID_RE.fullmatch(job_id) else None
    if job is None:
        raise ApiError(404, "unknown_job", "no such job")
    return job


async def get_job(request: Request) -> Response:
    job = await _job(request)
    runner = _runner(request)
    if runner.abandoned(job):
        runner.submit(job.id)  # whoever watches a job whose runner died gets it finished
    body: dict[str, Any] = progress(job, time.time(), runner.live.get(job.id))
    return JSONResponse(body)


async def job_result(request: Request) -> Response:
    job = await _job(request)
    if job.state != "done":
        raise ApiError(409, "job_not_done", f"the job is {job.state}")
    services = _services(request)
    lines = result_lines(services.store, job, services.settings, time.time())
    return StreamingResponse(
        lines,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{job.id}.csv"', "Cache-Control": "no-store"},
    )
