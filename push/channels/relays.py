"""Relay channels: pass-update pushes to the Android pass apps' own HTTP relays (not APNs).

One Channel per relay protocol and pass type, each on its own pooled `httpx.AsyncClient`
(keep-alive, timeouts). Tokens wait in a queue per endpoint, shared by every `deliver` call
(the worker's batches run side by side), and go out in as few calls as the relay's per-call
maximum allows, one call at a time per endpoint; a `413` splits the call in halves. The relays' answers become
PushResults here: tokens the relay names unknown/expired → invalid_token; 429 → retry after
Retry-After (and no call to that relay until then); 5xx, timeouts, connection errors → retry;
401/403 → auth_error; a required key that is not configured → failed, naming the variable.

Protocols (facts: ../shared/facts/android-wallet-apps.md §1–§5):
- WalletUnion (FCM and HMS builds, one channel each): `{"passTypeIdentifier", "pushTokens", "hms"}`.
- Wallet Passes: `{"passTypeIdentifier", "pushTokens"}`, raw `Authorization: <key>`, key optional.
- Pass2U: `{"registrationIds"}` to a URL naming the pass type, `x-api-key`.
- PassHub: `{"pass_type_id", "push_tokens"}`, `Authorization: Bearer <key>`.
- PassWallet: `{"passTypeID", "pushTokens"}` to `<pushServiceUrl>/v1/pushUpdates`, no key.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Any, ClassVar

import httpx

from push.channels.base import Channel, PassPush, Push
from push.channels.fcm import parse_retry_after
from push.clients import service_url_allowed
from push.results import OK, PushResult

log = logging.getLogger(__name__)

# Wallet Passes and PassWallet state no per-call maximum (facts §7, UNCONFIRMED): small calls.
SMALL_BATCH = 100


def _seconds(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None


def retry_after_of(headers: httpx.Headers) -> float | None:
    """Seconds to wait: Retry-After, else X-Rate-Limit-Reset read as seconds (WalletUnion shows
    X-Rate-Limit-* headers but not their window or the meaning of Reset: UNCONFIRMED)."""
    found = parse_retry_after(headers.get("Retry-After"))
    if found is None and headers.get("X-Rate-Limit-Remaining") == "0":
        found = _seconds(headers.get("X-Rate-Limit-Reset"))
    return found


class RelayChannel(Channel):
    """The shared HTTP work of a relay; subclasses say where, with which key and body."""

    protocol: ClassVar[str]
    max_tokens: int = SMALL_BATCH  # per call; an instance may narrow it (WalletUnion's build)
    # A call not yet full waits this long after the last token queued for it, and at most
    # linger_max after it started waiting: 0.1 s more for a lone push (nobody sees that on a pass),
    # a burst in full calls even when a busy machine spaces the worker's batches out.
    linger: float = 0.1
    linger_max: float = 1.0
    key_required: ClassVar[bool] = True
    key_env: ClassVar[str]  # the variable that configures the key, for the "failed" reason

    def __init__(
        self,
        pass_type_id: str,
        *,
        url: str,
        key: str | None = None,
        timeout: float = 10.0,  # well under the worker's lease
        max_connections: int = 10,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.name = f"{self.protocol}:{pass_type_id}"
        self.pass_type_id = pass_type_id
        self.url = url
        self.key = key or None
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
            transport=transport,
            follow_redirects=False,  # a relay answering 3xx is misconfigured, not to be followed
        )
        self._quiet_until = 0.0  # monotonic: no call before this (the relay asked us to wait)
        self._queues: dict[str, _CallQueue] = {}  # endpoint -> tokens waiting for their call

    # -- what each protocol says -----------------------------------------------------------------
    def endpoint(self, push: PassPush) -> str | PushResult:
        """The URL this push goes to, or the result it gets without a call."""
        return self.url

    def headers(self) -> dict[str, str]:
        return {"Authorization": self.key} if self.key else {}

    def body(self, tokens: list[str]) -> dict[str, Any]:
        return {"passTypeIdentifier": self.pass_type_id, "pushTokens": tokens}

    def accepted(self, tokens: list[str], body: Any) -> list[PushResult]:
        """Results for a 2xx answer. Most relays document no per-token outcome: all ok."""
        return [OK] * len(tokens)

    # -- the channel -----------------------------------------------------------------------------
    async def deliver(self, pushes: Sequence[Push]) -> list[PushResult]:
        results: list[PushResult | None] = [None] * len(pushes)
        waiting: list[tuple[int, asyncio.Future[PushResult]]] = []
        for index, push in enumerate(pushes):
            if not isinstance(push, PassPush):
                results[index] = PushResult("failed", "RelayTakesPassUpdatesOnly")
            elif self.key_required and not self.key:
                results[index] = PushResult("failed", f"NoRelayKey: {self.key_env} is not set")
            else:
                found = self.endpoint(push)
                if isinstance(found, PushResult):
                    results[index] = found
                else:
                    waiting.append((index, self._queue(found).add(push.token)))
        for index, future in waiting:
            results[index] = await future
        assert all(result is not None for result in results)
        return [result for result in results if result is not None]

    def _queue(self, url: str) -> _CallQueue:
        queue = self._queues.get(url)
        if queue is None:
            queue = self._queues[url] = _CallQueue(self, url)
        return queue

    async def _drain(self, queue: _CallQueue) -> None:
        """Calls for one endpoint, one after another (a 429 then spares the rest a refused call),
        each as full as the relay takes: a call waits while more tokens keep coming, up to
        `linger` seconds after the last and `linger_max` after its first (a worker's concurrent
        batches are tokens of one burst; a relay counts calls against its rate limit)."""
        loop = asyncio.get_running_loop()
        chunk: list[tuple[str, asyncio.Future[PushResult]]] = []
        try:
            while queue.items:
                started = loop.time()
                while len(queue.items) < self.max_tokens:
                    now = loop.time()
                    wait = min(queue.last_added + self.linger, started + self.linger_max) - now
                    if wait <= 0:
                        break
                    queue.full.clear()
                    try:
                        async with asyncio.timeout(wait):
                            await queue.full.wait()
                    except TimeoutError:
                        pass
                chunk, queue.items = queue.items[: self.max_tokens], queue.items[self.max_tokens :]
                answers = await self._call(queue.url, [token for token, _ in chunk])
                for (_, future), result in zip(chunk, answers, strict=True):
                    if not future.done():
                        future.set_result(result)
                chunk = []
        except BaseException:
            # closed (cancelled) or a bug: whoever waits gets an answer, the entry is retried
            for _, future in chunk + queue.items:
                if not future.done():
                    future.set_result(PushResult("retry", "RelayChannelClosed"))
            queue.items = []
            raise
        finally:
            # no await since the loop found the queue empty: nothing was added meanwhile
            if self._queues.get(queue.url) is queue:
                del self._queues[queue.url]

    async def _call(self, url: str, tokens: list[str]) -> list[PushResult]:
        wait = self._quiet_until - time.monotonic()
        if wait > 0:
            return [PushResult("retry", "RateLimited", retry_after=wait)] * len(tokens)
        try:
            response = await self._client.post(url, json=self.body(tokens), headers=self.headers())
        except httpx.TimeoutException:
            log.warning("relay %s: call of %d tokens timed out", self.name, len(tokens))
            return [PushResult("retry", "Timeout")] * len(tokens)
        except httpx.HTTPError as exc:
            log.warning("relay %s: call of %d tokens failed: %s", self.name, len(tokens), type(exc).__name__)
            return [PushResult("retry", type(exc).__name__)] * len(tokens)
        status = response.status_code
        if status == 413 and len(tokens) > 1:
            # Over the relay's limit (which may be lower than ours): the halves, each as a call.
            half = len(tokens) // 2
            return await self._call(url, tokens[:half]) + await self._call(url, tokens[half:])
        if 200 <= status < 300:
            try:
                body = response.json()
            except ValueError:
                body = None
            return self.accepted(tokens, body)
        reason = f"HTTP {status}"
        if status == 429:
            retry_after = retry_after_of(response.headers)
            if retry_after:
                self._quiet_until = time.monotonic() + retry_after
            return [PushResult("retry", reason, retry_after=retry_after)] * len(tokens)
        if status >= 500:
            return [PushResult("retry", reason, retry_after=retry_after_of(response.headers))] * len(tokens)
        if status in (401, 403):
            log.error("relay %s refused the key (%s)", self.name, reason)
            return [PushResult("auth_error", reason)] * len(tokens)
        return [PushResult("failed", reason)] * len(tokens)

    async def aclose(self) -> None:
        tasks = [queue.task for queue in self._queues.values() if queue.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._client.aclose()


class _CallQueue:
    """Tokens waiting for their call to one endpoint, and the task that makes the calls."""

    def __init__(self, channel: RelayChannel, url: str) -> None:
        self.channel = channel
        self.url = url
        self.items: list[tuple[str, asyncio.Future[PushResult]]] = []
        self.full = asyncio.Event()  # set when a whole call's worth is waiting
        self.last_added = 0.0
        self.task: asyncio.Task[None] | None = None

    def add(self, token: str) -> asyncio.Future[PushResult]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[PushResult] = loop.create_future()
        self.items.append((token, future))
        self.last_added = loop.time()
        if self.task is None:
            self.task = asyncio.create_task(self.channel._drain(self))
        elif len(self.items) >= self.channel.max_tokens:
            self.full.set()
        return future


class WalletUnionChannel(RelayChannel):
    """WalletUnion's relay; `hms` for the Huawei build's tokens (a separate call, facts §1).

    UNCONFIRMED (facts §8.1): the URL, and the key in a raw `Authorization` header (peer code);
    `key_header` changes the header. The meaning of the response lists is UNCONFIRMED too:
    unknown and expired tokens are taken as dead; FCM_FAILED as the relay's own failure
    (retry), except for tokens it lists as expired.
    """

    protocol = "walletunion"
    key_env = "WALLET_RELAY_WALLETUNION_KEY"

    def __init__(self, pass_type_id: str, *, hms: bool = False, key_header: str = "Authorization", **kw: Any) -> None:
        self.hms = hms
        self.key_header = key_header
        self.max_tokens = 1000 if hms else 50
        super().__init__(pass_type_id, **kw)
        self.name = f"walletunion_{'hms' if hms else 'fcm'}:{pass_type_id}"

    def headers(self) -> dict[str, str]:
        return {self.key_header: self.key} if self.key else {}

    def body(self, tokens: list[str]) -> dict[str, Any]:
        return {"passTypeIdentifier": self.pass_type_id, "pushTokens": tokens, "hms": self.hms}

    def accepted(self, tokens: list[str], body: Any) -> list[PushResult]:
        if not isinstance(body, dict):
            return [OK] * len(tokens)

        def listed(field: str) -> set[str]:
            value = body.get(field)
            return {t for t in value if isinstance(t, str)} if isinstance(value, list) else set()

        # The lists may overlap (the maker's own example): expired wins, it is the surer death.
        expired, unknown = listed("expired_push_tokens"), listed("unknown_push_tokens")
        fcm_failed = body.get("status") == "FCM_FAILED"
        results: list[PushResult] = []
        for token in tokens:
            if token in expired:
                results.append(PushResult("invalid_token", "expired_push_token"))
            elif fcm_failed:
                results.append(PushResult("retry", "FCM_FAILED"))
            elif token in unknown:
                results.append(PushResult("invalid_token", "unknown_push_token"))
            else:
                results.append(OK)
        return results


class WalletPassesChannel(RelayChannel):
    """Wallet Passes' relay. The key is optional (it raises the rate limit); response bodies and
    limits are UNCONFIRMED (facts §8.2): any 2xx is taken as delivered."""

    protocol = "walletpasses"
    key_required = False
    key_env = "WALLET_RELAY_WALLETPASSES_KEY"


class Pass2UChannel(RelayChannel):
    """Pass2U's relay; `url` keeps `{passTypeIdentifier}`. Response bodies UNCONFIRMED (§8.3)."""

    protocol = "pass2u"
    max_tokens = 1000
    key_env = "WALLET_RELAY_PASS2U_KEY"

    def endpoint(self, push: PassPush) -> str:
        return self.url.replace("{passTypeIdentifier}", self.pass_type_id)

    def headers(self) -> dict[str, str]:
        return {"x-api-key": self.key or "", "Accept": "application/json"}

    def body(self, tokens: list[str]) -> dict[str, Any]:
        return {"registrationIds": tokens}


