"""Usage over time for the charts: requests, tokens, spend and error rate per time bucket,
broken down by model, key or provider.

A range is a fixed number of buckets aligned on the epoch (``hour``: 60 × 1 minute, ``day``:
96 × 15 minutes, ``month``: 120 × 6 hours, i.e. 30 days). The ledger is read through
`LedgerReports.series` (an index range scan of the period, of one key with ``key_id``). A
bucket that ended more than `GRACE_MS` ago no longer changes (ledger rows are written seconds
after their request), so `SeriesCache` keeps the totals of such closed buckets and a view reads
only the buckets not seen yet: after the first view of a range, a page reads the newest bucket
or two. The cache is per process and bounded (`SCOPES_KEPT` ranges × dimension × key).
"""

from __future__ import annotations

from collections import OrderedDict, defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from compatgate_billing.pricing import MICRO
from compatgate_billing.reports import LedgerReports, SeriesRow
from compatgate_billing.store import now_ms

__all__ = ["GRACE_MS", "RANGES", "Range", "SeriesCache", "Usage", "build_usage"]

GRACE_MS = 120_000
SCOPES_KEPT = 256
TOP_GROUPS = 6


@dataclass(frozen=True, slots=True)
class Range:
    name: str
    label: str
    bucket_ms: int
    buckets: int


RANGES: dict[str, Range] = {
    "hour": Range("hour", "Last hour", 60_000, 60),
    "day": Range("day", "Last 24 hours", 900_000, 96),
    "month": Range("month", "Last 30 days", 21_600_000, 120),
}

Totals = tuple[int, int, int, int, int, int, int]  # requests errors aborted tokens cost charged latency


class SeriesCache:
    """Reads series for `RANGES`, keeping closed buckets (see the module's documentation)."""

    def __init__(self, reports: LedgerReports, clock: Callable[[], int] = now_ms) -> None:
        self.reports = reports
        self.clock = clock
        self._scopes: OrderedDict[tuple[Any, ...], dict[int, list[SeriesRow]]] = OrderedDict()

    async def buckets(
        self, range_: Range, *, by: str | None = None, key_id: str | None = None
    ) -> tuple[int, dict[int, list[SeriesRow]]]:
        """``(start_ms, {bucket start ms: rows})`` of the range ending with the current bucket."""
        now = self.clock()
        size = range_.bucket_ms
        end = (now // size + 1) * size
        start = end - range_.buckets * size
        scope = (by, key_id, size)
        cached = self._scopes.pop(scope, {})
        self._scopes[scope] = cached
        while len(self._scopes) > SCOPES_KEPT:
            self._scopes.popitem(last=False)
        first = start
        while first < end and first in cached:
            first += size
        fresh: dict[int, list[SeriesRow]] = defaultdict(list)
        if first < end:
            for row in await self.reports.series(first, end, size, by=by, key_id=key_id):  # type: ignore[arg-type]
                fresh[first + row.bucket * size].append(row)
            for bucket in range(first, end, size):
                if bucket + size <= now - GRACE_MS:
                    cached[bucket] = fresh.get(bucket, [])
        for bucket in [b for b in cached if b < start]:
            del cached[bucket]
        return start, {
            bucket: cached[bucket] if bucket in cached else fresh.get(bucket, [])
            for bucket in range(start, end, size)
        }


@dataclass(frozen=True)
class Usage:
    """What the charts and tables of one range show."""

    range: Range
    by: str | None
    times: list[int]  # bucket starts, Unix seconds
    totals: dict[str, list[float]]  # requests, tokens, spend, error_rate per bucket
    groups: list[str]  # the largest groups by requests (at most TOP_GROUPS), then "other"
    by_group: dict[str, dict[str, list[float]]]  # metric -> group -> values per bucket
    summary: list[dict[str, Any]]  # one row per group, most requests first
    total: dict[str, Any]

    def chart(self, metric: str, title: str, unit: str, labels: Mapping[str, str] | None = None) -> dict[str, Any]:
        """The data of one chart (``data-chart`` of the page): a series per group, or the total."""
        series = [
            {"label": (labels or {}).get(group, group) or "(none)", "values": values}
            for group, values in self.by_group.get(metric, {}).items()
        ] or [{"label": "all", "values": self.totals[metric]}]
        return {"title": title, "unit": unit, "t": self.times, "series": series}


def build_usage(range_: Range, start: int, buckets: dict[int, list[SeriesRow]], by: str | None) -> Usage:
    """Charts and tables from `SeriesCache.buckets`."""
    starts = sorted(buckets)
    per_group: dict[str, list[int]] = defaultdict(lambda: [0] * 7)
    for rows in buckets.values():
        for row in rows:
            _add(per_group[row.group], row)
    ranked = sorted(per_group, key=lambda g: (-per_group[g][0], g))
    top = ranked[:TOP_GROUPS]
    groups = top + (["other"] if len(ranked) > TOP_GROUPS else [])
    totals: dict[str, list[float]] = {m: [] for m in ("requests", "tokens", "spend", "error_rate")}
    by_group: dict[str, dict[str, list[float]]] = {
        m: {g: [] for g in groups} for m in ("requests", "tokens", "spend")
    } if by else {}
    for bucket in starts:
        all_rows = [0] * 7
        grouped: dict[str, list[int]] = defaultdict(lambda: [0] * 7)
        for row in buckets[bucket]:
            _add(all_rows, row)
            _add(grouped[row.group if row.group in top else "other"], row)
        totals["requests"].append(all_rows[0])
        totals["tokens"].append(all_rows[3])
        totals["spend"].append(all_rows[5] / MICRO)
        totals["error_rate"].append(round(100 * all_rows[1] / all_rows[0], 2) if all_rows[0] else 0)
        for group in (groups if by else ()):
            values = grouped.get(group, [0] * 7)
            by_group["requests"][group].append(values[0])
            by_group["tokens"][group].append(values[3])
            by_group["spend"][group].append(values[5] / MICRO)
    summary = [_summary(group, per_group[group]) for group in ranked]
    everything = [0] * 7
    for values in per_group.values():
        for i in range(7):
            everything[i] += values[i]
    return Usage(range_, by, [b // 1000 for b in starts], totals, groups, by_group, summary,
                 _summary("", everything))


def _add(into: list[int], row: SeriesRow) -> None:
    for i, value in enumerate((row.requests, row.errors, row.aborted, row.tokens, row.cost_micro,
                               row.charged_micro, row.latency_ms_sum)):
        into[i] += value


def _summary(group: str, values: list[int]) -> dict[str, Any]:
    requests = values[0]
    return {
        "group": group,
        "requests": requests,
        "errors": values[1],
        "aborted": values[2],
        "error_rate": round(100 * values[1] / requests, 2) if requests else 0.0,
        "tokens": values[3],
        "cost_micro": values[4],
        "spend_micro": values[5],
        "avg_latency_ms": round(values[6] / requests) if requests else None,
    }
