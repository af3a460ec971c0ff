"""The Google Wallet channel's rate limiter counts what reaches Google: a request held up after it
started (a new connection, a late wakeup) must not arrive together with the ones after it."""

from __future__ import annotations

import asyncio
import time

from push.channels.google import RateLimiter


def most_in_a_second(times: list[float]) -> int:
    times = sorted(times)
    return max((sum(1 for t in times[i:] if t < start + 1.0) for i, start in enumerate(times)), default=0)


async def test_no_second_sees_more_than_the_rate_arrive_when_early_requests_are_held_up() -> None:
    limiter = RateLimiter(10.0)
    arrivals: list[float] = []

    async def request(i: int) -> None:
        async with limiter.slot():
            # the first requests wait for their connection before they reach the server
            await asyncio.sleep(0.4 if i < 3 else 0.01)
            arrivals.append(time.monotonic())

    await asyncio.gather(*(request(i) for i in range(25)))
    assert len(arrivals) == 25
    assert most_in_a_second(arrivals) <= 10


async def test_a_lone_request_goes_at_once() -> None:
    limiter = RateLimiter(20.0)
    started = time.monotonic()
    async with limiter.slot():
        pass
    assert time.monotonic() - started < 0.05
