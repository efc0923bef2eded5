"""The algorithm at the backend level, the same on both backends (time from a fake clock):
all-or-nothing admissions, lease expiry and renewal, late corrections, the per-day buckets."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
from compatgate_ratelimit import (
    Backend,
    Correction,
    MemoryBackend,
    Plan,
    Pool,
    RedisBackend,
    Window,
)
from ratelimit_support import FakeClock

START = 1_000_020.0  # seconds; a whole minute, so per-day buckets start here


@pytest.fixture(params=["memory", "redis"])
def make(
    request: pytest.FixtureRequest, key_prefix: str
) -> Iterator[tuple[FakeClock, Callable[..., Any]]]:
    """(clock, run): ``run(async_function)`` calls it with a started backend on that clock."""
    clock = FakeClock(START)

    def run(function: Callable[[Backend], Awaitable[None]]) -> None:
        async def main() -> None:
            if request.param == "memory":
                backend: Backend = MemoryBackend(clock=clock)
            else:
                url = request.getfixturevalue("redis_url")
                backend = RedisBackend(url, key_prefix=key_prefix, clock=clock)
            await backend.start()
            try:
                await function(backend)
            finally:
                await backend.close()

        asyncio.run(main())

    yield clock, run


def window(name: str = "rpm", limit: int = 10, cost: int = 1, key: str = "key:k") -> Window:
    if name == "tpd":
        return Window(f"{key}:tpd", "tpd", key, limit, 86_400_000, 60_000, cost)
    return Window(f"{key}:{name}", name, key, limit, 60_000, 1, cost)  # type: ignore[arg-type]


def test_a_refusal_reserves_nothing_anywhere(make):
    _, run = make
    requests, tokens = window("rpm", 10), window("tpm", 1000, 300)
    pool = Pool("key:k:concurrency", "key k", 1)

    async def check(backend: Backend) -> None:
        assert (await backend.admit(Plan((requests, tokens), (pool,)), "a", 10_000)).admitted
        refused = await backend.admit(Plan((requests, tokens), (pool,)), "b", 10_000)
        assert not refused.admitted
        assert [s.retry_ms for s in refused.windows] == [0, 0] and refused.pools[0].retry_ms > 0
        assert (
            (await backend.admit(Plan((requests, window("tpm", 1000, 800))), "c", 10_000))
            .windows[1]
            .retry_ms
        )
        seen = await backend.admit(Plan((requests, tokens), (pool,)), "", 10_000, peek=True)
        assert [s.used for s in seen.windows] == [1, 300] and seen.pools[0].used == 1
        await backend.settle([], [pool.key], "a")
        assert (await backend.admit(Plan((requests,), (pool,)), "d", 10_000)).admitted

    run(check)


def test_leases_expire_unless_renewed(make):
    clock, run = make
    pool = Pool("key:k:concurrency", "key k", 2)
    plan = Plan((), (pool,))

    async def check(backend: Backend) -> None:
        assert (await backend.admit(plan, "a", 3000)).admitted
        assert (await backend.admit(plan, "b", 3000)).admitted
        refused = await backend.admit(plan, "c", 3000)
        assert not refused.admitted and refused.pools[0].used == 2
        clock.advance(2.0)
        await backend.renew([(pool.key, "a")], 3000)  # a lives on until 5.0; b ends at 3.0
        clock.advance(1.0)
        decision = await backend.admit(plan, "c", 3000)
        assert decision.admitted and decision.pools[0].used == 2
        clock.advance(2.5)  # a expired at 5.0 (not renewed again): renewing now does not revive it
        await backend.renew([(pool.key, "a")], 3000)
        decision = await backend.admit(plan, "d", 3000)
        assert decision.admitted and decision.pools[0].used == 2  # c and d

    run(check)


def test_corrections_after_the_window_count_now(make):
    clock, run = make
    tokens = window("tpm", 1000, 100)

    async def check(backend: Backend) -> None:
        first = await backend.admit(Plan((tokens,)), "a", 1000)
        clock.advance(30)
        await backend.settle(
            [Correction(tokens, first.now_ms, -60)], [], "a"
        )  # still in the window
        seen = await backend.admit(Plan((tokens,)), "", 1000, peek=True)
        assert seen.windows[0].used == 40
        clock.advance(31)  # the reservation left the window
        await backend.settle([Correction(tokens, first.now_ms, 70)], [], "a")  # counted now
        await backend.settle([Correction(tokens, first.now_ms, -500)], [], "a")  # dropped
        seen = await backend.admit(Plan((tokens,)), "", 1000, peek=True)
        assert seen.windows[0].used == 70 and seen.windows[0].reset_ms == 60_000

    run(check)


def test_the_day_window_frees_at_the_end_of_the_minute_never_earlier(make):
    clock, run = make
    day = window("tpd", 100, 100)

    async def check(backend: Backend) -> None:
        clock.advance(30.5)
        assert (await backend.admit(Plan((day,)), "a", 1000)).admitted
        clock.advance(86_400)  # exactly one day later: still counted, as if spent at START+59.999
        refused = await backend.admit(Plan((day,)), "b", 1000)
        assert not refused.admitted and refused.windows[0].retry_ms == 29_499
        clock.advance(29.498)
        assert not (await backend.admit(Plan((day,)), "b", 1000)).admitted
        clock.advance(0.001)
        assert (await backend.admit(Plan((day,)), "b", 1000)).admitted

    run(check)


def test_a_cost_above_the_limit_never_fits(make):
    _, run = make

    async def check(backend: Backend) -> None:
        decision = await backend.admit(Plan((window("tpm", 100, 101),)), "a", 1000)
        assert not decision.admitted and decision.windows[0].retry_ms == -1

    run(check)
