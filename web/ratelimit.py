"""Rate limits on public routes, with the `limits` package: moving windows kept in this process
on SQLite (one web process) and in Redis on Redis (shared by every web process). Over a limit:
429 with Retry-After, and nothing of the request is done (the limit is counted first).

The rules (settings WALLET_RATE_*), each sized to stop a script but not a shop full of phones
behind one carrier address:
- `pages` (60/minute) per client address: /join, /activate and the card page /c, one count for
  all of them (console login counts apart);
- `passkit` (600/minute) per pass (serial) on the whole /passkit surface (the pass, registrations)
  and the signed .pkpass links of cards and vouchers, one count for every fetch of a pass, counted
  once the caller holds the pass's token or a valid link (a stranger cannot spend a member's budget;
  a per-address count would refuse a busy shop's phones and every poller of its own pass);
  serials-since per device id; the log endpoint per client address; registrations also count
  against `passkit_register` (20/minute per pass);
- `google_callbacks` (600/minute) per client address (Google sends from few addresses);
- geo pings per card (WALLET_RATE_GEO_PING, web/apps.py).

The client address is the direct peer, unless the peer is one of WALLET_TRUSTED_PROXIES: then the
last X-Forwarded-For hop that is not a trusted proxy (hops to its left can be forged by anyone)."""

from __future__ import annotations

import ipaddress
import math
import time
from collections.abc import Iterable
from functools import lru_cache
from typing import Any

from limits import RateLimitItem, parse
from limits.aio.strategies import MovingWindowRateLimiter
from limits.storage import storage_from_string
from starlette.requests import Request

from store.factory import split_options
from web.errors import ApiError

_Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@lru_cache(maxsize=8)
def _networks(trusted: tuple[str, ...]) -> tuple[_Network, ...]:
    return tuple(ipaddress.ip_network(item, strict=False) for item in trusted)


def _is_trusted(address: str, networks: Iterable[_Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)


def forwarded_client(peer: str, forwarded_for: list[str], trusted: tuple[str, ...]) -> str:
    """The client of a request from `peer` with these X-Forwarded-For headers: `peer` itself unless it
    is a trusted proxy; then the rightmost hop that is not one (the leftmost when all are)."""
    networks = _networks(trusted)
    if not networks or not _is_trusted(peer, networks):
        return peer
    hops = [hop.strip() for header in forwarded_for for hop in header.split(",") if hop.strip()]
    for hop in reversed(hops):
        if not _is_trusted(hop, networks):
            # a hop that is no address at all (a proxy's "unknown") still names this one client
            return hop[:64]
    return hops[0][:64] if hops else peer


def client_address(request: Request) -> str:
    """Whom a request counts against: the direct peer, or behind WALLET_TRUSTED_PROXIES the client
    they forwarded for."""
    peer = request.client.host if request.client else "unknown"
    services: Any = getattr(request.app.state, "services", None)
    trusted: tuple[str, ...] = services.settings.trusted_proxies if services is not None else ()
    return forwarded_client(peer, request.headers.getlist("x-forwarded-for"), trusted)


@lru_cache(maxsize=32)
def rule(text: str) -> RateLimitItem:
    """A rule from its settings text ("60/minute"), parsed once. The `pages` rule (WALLET_RATE_PAGES)
    counts form pages per client address (/join, /activate): a person fills a form a few times a
    minute; more is someone enrolling phones or guessing card numbers in bulk."""
    return parse(text)


class RateLimiter:
    """The limits of one process: `passkit_register`, registrations per pass (a real pass sees one
    per device and a few token refreshes; more is someone with the pass's token making work, and
    the device cap bounds what they can keep)."""

    def __init__(self, database_url: str, passkit_register: str = "20/minute") -> None:
        self.passkit_register: RateLimitItem = parse(passkit_register)
        if database_url.startswith(("redis://", "rediss://")):
            base, options = split_options(database_url)
            prefix = options.get("prefix", "wallet:") + "ratelimit"
            self._storage = storage_from_string("async+" + base, implementation="redispy", key_prefix=prefix)
        else:
            self._storage = storage_from_string("async+memory://")
        self._limiter = MovingWindowRateLimiter(self._storage)

    async def retry_after(self, rule: RateLimitItem, *key: str) -> int | None:
        """Count one hit of `key` against `rule`: None when within it, else the seconds to wait
        (for callers that answer with a page rather than the JSON 429 of `check`)."""
        if await self._limiter.hit(rule, *key):
            return None
        stats = await self._limiter.get_window_stats(rule, *key)
        return max(1, math.ceil(stats.reset_time - time.time()))

    async def check(self, rule: RateLimitItem, *key: str) -> None:
        """Count one hit of `key` against `rule`; 429 when it is over."""
        if await self._limiter.hit(rule, *key):
            return
        stats = await self._limiter.get_window_stats(rule, *key)
        retry_after = max(1, math.ceil(stats.reset_time - time.time()))
        raise ApiError(
            429, "rate_limited", f"too many requests; retry in {retry_after} s", {"Retry-After": str(retry_after)}
        )


async def check_rule(request: Request, rate: str, name: str, *key: str) -> None:
    """`check` of the rule `rate` (settings text) for `key` under `name`: the JSON 429 of the APIs."""
    services: Any = request.app.state.services
    limiter: RateLimiter = services.limiter
    await limiter.check(rule(rate), name, *key)
