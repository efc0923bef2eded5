"""Cooldown (a circuit breaker per deployment), in memory for one process.

A deployment is *closed* (used) until ``failures`` deployment failures (see
`DEPLOYMENT_FAILURES`) fall within ``window`` seconds; it is then *open* — skipped — for
``seconds``. After that it is *half-open*: the next request that wants it is its probe (others
still skip it while the probe runs, for at most ``seconds``); the probe's success closes it, a
failure opens it again for ``seconds``. Successes do not erase failures inside the window.

`Health` is the interface; `RedisHealth` (``redis_health``) shares the same state between
replicas.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

from .settings import CooldownPolicy

__all__ = ["ALLOWED", "Admission", "CircuitState", "Health", "MemoryHealth"]

_MAX_CIRCUITS = 4096  # closed circuits without recent failures are dropped beyond this


class Admission(NamedTuple):
    """Whether a deployment may be tried now; ``probe`` when this try is its probe; ``wait``
    the seconds until it may be tried when it may not."""

    allowed: bool
    probe: bool = False
    wait: float = 0.0


ALLOWED = Admission(True)


class CircuitState(NamedTuple):
    """What the cooldown says of a deployment now, for dashboards: ``state`` is ``closed``
    (used), ``open`` (skipped for ``retry_in`` more seconds) or ``half-open`` (its next request
    is a probe); ``failures`` are those counted in the current window."""

    state: str = "closed"
    retry_in: float = 0.0
    failures: int = 0


CLOSED = CircuitState()


class Health:
    """Cooldown state of deployments (by `Target.key`); the base class never cools anything."""

    async def start(self) -> None:
        """Open connections (in the serving event loop)."""

    async def close(self) -> None:
        """Close what `start` opened."""

    async def ping(self) -> None:
        """Raise when the shared state cannot be reached now (for ``/health/ready``); state in
        this process always can be."""

    async def admit(self, key: str) -> Admission:
        return ALLOWED

    async def failure(self, key: str) -> None:
        """A deployment failure of ``key`` (one of `DEPLOYMENT_FAILURES`)."""

    async def success(self, key: str) -> None:
        """``key`` answered its probe (called for probes only)."""

    async def state(self, key: str) -> CircuitState:
        """The circuit of ``key`` now (read only; nothing changes)."""
        return CLOSED


@dataclass
class _Circuit:
    failures: deque[float] = field(default_factory=deque)
    open_until: float = 0.0  # 0: closed
    probe_until: float = 0.0


class MemoryHealth(Health):
    """The circuits of one gateway. ``clock`` (seconds) is replaceable for tests."""

    def __init__(self, policy: CooldownPolicy, clock: Callable[[], float] = time.monotonic) -> None:
        self.policy = policy
        self.clock = clock
        self.circuits: dict[str, _Circuit] = {}

    async def admit(self, key: str) -> Admission:
        circuit = self.circuits.get(key)
        if circuit is None or not circuit.open_until:
            return ALLOWED
        now = self.clock()
        if now < circuit.open_until:
            return Admission(False, wait=circuit.open_until - now)
        if now < circuit.probe_until:
            return Admission(False, wait=circuit.probe_until - now)
        circuit.probe_until = now + self.policy.seconds
        return Admission(True, probe=True)

    async def failure(self, key: str) -> None:
        policy = self.policy
        if policy.failures <= 0:
            return
        now = self.clock()
        circuit = self.circuits.get(key)
        if circuit is None:
            if len(self.circuits) >= _MAX_CIRCUITS:
                self._prune(now)
            circuit = self.circuits[key] = _Circuit()
        if circuit.open_until:
            if now >= circuit.open_until:  # half-open: the probe failed
                circuit.open_until, circuit.probe_until = now + policy.seconds, 0.0
            return
        circuit.failures.append(now)
        while circuit.failures and circuit.failures[0] <= now - policy.window:
            circuit.failures.popleft()
        if len(circuit.failures) >= policy.failures:
            circuit.failures.clear()
            circuit.open_until, circuit.probe_until = now + policy.seconds, 0.0

    async def success(self, key: str) -> None:
        circuit = self.circuits.get(key)
        if circuit is not None and circuit.open_until and self.clock() >= circuit.open_until:
            del self.circuits[key]

    async def state(self, key: str) -> CircuitState:
        circuit = self.circuits.get(key)
        if circuit is None:
            return CLOSED
        now = self.clock()
        failures = sum(1 for t in circuit.failures if t > now - self.policy.window)
        if not circuit.open_until:
            return CircuitState("closed", 0.0, failures)
        if now < circuit.open_until:
            return CircuitState("open", circuit.open_until - now, failures)
        return CircuitState("half-open", 0.0, failures)

    def _prune(self, now: float) -> None:
        window = self.policy.window
        self.circuits = {
            key: circuit
            for key, circuit in self.circuits.items()
            if circuit.open_until or (circuit.failures and circuit.failures[-1] > now - window)
        }
