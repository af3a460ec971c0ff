"""/readyz answered in process for given settings: web/ops.py's handler with a store that answers
and certificates without problems, the body checked against the documented READINESS schema."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx
import jsonschema
from starlette.applications import Starlette
from starlette.routing import Route

from config.settings import Settings
from web import ops, schemas


@dataclass
class _Report:
    problems: list[str] = field(default_factory=list)
    expiry: dict[str, float] = field(default_factory=lambda: {"pass": 300.0})


class _Certs:
    async def current(self) -> _Report:
        return _Report()


class _Store:
    async def ping(self) -> bool:
        return True


@dataclass
class _Services:
    """What readyz reads of web/services.Services."""

    settings: Settings
    store: Any = field(default_factory=_Store)
    certs: Any = field(default_factory=_Certs)


async def readyz(settings: Settings) -> tuple[int, dict[str, Any]]:
    app = Starlette(routes=[Route("/readyz", ops.readyz)])
    app.state.services = _Services(settings)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        response = await client.get("/readyz")
    body = response.json()
    jsonschema.validate(body, schemas.READINESS.schema(None))  # type: ignore[arg-type]
    return response.status_code, body
