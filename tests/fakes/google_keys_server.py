"""A fake of Google's callback root-keys URL (WALLET_GOOGLE_KEYS_URL), served by uvicorn on loopback
in a background thread: `GET /gp/m/issuer/keys` answers a SigningChain's keys_json() (or any bytes
set) with `Cache-Control: public, max-age=<n>`, and counts the requests it gets.

    chain = SigningChain(now_ms=now_ms(), issuer_id=ISSUER)
    with FakeGoogleKeysServer(chain.keys_json(), max_age=3600) as keys:
        server = server_factory(WALLET_GOOGLE_KEYS_URL=keys.url, ...)
        ...
        assert keys.requests == 1
        keys.fail_with(500)     # the keys URL is down (answers 500) ...
        keys.fail_with(None)    # ... and back
        keys.delay = 0.5        # answers take half a second (concurrent fetches pile up here)
"""

from __future__ import annotations

import threading

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.fakes.loopback import LoopbackServer

PATH = "/gp/m/issuer/keys"


class FakeGoogleKeysServer(LoopbackServer):
    thread_name = "fake-google-keys"

    def __init__(self, body: bytes, *, max_age: int | None = 3600, host: str = "127.0.0.1") -> None:
        super().__init__(host)
        self._lock = threading.Lock()
        self._body = body
        self.max_age = max_age  # None: no Cache-Control header
        self.delay = 0.0  # seconds before each answer
        self._fail_status: int | None = None
        self._requests = 0
        self._in_flight = 0
        self.max_in_flight = 0  # the most requests ever answered at once
        self.app = Starlette(routes=[Route(PATH, self._keys, methods=["GET"])])

    # -- configuration and observation -----------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}{PATH}"

    @property
    def requests(self) -> int:
        with self._lock:
            return self._requests

    def set_body(self, body: bytes) -> None:
        with self._lock:
            self._body = body

    def fail_with(self, status: int | None) -> None:
        """Answer every request with this status (and no keys); None: serve the keys again."""
        with self._lock:
            self._fail_status = status

    # -- lifecycle ---------------------------------------------------------------------------------

    # -- the endpoint ----------------------------------------------------------------------------
    async def _keys(self, request: Request) -> Response:
        with self._lock:
            self._requests += 1
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
            body, status, max_age, delay = self._body, self._fail_status, self.max_age, self.delay
        try:
            if delay:
                await anyio.sleep(delay)
            if status is not None:
                return Response(b'{"error":"unavailable"}', status_code=status, media_type="application/json")
            headers = {"Cache-Control": f"public, max-age={max_age}"} if max_age is not None else {}
            return Response(body, media_type="application/json", headers=headers)
        finally:
            with self._lock:
                self._in_flight -= 1
