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

import socket
import threading
import time

import anyio
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

PATH = "/gp/m/issuer/keys"


class FakeGoogleKeysServer:
    def __init__(self, body: bytes, *, max_age: int | None = 3600, host: str = "127.0.0.1") -> None:
        self.host = host
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((host, 0))
        self.port: int = self._sock.getsockname()[1]
        self._lock = threading.Lock()
        self._body = body
        self.max_age = max_age  # None: no Cache-Control header
        self.delay = 0.0  # seconds before each answer
        self._fail_status: int | None = None
        self._requests = 0
        self._in_flight = 0
        self.max_in_flight = 0  # the most requests ever answered at once
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
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
    def start(self) -> None:
        config = uvicorn.Config(self.app, log_level="warning", lifespan="off", access_log=False)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True, name="fake-google-keys"
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("fake Google keys server did not start")
            time.sleep(0.005)

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=10)
        self._sock.close()

    def __enter__(self) -> FakeGoogleKeysServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

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
