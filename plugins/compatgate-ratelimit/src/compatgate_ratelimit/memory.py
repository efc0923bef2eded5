"""The in-memory backend: one process, one gateway (the default).

The same algorithm as the Redis scripts (see `compatgate_ratelimit.backend`), in plain Python.
No method awaits anything, so each runs atomically on the gateway's event loop.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Sequence

from .backend import (
    FITS,
    NEVER,
    Backend,
    Correction,
    Decision,
    Plan,
    PoolState,
    WindowState,
)

__all__ = ["MemoryBackend"]

_SWEEP_MS = 60_000


class _Log:
    """One window's buckets, oldest first: bucket index -> [last ms of the bucket, units]."""

    __slots__ = ("buckets", "total", "window_ms")

    def __init__(self, window_ms: int) -> None:
        self.buckets: OrderedDict[int, list[int]] = OrderedDict()
        self.total = 0
        self.window_ms = window_ms

    def purge(self, cutoff: int) -> None:
        """Drop the buckets whose last millisecond is at or before ``cutoff``."""
        buckets = self.buckets
        while buckets:
            bucket = next(iter(buckets))
            end, units = buckets[bucket]
            if end > cutoff:
                break
            del buckets[bucket]
            self.total -= units
        if not buckets:
            self.total = 0

    def add(self, now: int, quantum: int, units: int) -> None:
        bucket = now // quantum
        entry = self.buckets.get(bucket)
        if entry is None:
            self.buckets[bucket] = [bucket * quantum + quantum - 1, units]
        else:
            entry[1] += units
        self.total += units

    def retry_ms(self, need: int, now: int, window_ms: int) -> int:
        """Milliseconds until ``need`` units have left the window."""
        freed = 0
        for end, units in self.buckets.values():
            freed += units
            if freed >= need:
                return end + window_ms - now
        return NEVER

    def reset_ms(self, now: int, window_ms: int) -> int:
        if not self.buckets:
            return 0
        end = self.buckets[next(reversed(self.buckets))][0]
        return max(0, end + window_ms - now)


class _Pool:
    """One pool's leases: lease -> expiry (ms); expired ones are swept only once the earliest
    expiry has passed, so an admission costs O(1) while nothing expires."""

    __slots__ = ("earliest", "leases")

    def __init__(self) -> None:
        self.leases: dict[str, int] = {}
        self.earliest = 0  # a lower bound of the earliest expiry

    def purge(self, now: int) -> None:
        if self.leases and now >= self.earliest:
            for lease in [name for name, expiry in self.leases.items() if expiry <= now]:
                del self.leases[lease]
            self.earliest = min(self.leases.values(), default=0)

    def take(self, lease: str, expiry: int) -> None:
        self.earliest = min(self.earliest, expiry) if self.leases else expiry
        self.leases[lease] = expiry


class MemoryBackend(Backend):
    """Windows and leases in this process's memory. ``clock`` returns seconds (monotonic by
    default; tests inject their own)."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.logs: dict[str, _Log] = {}
        self.pools: dict[str, _Pool] = {}
        self._last = 0
        self._swept = 0

    def now_ms(self) -> int:
        self._last = max(self._last, round(self.clock() * 1000))  # never backwards
        return self._last

    async def admit(self, plan: Plan, lease: str, lease_ms: int, *, peek: bool = False) -> Decision:
        now = self.now_ms()
        admitted = True
        logs = []
        windows = []
        for window in plan.windows:
            log = self.logs.get(window.key)
            if log is None:
                log = _Log(window.window_ms)
            log.window_ms = window.window_ms
            log.purge(now - window.window_ms)
            logs.append(log)
            retry = FITS
            if not peek and log.total + window.cost > window.limit:
                admitted = False
                need = log.total + window.cost - window.limit
                retry = (
                    NEVER
                    if window.cost > window.limit
                    else log.retry_ms(need, now, window.window_ms)
                )
            windows.append(retry)
        pools = []
        for pool in plan.pools:
            held = self.pools.get(pool.key)
            leases = {} if held is None else held.leases
            if held is not None:
                held.purge(now)
            retry = FITS
            if not peek and len(leases) + 1 > pool.limit:
                admitted = False
                retry = max(1, min(1000, min(leases.values()) - now)) if leases else 1000
            pools.append(retry)
        if admitted and not peek:
            for window, log in zip(plan.windows, logs, strict=True):
                if window.cost:
                    log.add(now, window.quantum_ms, window.cost)
                    self.logs[window.key] = log
            for pool in plan.pools:
                self.pools.setdefault(pool.key, _Pool()).take(lease, now + lease_ms)
        return Decision(
            admitted and not peek,
            now,
            tuple(
                WindowState(log.total, log.reset_ms(now, w.window_ms), retry)
                for w, log, retry in zip(plan.windows, logs, windows, strict=True)
            ),
            tuple(
                PoolState(len(self.pools[p.key].leases) if p.key in self.pools else 0, retry)
                for p, retry in zip(plan.pools, pools, strict=True)
            ),
        )

    async def settle(
        self, corrections: Sequence[Correction], pools: Sequence[str], lease: str
    ) -> None:
        now = self.now_ms()
        for correction in corrections:
            window, delta = correction.window, correction.delta
            if not delta:
                continue
            log = self.logs.setdefault(window.key, _Log(window.window_ms))
            entry = log.buckets.get(correction.at_ms // window.quantum_ms)
            if entry is not None and entry[0] > now - window.window_ms:
                changed = max(0, entry[1] + delta) - entry[1]
                entry[1] += changed
                log.total += changed
            elif delta > 0:  # the reservation already left the window: count the excess now
                log.purge(now - window.window_ms)
                log.add(now, window.quantum_ms, delta)
        for key in pools:
            held = self.pools.get(key)
            if held is not None:
                held.leases.pop(lease, None)
                if not held.leases:
                    del self.pools[key]

    async def renew(self, leases: Sequence[tuple[str, str]], lease_ms: int) -> None:
        now = self.now_ms()
        for key, lease in leases:
            held = self.pools.get(key)
            if held is not None and held.leases.get(lease, 0) > now:
                held.leases[lease] = now + lease_ms  # later: `earliest` stays a lower bound
        if now - self._swept >= _SWEEP_MS:
            self._sweep(now)

    def _sweep(self, now: int) -> None:
        """Forget windows and pools that emptied while nobody looked (bounded memory)."""
        self._swept = now
        for key, log in list(self.logs.items()):
            log.purge(now - log.window_ms)
            if not log.buckets:
                del self.logs[key]
        for key, held in list(self.pools.items()):
            held.purge(now)
            if not held.leases:
                del self.pools[key]
