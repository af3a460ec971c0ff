"""A fake ledger backend receiving the enrolment webhook on loopback: it verifies `X-Wallet-Signature`
with the secret it was given (as the real backend would, ledger/signature.py verify), records every
call, and answers from a script (`script(500, 500)` makes the next two calls fail), else 200::

    with FakeWebhookServer(secret) as hook:
        url = hook.url
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ledger.signature import verify
from tests.fakes.loopback import LoopbackServer

PATH = "/ledger/members"


@dataclass(frozen=True)
class WebhookCall:
    headers: dict[str, str]
    raw: bytes
    body: Any
    signature_problem: str | None  # None: the signature verified
    status: int  # what the fake answered


class FakeWebhookServer(LoopbackServer):
    thread_name = "fake-webhook"

    def __init__(self, secret: str, host: str = "127.0.0.1") -> None:
        super().__init__(host)
        self.secret = secret
        self.calls: list[WebhookCall] = []
        self._script: deque[int] = deque()
        self._lock = threading.Lock()
        self.app = Starlette(routes=[Route(PATH, self._receive, methods=["POST"])])

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}{PATH}"

    def script(self, *statuses: int) -> None:
        """The statuses of the next calls, in order (then 200 again)."""
        with self._lock:
            self._script.extend(statuses)

    def wait_for(self, count: int, timeout: float = 20.0) -> list[WebhookCall]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.calls) >= count:
                    return list(self.calls)
            time.sleep(0.05)
        raise AssertionError(f"expected {count} webhook calls, got {len(self.calls)}")

    async def _receive(self, request: Request) -> Response:
        raw = await request.body()
        problem = verify(self.secret, request.headers.get("x-wallet-signature"), raw, time.time())
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        with self._lock:
            status = self._script.popleft() if self._script else 200
            if problem is not None:
                status = 401
            self.calls.append(WebhookCall(dict(request.headers), raw, body, problem, status))
        return JSONResponse({"ok": status < 300}, status_code=status)
