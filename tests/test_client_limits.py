"""The sliding-window rate limiter, driven by a fake clock: never more than R starts in any
one-second window, whatever the arrival pattern."""

from __future__ import annotations

import asyncio
import itertools
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sync.remote.limits import RateLimiter
from sync.remote.limits import busiest_window as max_in_window


class FakeClock:
    """Time moves only when someone sleeps (by the amount slept)."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        assert seconds > 0
        self.now += seconds
        await asyncio.sleep(0)


def test_max_in_window_helper() -> None:
    assert max_in_window([]) == 0
    assert max_in_window([0, 0.5, 0.999, 1.0, 1.5]) == 3
    assert max_in_window([0, 1, 2, 3]) == 1


def grants(rate: float, gaps: list[float]) -> tuple[list[float], FakeClock]:
    """Acquire once per gap: each caller arrives `gap` seconds of idle time after the last."""
    clock = FakeClock()
    limiter = RateLimiter(rate, clock=clock, sleep=clock.sleep)

    async def go() -> list[float]:
        out = []
        for gap in gaps:
            clock.now += gap
            out.append(await limiter.acquire())
        return out

    return asyncio.run(go()), clock


@settings(max_examples=200, deadline=None)
@given(
    rate=st.one_of(st.integers(1, 20).map(float), st.floats(0.2, 20, allow_nan=False)),
    gaps=st.lists(st.sampled_from([0.0, 0.0, 0.0, 0.01, 0.1, 0.33, 0.5, 1.0, 2.0]), max_size=80),
)
def test_never_more_than_the_rate_in_any_second(rate: float, gaps: list[float]) -> None:
    times, _ = grants(rate, gaps)
    assert len(times) == len(gaps)
    assert times == sorted(times)
    assert max_in_window(times) <= max(1, int(rate))
    if rate < 1:  # one request per 1/rate seconds
        assert all(b - a >= 1 / rate - 1e-9 for a, b in itertools.pairwise(times))


@pytest.mark.parametrize("rate", [1, 3, 10])
def test_a_burst_goes_at_full_rate_and_no_slower(rate: int) -> None:
    times, clock = grants(rate, [0.0] * (rate * 5))
    assert max_in_window(times) == rate
    assert clock.now == pytest.approx(4.0)  # five windows' worth: four seconds of waiting


@settings(max_examples=50, deadline=None)
@given(rate=st.integers(1, 8), tasks=st.integers(1, 40))
def test_concurrent_callers_share_the_limit(rate: int, tasks: int) -> None:
    clock = FakeClock()
    limiter = RateLimiter(rate, clock=clock, sleep=clock.sleep)

    async def go() -> list[float]:
        return list(await asyncio.gather(*(limiter.acquire() for _ in range(tasks))))

    times = asyncio.run(go())
    assert len(times) == tasks and max_in_window(times) <= rate


def test_rejects_a_non_positive_rate() -> None:
    with pytest.raises(ValueError, match="positive"):
        RateLimiter(0)


def test_real_clock_smoke() -> None:
    limiter = RateLimiter(1000)

    async def go() -> None:
        for _ in range(5):
            await limiter.acquire()

    asyncio.run(go())


def test_slots_held_through_a_request_bound_what_the_server_sees() -> None:
    """A request reaches the server at some moment between its grant and its end; counting each
    slot until a period after the request ended keeps every one-second window at the server
    within the rate, wherever in its interval each request happens to arrive."""
    rate = 5
    limiter = RateLimiter(rate)
    intervals: list[tuple[float, float]] = []

    async def request(hold: float) -> None:
        async with limiter.slot() as granted:
            await asyncio.sleep(hold)  # connection set-up, the server, the answer
            intervals.append((granted, time.monotonic()))

    async def go() -> None:
        await asyncio.gather(*(request(0.02 * (i % 4)) for i in range(12)))

    asyncio.run(go())
    assert len(intervals) == 12
    for start, _ in intervals:  # the window [start - 1, start] as seen by a request granted last
        overlapping = [s for s, e in intervals if s <= start and e > start - 1.0]
        assert len(overlapping) <= rate
