"""Retry delays: exponential backoff with full jitter, never sooner than the server asked."""

from __future__ import annotations

import random
from typing import Protocol


class _Uniform(Protocol):
    def uniform(self, a: float, b: float) -> float: ...


def backoff_delay(
    attempt: int,
    base: float,
    cap: float,
    rng: _Uniform | None = None,
    retry_after: float | None = None,
) -> float:
    """Delay before retry number ``attempt`` (1 for the first retry).

    Full jitter (uniform in ``[0, min(cap, base * 2**(attempt-1))]``) spreads the retries of
    many entries that failed together, so a recovering service is not hit by a synchronized
    wave. A server's ``retry_after`` is a floor: retrying earlier only earns another refusal.
    """
    if attempt < 1:
        attempt = 1
    # Bound the exponent so huge attempt numbers cannot overflow a float.
    ceiling = min(cap, base * (2.0 ** min(attempt - 1, 62)))
    delay = (rng or random).uniform(0.0, max(ceiling, 0.0))
    if retry_after is not None and retry_after > delay:
        delay = retry_after
    return delay
