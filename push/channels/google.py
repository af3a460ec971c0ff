"""The Google Wallet channel: brings a card's LoyaltyObject up to the card's current state.

One `GoogleSync(card)` push per card (push/kinds/google_object.py reads the card at delivery).
Per push (facts google-wallet.md §2):
- nothing to do when the object already shows this card version and message (bookkeeping in
  the store, `Store.get/put_google_state`, written put-if-newer so two workers never regress it);
- PATCH of the fields that carry card state (`SYNCED_FIELDS` of the rendered object; `classId`
  only when the tier changed: one class per tier), with `notifyPreference: NOTIFY_ON_UPDATE`
  when the balance or the tier changed since what was last synced. 404 → the object is inserted
  again (and its class, when Google lacks that too). A refused class move (400 with `classId`
  in the PATCH) is PATCHed again without it: the tier still shows in the points and text modules.
- when the card's `last_message` changed since it was last added: `addMessage`, TEXT_AND_NOTIFY
  while fewer than 3 were added to that object in the last 24 h (Google's limit), TEXT after;
  403 quotaExceeded → the same message again as TEXT. The object's `messages` are kept to the
  newest `keep_messages` (Google allows 10): read from addMessage's answer, PATCHed back when
  over (arrays replace whole in a PATCH: read-modify-write).
- per object one sync at a time in this process, and the store's version re-checked right
  before the PATCH and after it: a sync that finds a newer version recorded after its PATCH
  reads the card again and syncs that, so the last PATCH to land carries the latest state.
- every request of the channel waits for the shared `rate` (requests per second, Google's
  documented 20/s by default): evenly spaced, whatever the number of concurrent deliver calls.

Results: ok; retry (429 with Retry-After, 5xx, timeouts); auth_error (401, 403 other than the
quota: the worker pauses the channel); failed (any other 4xx).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Final

from cards.model import Card
from push.channels.base import Channel
from push.channels.google_wallet import GoogleWalletClient, GoogleWalletResult
from push.results import OK, PushResult
from store.port import GoogleState, Store

log = logging.getLogger(__name__)

# The LoyaltyObject fields that carry card state (passes/google/model.py); the rest (barcode,
# account id, links) is fixed at insert. `classId` is added only on a tier change.
# merchantLocations too: the geo campaigns change them, and an empty list clears them
SYNCED_FIELDS: Final = ("state", "loyaltyPoints", "secondaryLoyaltyPoints", "textModulesData", "merchantLocations")
HAS_USERS: Final = "has_users"  # the event recorded when Google's object says someone saved it
NOTIFY_LIMIT: Final = 3  # TEXT_AND_NOTIFY messages per object per 24 h (facts §2)
NOTIFY_WINDOW: Final = 24 * 3600.0
MAX_MESSAGES: Final = 10  # Google's maximum of `messages` on an object (facts §1.4)
_SYNC_ROUNDS: Final = 3  # re-syncs when another worker recorded a newer version meanwhile

Render = Callable[[Card], tuple[dict[str, Any], dict[str, Any]]]


@dataclass(frozen=True, slots=True)
class GoogleSync:
    """Bring the card's Google Wallet object to this (the card's current) state."""

    card: Card


def message_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


# Calls are spaced this much wider than `rate` asks: Google counts arrivals, and a few
# milliseconds of network jitter would put rate + 1 of exactly spaced calls into some second.
RATE_MARGIN = 1.05


class RateLimiter:
    """At most `rate` requests in any second, evenly spaced with RATE_MARGIN to spare, shared by
    every coroutine of the channel; `clock` is monotonic.

    Spacing the starts is not enough on its own: a request held up after its start (a new
    connection, a busy event loop waking a sleeper late) reaches Google together with the next
    one. So a request also counts from its start until a second after its answer came back
    (`window` of them at most): however the starts bunch up later, no second at Google sees more
    than `rate` of them arrive."""

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.interval = RATE_MARGIN / rate
        self.window = max(1, int(rate))
        self._clock = clock
        self._next = 0.0
        self._busy = 0  # started, not answered yet
        self._answered: deque[float] = deque()  # answer times within the last second
        # Waiters queue on the lock (FIFO): only the first of them waits on the clock and for
        # answers, so a burst of N waiting requests costs O(N), not a wakeup of all N per answer.
        self._turn = asyncio.Lock()
        self._answer = asyncio.Event()

    def _wait(self, now: float) -> float | None:
        """Seconds until a request may start (0: now; None: until an answer comes back)."""
        while self._answered and self._answered[0] <= now - 1.0:
            self._answered.popleft()
        if self._busy + len(self._answered) >= self.window:
            # the oldest answer leaving the second frees a place; so does any answer (notified)
            return self._answered[0] + 1.0 - now if self._answered else None
        return max(0.0, self._next - now)

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        async with self._turn:
            while (wait := self._wait(self._clock())) != 0.0:
                self._answer.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(wait):
                        await self._answer.wait()
            self._busy += 1
            self._next = self._clock() + self.interval
        try:
            yield
        finally:
            self._busy -= 1
            self._answered.append(self._clock())
            self._answer.set()


class _Outcome(Exception):
    """A sync step's final, non-ok answer, carried out of the step as a PushResult."""

    def __init__(self, result: PushResult) -> None:
        super().__init__(result.status)
        self.result = result


