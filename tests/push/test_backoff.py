"""backoff_delay: pure, seeded."""

from __future__ import annotations

import random

from push.backoff import backoff_delay


class _Max:
    """An rng that always picks the top of the range: shows the jitter ceiling."""

    def uniform(self, a: float, b: float) -> float:
        return b


def test_ceiling_doubles_per_attempt_up_to_the_cap() -> None:
    top = [backoff_delay(n, base=1.0, cap=30.0, rng=_Max()) for n in range(1, 8)]
    assert top == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]


def test_full_jitter_stays_within_zero_and_the_ceiling() -> None:
    rng = random.Random(7)
    delays = [backoff_delay(4, base=0.5, cap=60.0, rng=rng) for _ in range(1000)]
    assert all(0.0 <= d <= 4.0 for d in delays)
    assert min(delays) < 0.5 and max(delays) > 3.5  # spread over the whole range


def test_server_retry_after_is_a_floor() -> None:
    rng = random.Random(1)
    assert backoff_delay(1, base=1.0, cap=10.0, rng=rng, retry_after=42.0) == 42.0
    assert backoff_delay(3, base=1.0, cap=10.0, rng=_Max(), retry_after=1.0) == 4.0


def test_deterministic_with_a_seed_and_safe_for_odd_inputs() -> None:
    a = [backoff_delay(n, 1.0, 100.0, random.Random(3)) for n in range(1, 5)]
    b = [backoff_delay(n, 1.0, 100.0, random.Random(3)) for n in range(1, 5)]
    assert a == b
    assert backoff_delay(0, 1.0, 5.0, _Max()) == 1.0  # attempt below 1 treated as the first
    assert backoff_delay(10_000, 1.0, 5.0, _Max()) == 5.0  # no overflow