class PassHubChannel(RelayChannel):
    """PassHub for Telegram's relay (facts §5); response bodies are not documented."""

    protocol = "passhub"
    key_env = "WALLET_RELAY_PASSHUB_KEY"

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    def body(self, tokens: list[str]) -> dict[str, Any]:
        return {"pass_type_id": self.pass_type_id, "push_tokens": tokens}


class PassWalletChannel(RelayChannel):
    """PassWallet: each registration names its push service (`pushServiceUrl`); tokens of one
    service share a `/v1/pushUpdates` call. No key. Only https URLs on `allowed_hosts` are
    called (the URL is client input: registration refuses others, this is the second check)."""

    protocol = "passwallet"
    key_required = False
    key_env = ""

    def __init__(
        self, pass_type_id: str, *, allowed_hosts: frozenset[str], allow_http: bool = False, **kw: Any
    ) -> None:
        kw.setdefault("url", "")
        super().__init__(pass_type_id, **kw)
        self.allowed_hosts = allowed_hosts
        self.allow_http = allow_http

    def endpoint(self, push: PassPush) -> str | PushResult:
        if not push.service_url:
            return PushResult("failed", "NoPushServiceUrl")
        if not service_url_allowed(push.service_url, self.allowed_hosts, self.allow_http):
            return PushResult("failed", "PushServiceUrlNotAllowed")
        return push.service_url.rstrip("/") + "/v1/pushUpdates"

    def headers(self) -> dict[str, str]:
        return {}

    def body(self, tokens: list[str]) -> dict[str, Any]:
        return {"passTypeID": self.pass_type_id, "pushTokens": tokens}