def _push_result(result: GoogleWalletResult, step: str) -> PushResult:
    reason = f"{step}: {result.reason or result.status}"
    if result.status in ("rate_limited", "server_error"):
        return PushResult("retry", reason, retry_after=result.retry_after)
    if result.status == "auth_error":
        return PushResult("auth_error", reason)
    return PushResult("failed", reason)


class GoogleWalletChannel(Channel):
    """`GoogleWalletChannel(client, render, rate=20.0, state=store)`: `render(card)` answers the
    card's (LoyaltyObject body, LoyaltyClass body of its tier); `state` keeps what was synced."""

    def __init__(
        self,
        client: GoogleWalletClient,
        render: Render,
        *,
        rate: float = 20.0,
        state: Store,
        keep_messages: int = 5,
        name: str = "google_wallet",
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not 1 <= keep_messages < MAX_MESSAGES:
            raise ValueError(f"keep_messages must be 1..{MAX_MESSAGES - 1}")
        self.name = name
        self.client = client
        self.render = render
        self.store = state
        self.keep_messages = keep_messages
        self.clock = clock
        self.limiter = RateLimiter(rate)
        self._locks: dict[str, tuple[asyncio.Lock, list[int]]] = {}  # serial -> (lock, [users])

    async def ensure_class(self, body: dict[str, Any]) -> GoogleWalletResult:
        """A class inserted, or patched when it exists (409), within the channel's rate."""
        return await self._call(lambda: self.client.ensure_class(body))

    def object_id(self, card: Card) -> str:
        """The card's object id (for the journal: the serial's, no personal data)."""
        return str(self.render(card)[0]["id"])

    async def deliver(self, pushes: Sequence[object]) -> list[PushResult]:
        return list(await asyncio.gather(*(self._deliver_one(push) for push in pushes)))

    async def aclose(self) -> None:
        await self.client.aclose()

    # -- one card ----------------------------------------------------------------------------
    async def _deliver_one(self, push: object) -> PushResult:
        if not isinstance(push, GoogleSync):
            return PushResult("failed", f"not a Google Wallet push: {type(push).__name__}")
        serial = push.card.serial
        lock, users = self._locks.setdefault(serial, (asyncio.Lock(), [0]))
        users[0] += 1
        try:
            async with lock:
                return await self._sync(push.card)
        except _Outcome as outcome:
            return outcome.result
        except Exception as exc:  # a store read or write failed: try again later
            log.warning("google wallet sync of %s failed: %s", serial, type(exc).__name__)
            return PushResult("retry", f"store: {type(exc).__name__}")
        finally:
            users[0] -= 1
            if users[0] == 0:
                del self._locks[serial]

    async def _sync(self, card: Card) -> PushResult:
        result: PushResult = OK
        for attempt in range(_SYNC_ROUNDS):
            stored = await self.store.get_google_state(card.serial)
            if stored is not None and stored.version > card.version:
                if attempt == 0:
                    # A newer state went out already (this card read is older): never send this one.
                    return PushResult("ok", "newer already synced")
            else:
                # After an overtaking (attempt > 0) the latest card is PATCHed whatever the store
                # says: this channel's older PATCH may have landed after the newer one.
                result, overtaken = await self._sync_card(card, stored, force=attempt > 0)
                if not result.ok:
                    return result
                if not overtaken:
                    after = await self.store.get_google_state(card.serial)
                    if after is None or after.version <= card.version:
                        return result
            # Another worker recorded a newer version while this sync was out: sync the latest card.
            latest = await self.store.get_card_by_serial(card.serial)
            if latest is None or latest.version <= card.version:
                return result
            log.info("google wallet: %s overtaken by version %d; syncing that", card.serial, latest.version)
            card = latest
        return result

    async def _sync_card(self, card: Card, stored: GoogleState | None, *, force: bool) -> tuple[PushResult, bool]:
        """(result, overtaken): overtaken when a newer version was recorded after this PATCH."""
        body, class_body = self.render(card)
        object_id = str(body["id"])
        text = card.last_message or None
        new_message = text is not None and (stored is None or stored.message_hash != message_hash(text))
        notice = card.notice or None
        new_notice = notice is not None and (stored is None or stored.notice_hash != message_hash(notice))
        # Geo content (locations, notice) moves the tag without the version: either shows a change.
        patched = (
            not force
            and stored is not None
            and (stored.version > card.version or (stored.version == card.version and stored.tag >= card.tag))
        )
        if patched and not new_message and not new_notice:
            return PushResult("ok", "unchanged"), False

        state = stored or GoogleState(version=card.version, balance=card.balance, tier=card.tier)
        if not patched:
            await self._patch_state(card, body, class_body, stored, force=force)
            # Recorded at once: a retried message does not PATCH (and notify) again.
            state = replace(state, version=card.version, balance=card.balance, tier=card.tier, tag=card.tag)
            if not await self.store.put_google_state(card.serial, state):
                return OK, True  # its message, if any, is the newer sync's to add
        if new_message:
            assert text is not None
            state = await self._add_message(card, object_id, body, class_body, text, state, f"ledger-{card.version}")
            state = replace(state, message_hash=message_hash(text))
            if not await self.store.put_google_state(card.serial, state):
                return OK, True
        if new_notice:
            assert notice is not None
            state = await self._add_message(card, object_id, body, class_body, notice, state, f"notice-{card.tag}")
            state = replace(state, notice_hash=message_hash(notice))
            if not await self.store.put_google_state(card.serial, state):
                return OK, True
        return OK, False

    # -- steps -------------------------------------------------------------------------------
    async def _call(self, make: Callable[[], Any]) -> GoogleWalletResult:
        await self.client.ready()  # a token refresh must not eat the call's slot
        async with self.limiter.slot():
            result: GoogleWalletResult = await make()
        return result

    async def _patch_state(
        self, card: Card, body: dict[str, Any], class_body: dict[str, Any], stored: GoogleState | None, *, force: bool
    ) -> None:
        object_id = str(body["id"])
        fields: dict[str, Any] = {key: body[key] for key in SYNCED_FIELDS if key in body}
        if card.erased_at:
            fields["accountName"] = ""  # set at insert; an erased member's name must go too
        moved = force or stored is None or stored.tier != card.tier
        if moved and "classId" in body:
            fields["classId"] = body["classId"]
        notify = stored is None or stored.balance != card.balance or stored.tier != card.tier
        result = await self._call(lambda: self.client.patch_object(object_id, fields, notify=notify))
        if result.status == "quota_exceeded" and notify:  # the update-notification quota: no notify
            result = await self._call(lambda: self.client.patch_object(object_id, fields))
        if result.status == "bad_request" and "classId" in fields:
            log.warning("google wallet: class move of %s refused (%s); patched without it", object_id, result.reason)
            fields.pop("classId")
            result = await self._call(lambda: self.client.patch_object(object_id, fields, notify=notify))
        if result.status == "not_found":
            await self._reinsert(body, class_body)
            return
        if not result.ok:
            raise _Outcome(_push_result(result, "patch"))
        await self._note_users(object_id, result.body)

    async def _note_users(self, object_id: str, resource: Any) -> None:
        """A save recorded from the object itself: Google's answer carries `hasUsers`, which stays
        true whether or not its save callback reached us (callbacks stop with a changed callback
        URL or an outage). Recorded once per object, like a callback's nonce, as its own event: the
        install reports count Google's callbacks only, so a save that also sent one is not counted twice."""
        if isinstance(resource, dict) and resource.get("hasUsers") is True:
            await self.store.record_google_callback(f"hasUsers:{object_id}", object_id, HAS_USERS, self.clock())

    async def _reinsert(self, body: dict[str, Any], class_body: dict[str, Any]) -> None:
        """The object (and, when Google lacks it too, its class) inserted again from the card."""
        result = await self._call(lambda: self.client.ensure_object(body))
        if result.status == "not_found":  # the object's class is missing
            made = await self._call(lambda: self.client.ensure_class(class_body))
            if not made.ok:
                raise _Outcome(_push_result(made, "insert class"))
            result = await self._call(lambda: self.client.ensure_object(body))
        if not result.ok:
            raise _Outcome(_push_result(result, "insert"))
        log.info("google wallet: object %s inserted again", body["id"])

    async def _add_message(
        self,
        card: Card,
        object_id: str,
        body: dict[str, Any],
        class_body: dict[str, Any],
        text: str,
        state: GoogleState,
        message_id: str,
    ) -> GoogleState:
        now = self.clock()
        recent = tuple(t for t in state.notified if now - t < NOTIFY_WINDOW)
        notify = len(recent) < NOTIFY_LIMIT
        header = str(class_body.get("programName") or "")
        message: dict[str, Any] = {"id": message_id, "header": header, "body": text}

        async def add(kind: str) -> GoogleWalletResult:
            return await self._call(lambda: self.client.add_message(object_id, {**message, "messageType": kind}))

        result = await add("TEXT_AND_NOTIFY" if notify else "TEXT")
        if result.status == "not_found":
            await self._reinsert(body, class_body)
            result = await add("TEXT_AND_NOTIFY" if notify else "TEXT")
        if result.status == "quota_exceeded" and notify:
            # Google counts what we cannot see (other senders, its own throttling): plain text,
            # and this object's notifications count as used up for the window.
            notify = False
            recent = (recent + (now,) * NOTIFY_LIMIT)[-NOTIFY_LIMIT:]
            result = await add("TEXT")
        if not result.ok:
            raise _Outcome(_push_result(result, "addMessage"))
        if notify:
            recent = recent + (now,)
        await self._trim_messages(object_id, result.body)
        return replace(state, notified=recent)

    async def _trim_messages(self, object_id: str, resource: dict[str, Any] | None) -> None:
        """Keep the newest `keep_messages` (Google appends; the list is the object's, read back
        from addMessage's answer). A failed trim is tried again with the next message."""
        messages = (resource or {}).get("messages")
        if not isinstance(messages, list) or len(messages) <= self.keep_messages:
            return
        kept = messages[-self.keep_messages :]
        result = await self._call(lambda: self.client.patch_object(object_id, {"messages": kept}))
        if not result.ok:
            log.warning("google wallet: trimming messages of %s: %s", object_id, result.status)
