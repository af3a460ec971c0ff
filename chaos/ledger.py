"""The ledger backend as `clients` concurrent posters of signed batches, retrying the way a real
ledger does: the same batch (same event ids) again after a connection error, a 5xx or a 429,
with backoff, against any web process; every answer to every event recorded."""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import httpx

from ledger.signature import sign

GIVE_UP_SECONDS = 120.0  # a batch still unanswered after this long is recorded as never answered


@dataclass
class Event:
    id: str
    card: str
    version: int
    first_try: float = 0.0  # time.time() when first posted
    outcome: str | None = None  # the first 202 answer's outcome for it
    accepted_try: float = 0.0  # start of the attempt answered "accepted" (or "duplicate")
    answers: list[str] = field(default_factory=list)  # every 202 outcome, retries included

    @property
    def applied(self) -> bool:
        # "duplicate" on a retry: an earlier attempt committed it (only accepted ids are remembered)
        return self.outcome in ("accepted", "duplicate")

    def body(self) -> dict[str, object]:
        # balance = version: a pass read back tells which version it shows
        return {
            "id": self.id,
            "card": self.card,
            "version": self.version,
            "balance": self.version,
            "message": f"v{self.version}",
        }


def make_events(run: str, cards: Sequence[str], total: int, rng: random.Random) -> list[Event]:
    """`total` events spread evenly over the cards, in rounds: each round gives every card (in a
    shuffled order) its next version, so one card's events lie a whole round apart in the stream."""
    events: list[Event] = []
    version = 0
    while len(events) < total:
        version += 1
        order = list(cards)
        rng.shuffle(order)
        for card in order[: total - len(events)]:
            events.append(Event(f"{run}-{card}-{version}", card, version))
    return events


@dataclass
class LedgerStats:
    posts: int = 0
    attempts: int = 0
    retries: Counter[str] = field(default_factory=Counter)  # why: "ConnectError", "HTTP 503", ...
    given_up: int = 0  # batches never answered 202
    in_flight: int = 0  # posts sent and not yet answered
    started: float = 0.0
    finished: float = 0.0


class Pacer:
    """At most `rate` events/s over all clients, never catching up after a stall (a stalled ledger
    does not burst: it keeps its pace from where it is)."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.next = 0.0

    async def slot(self, n: int) -> None:
        if self.rate <= 0:
            return
        now = time.monotonic()
        start = max(self.next, now)
        self.next = start + n / self.rate
        await asyncio.sleep(start - now)


async def post_batch(
    http: httpx.AsyncClient, base: str, secret: str, events: Sequence[dict[str, object]]
) -> httpx.Response:
    body = json.dumps({"events": list(events)}).encode()
    return await http.post(
        f"{base}/v1/ledger/events",
        content=body,
        headers={"Content-Type": "application/json", "X-Wallet-Signature": sign(secret, int(time.time()), body)},
    )


async def run_clients(
    bases: Sequence[str],
    secret: str,
    events: list[Event],
    clients: int,
    batch: int,
    rate: float,
    rng: random.Random,
    stats: LedgerStats,
) -> LedgerStats:
    stats.started = time.time()
    batches: Iterator[list[Event]] = iter([events[i : i + batch] for i in range(0, len(events), batch)])
    pacer = Pacer(rate)
    limits = httpx.Limits(max_connections=clients * 2, max_keepalive_connections=clients * 2)

    async def client(number: int) -> None:
        async with httpx.AsyncClient(timeout=15.0, limits=limits) as http:
            for chunk in batches:
                await pacer.slot(len(chunk))
                await deliver(http, number, chunk)

    async def deliver(http: httpx.AsyncClient, number: int, chunk: list[Event]) -> None:
        stats.posts += 1
        body = [e.body() for e in chunk]
        deadline = time.monotonic() + GIVE_UP_SECONDS
        attempt = 0
        while True:
            base = bases[(number + attempt) % len(bases)]  # after a failure, the next web process
            started = time.time()
            for e in chunk:
                e.first_try = e.first_try or started
            stats.attempts += 1
            stats.in_flight += 1
            try:
                answer = await post_batch(http, base, secret, body)
            except httpx.HTTPError as exc:
                why = type(exc).__name__
            else:
                why = ""
            finally:
                stats.in_flight -= 1
            if not why:
                if answer.status_code == 202:
                    record(chunk, answer.json(), started)
                    return
                why = f"HTTP {answer.status_code}"
                if answer.status_code < 500 and answer.status_code != 429:
                    raise RuntimeError(f"ledger post refused: {answer.status_code} {answer.text[:500]}")
            stats.retries[why] += 1
            attempt += 1
            if time.monotonic() > deadline:
                stats.given_up += 1
                return
            await asyncio.sleep(min(1.0, 0.05 * 2**attempt) * rng.uniform(0.5, 1.5))

    def record(chunk: list[Event], answer: dict[str, list[object]], started: float) -> None:
        outcome: dict[str, str] = {}
        for name in ("accepted", "duplicate", "stale", "unknown"):
            for ident in answer.get(name, []):
                outcome[str(ident)] = name
        for item in answer.get("invalid", []):
            if isinstance(item, dict):
                outcome[str(item.get("id"))] = "invalid"
        for e in chunk:
            got = outcome.get(e.id, "missing")
            e.answers.append(got)
            if e.outcome is None:
                e.outcome = got
                # the commit happened after this attempt began ("accepted"), or after some earlier one
                if got == "accepted":
                    e.accepted_try = started
                elif got == "duplicate":
                    e.accepted_try = e.first_try

    await asyncio.gather(*(client(n) for n in range(clients)))
    stats.finished = time.time()
    return stats
