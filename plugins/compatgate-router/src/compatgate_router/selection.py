"""Choosing among a group's deployments: the order in which one request tries them.

- ``weighted`` (the default): a weighted random order — the first pick is deployment *i* with
  probability ``weight_i / sum(weights)``, and so is each next pick among those left
  (Efraimidis–Spirakis keys ``u ** (1 / weight)``).
- ``least_in_flight``: fewest requests in flight through this gateway first (ties: weighted).
- ``lowest_latency``: lowest recent latency first — an exponentially weighted moving average of
  the time to the answer or first chunk of successful tries; a deployment never measured counts
  as 0, so it is tried (ties: weighted).
- ``ordered``: as listed (a primary and its backups).

`Stats` holds the in-flight counts and latencies of one gateway (one process).
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from .plan import Target

__all__ = ["LATENCY_ALPHA", "Stats", "order"]

LATENCY_ALPHA = 0.3  # weight of the newest sample in the moving average
_MAX_KEYS = 4096  # idle entries are dropped beyond this many deployments


class Stats:
    """Requests in flight and the latency average of each deployment (by `Target.key`)."""

    def __init__(self) -> None:
        self.in_flight: dict[str, int] = {}
        self.latency_ms: dict[str, float] = {}

    def started(self, key: str) -> None:
        self.in_flight[key] = self.in_flight.get(key, 0) + 1

    def ended(self, key: str) -> None:
        count = self.in_flight.get(key, 0) - 1
        if count > 0:
            self.in_flight[key] = count
        else:
            self.in_flight.pop(key, None)

    def measured(self, key: str, latency_ms: float) -> None:
        """A successful try took ``latency_ms`` to its answer or first chunk."""
        previous = self.latency_ms.get(key)
        self.latency_ms[key] = latency_ms if previous is None else previous + LATENCY_ALPHA * (latency_ms - previous)
        if len(self.latency_ms) > _MAX_KEYS:
            self.latency_ms = {k: v for k, v in self.latency_ms.items() if k in self.in_flight}


def order(targets: Sequence[Target], strategy: str, stats: Stats, rng: random.Random) -> list[Target]:
    """``targets`` in the order one request should try them."""
    if strategy == "ordered" or len(targets) < 2:
        return list(targets)
    draw = {target.key: rng.random() ** (1.0 / target.weight) for target in targets}
    if strategy == "least_in_flight":
        return sorted(targets, key=lambda t: (stats.in_flight.get(t.key, 0), -draw[t.key]))
    if strategy == "lowest_latency":
        return sorted(targets, key=lambda t: (stats.latency_ms.get(t.key, 0.0), -draw[t.key]))
    return sorted(targets, key=lambda t: -draw[t.key])
