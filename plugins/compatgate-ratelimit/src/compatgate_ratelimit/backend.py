"""What a backend stores and answers: sliding-window logs and concurrency leases.

The algorithm, the same in every backend:

- **Windows** (rpm, tpm, tpd) are *sliding window logs*. An admission at time ``t`` (ms) adds
  its cost (1 request, or the token estimate) to the bucket ``t // quantum``; a bucket counts
  until ``last_ms_of_bucket + window``. With the 1 ms quantum of the per-minute windows this is
  an exact log: at most ``limit`` units in any ``window`` ms, and the capacity comes back at the
  exact millisecond. The per-day window coalesces into one-minute buckets (at most 1,440
  entries per scope) and counts each bucket as if it happened at its last millisecond, so it is
  never more generous than the exact log and frees capacity at most one minute late.
- **Pools** (concurrency) hold one *lease* per in-flight request, each with an expiry; the
  plugin renews its live leases and releases them when the request ends, so a lease outlives
  its request only when the process died, and then for at most ``lease_seconds``.
- An admission checks every window and pool of the request together and writes only when all
  of them fit: a refusal reserves nothing anywhere.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "Backend",
    "BackendUnavailable",
    "Correction",
    "Decision",
    "Plan",
    "Pool",
    "PoolState",
    "Window",
    "WindowState",
]

FITS = 0  # WindowState.retry_ms / PoolState.retry_ms when the request fits
NEVER = -1  # retry_ms when the cost alone exceeds the limit


@dataclass(frozen=True, slots=True)
class Window:
    """One sliding-window limit of one scope, with the cost of the request being admitted."""

    key: str  # storage name, unique per scope and limit, e.g. "key:static:0:tpm"
    name: Literal["rpm", "tpm", "tpd"]
    scope: str  # for messages: 'key static:0', 'model gpt-4o', 'provider openai'
    limit: int
    window_ms: int
    quantum_ms: int
    cost: int

    @property
    def kind(self) -> Literal["requests", "tokens"]:
        return "requests" if self.name == "rpm" else "tokens"


@dataclass(frozen=True, slots=True)
class Pool:
    """One concurrency limit of one scope."""

    key: str  # e.g. "key:static:0:concurrency"
    scope: str
    limit: int


@dataclass(frozen=True, slots=True)
class Plan:
    """Everything one admission checks and reserves, atomically."""

    windows: tuple[Window, ...] = ()
    pools: tuple[Pool, ...] = ()


@dataclass(frozen=True, slots=True)
class WindowState:
    """A window after the admission (before it, when refused).

    ``used``: units counted now; ``reset_ms``: until the window is empty; ``retry_ms``: `FITS`
    (0), `NEVER` (-1) or, when this window refused the request, ms until its cost fits.
    """

    used: int
    reset_ms: int
    retry_ms: int = FITS


@dataclass(frozen=True, slots=True)
class PoolState:
    """A pool after the admission: leases held, and ``retry_ms`` as in `WindowState`."""

    used: int
    retry_ms: int = FITS


@dataclass(frozen=True, slots=True)
class Decision:
    """The answer to an admission: the states follow the order of the plan."""

    admitted: bool
    now_ms: int
    windows: tuple[WindowState, ...]
    pools: tuple[PoolState, ...]


@dataclass(frozen=True, slots=True)
class Correction:
    """Change what an admission at ``at_ms`` reserved in ``window`` by ``delta`` units."""

    window: Window
    at_ms: int
    delta: int


class BackendUnavailable(Exception):
    """The backend could not answer (Redis unreachable, timed out, failed)."""


class Backend(abc.ABC):
    """Where the windows and leases live. Every method is one atomic operation."""

    async def start(self) -> None:
        """Open connections (called from the gateway's `startup`)."""

    async def close(self) -> None:
        """Close what `start` opened."""

    async def ping(self) -> None:
        """Raise `BackendUnavailable` when the backend cannot answer now (for
        ``/health/ready``); a backend in this process always can."""

    @abc.abstractmethod
    async def admit(self, plan: Plan, lease: str, lease_ms: int, *, peek: bool = False) -> Decision:
        """Check every window and pool of ``plan``; when all fit (and not ``peek``), add each
        window's cost and take lease ``lease`` in each pool for ``lease_ms``."""

    @abc.abstractmethod
    async def settle(
        self, corrections: Sequence[Correction], pools: Sequence[str], lease: str
    ) -> None:
        """Apply ``corrections`` and release ``lease`` from the pools named ``pools``. A
        correction of a reservation that already left its window counts a positive ``delta``
        now and drops a negative one."""

    @abc.abstractmethod
    async def renew(self, leases: Sequence[tuple[str, str]], lease_ms: int) -> None:
        """Extend each live ``(pool key, lease)`` to ``lease_ms`` from now (an expired lease
        stays gone)."""
