"""A signed JSON webhook: one POST per message to a fixed URL, signed as ledger posts are
(`X-Wallet-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`, ledger/signature.py),
so the ledger backend checks our announcements with the code that we use to check its posts.

Answers map into PushResult: 2xx done; 429, 5xx, timeouts and connection errors retry (the worker
backs off; Retry-After is a floor); any other 4xx failed (dead-lettered: sending the same body
again cannot help). `X-Wallet-Delivery` carries the delivery's id, the same on every retry, so
the receiver can tell a retry of a delivery it processed (its answer was lost) from a new one.
Bodies hold personal data: nothing of them is logged, only statuses.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import httpx

from ledger.signature import sign
from push.channels.base import Channel, Push
from push.channels.fcm import parse_retry_after
from push.results import PushResult

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class WebhookPush:
    """One delivery: its id (the same on every retry) and the exact JSON bytes to sign and send."""

    delivery: str
    body: bytes


class WebhookChannel(Channel):
    def __init__(
        self,
        url: str,
        secret: str,
        *,
        name: str = "webhook",
        timeout: float = 10.0,  # well under the worker's lease
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.name = name
        self.url = url
        self._secret = secret
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)), transport=transport, follow_redirects=False
        )

    async def deliver(self, pushes: Sequence[Push]) -> list[PushResult]:
        # Push is the APNs/relay union of push/channels/base.py; this channel is handed WebhookPush
        items: list[object] = list(pushes)
        if not all(isinstance(item, WebhookPush) for item in items):
            return [PushResult("failed", "not a webhook delivery")] * len(items)
        return list(await asyncio.gather(*(self._post(cast(WebhookPush, item)) for item in items)))

    async def _post(self, push: WebhookPush) -> PushResult:
        headers = {
            "Content-Type": "application/json",
            "X-Wallet-Signature": sign(self._secret, int(time.time()), push.body),
            "X-Wallet-Delivery": push.delivery,
        }
        try:
            response = await self._client.post(self.url, content=push.body, headers=headers)
        except httpx.TimeoutException:
            log.warning("webhook %s: timed out", self.name)
            return PushResult("retry", "Timeout")
        except httpx.HTTPError as exc:
            log.warning("webhook %s: %s", self.name, type(exc).__name__)
            return PushResult("retry", type(exc).__name__)
        status = response.status_code
        reason = f"HTTP {status}"
        if 200 <= status < 300:
            return PushResult("ok")
        if status == 429 or status >= 500:
            return PushResult("retry", reason, retry_after=parse_retry_after(response.headers.get("Retry-After")))
        log.warning("webhook %s: refused with %d (dead-lettered)", self.name, status)
        return PushResult("failed", reason)

    async def aclose(self) -> None:
        await self._client.aclose()
