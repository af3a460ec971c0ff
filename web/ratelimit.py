"""Rate limits on public routes, with the `limits` package: moving windows kept in this process
on SQLite (one web process) and in Redis on Redis (shared by every web process). Over a limit:
429 with Retry-After, and nothing of the request is done."""

from __future__ import annotations

import math
import time

from limits import RateLimitItem, parse
from limits.aio.strategies import MovingWindowRateLimiter
from limits.storage import storage_from_string

from store.factory import split_options
from web.errors import ApiError


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

    async def check(self, rule: RateLimitItem, *key: str) -> None:
        """Count one hit of `key` against `rule`; 429 when it is over."""
        if await self._limiter.hit(rule, *key):
            return
        stats = await self._limiter.get_window_stats(rule, *key)
        retry_after = max(1, math.ceil(stats.reset_time - time.time()))
        raise ApiError(
            429, "rate_limited", f"too many requests; retry in {retry_after} s", {"Retry-After": str(retry_after)}
        )
