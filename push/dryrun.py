"""A sender that sends nothing: every push is recorded in the store's push journal and "ok".

Used in dev (WALLET_PUSH_DRY_RUN=1) in place of ApnsSender and FcmSender; it has the methods
of both, so the worker cannot tell the difference.
"""

from __future__ import annotations

import time
from typing import Any, Callable

from push.results import PushResult
from store.port import Store

JOURNAL_KEEP = 1000


class DryRunSender:
    records_pushes = True  # the worker need not journal its deliveries again

    def __init__(
        self,
        store: Store,
        *,
        pass_type_id: str | None = None,
        keep: int = JOURNAL_KEEP,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.pass_type_id = pass_type_id
        self.keep = keep
        self.clock = clock

    async def _record(self, record: dict[str, Any]) -> PushResult:
        # The journal lives in the same store as the registrations the tokens came from.
        await self.store.record_push({**record, "dry_run": True}, self.clock(), self.keep)
        return PushResult("ok")

    async def send_pass_update(self, push_token: str) -> PushResult:
        return await self._record(
            {"channel": "apns", "kind": "pass_update", "pass_type_id": self.pass_type_id,
             "token": push_token, "payload": {}}
        )

    async def send_alert(
        self, token: str, title: str, body: str, data: dict[str, Any] | None = None
    ) -> PushResult:
        return await self._record(
            {"channel": "apns", "kind": "alert", "token": token, "title": title, "body": body,
             "data": dict(data or {})}
        )

    async def send(
        self, token: str, title: str, body: str, data: dict[str, Any] | None = None
    ) -> PushResult:
        return await self._record(
            {"channel": "fcm", "kind": "alert", "token": token, "title": title, "body": body,
             "data": dict(data or {})}
        )

    async def close(self) -> None:
        return None
