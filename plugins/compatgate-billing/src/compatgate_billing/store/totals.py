"""Totals of the usage ledger, grouped by key, model and UTC day."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .db import Database

__all__ = ["GROUPS", "TOTAL_FIELDS", "usage_totals"]

_TOTALS = (
    "COUNT(*), SUM(CASE WHEN status = 'ok' THEN 1 ELSE 0 END), "
    "SUM(CASE WHEN status = 'error' THEN 1 ELSE 0 END), SUM(CASE WHEN status = 'aborted' THEN 1 ELSE 0 END), "
    "SUM(CASE WHEN estimated THEN 1 ELSE 0 END), SUM(prompt_tokens), SUM(completion_tokens), "
    "SUM(cached_tokens), SUM(cache_write_tokens), SUM(reasoning_tokens), SUM(cost_micro), SUM(charged_micro), "
    "SUM(CASE WHEN cached THEN 1 ELSE 0 END)"
)
TOTAL_FIELDS = (
    "requests",
    "ok",
    "errors",
    "aborted",
    "estimated",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "cost_micro",
    "charged_micro",
    "cache_hits",
)
GROUPS = ("key", "model", "day")


async def usage_totals(
    db: Database,
    group_by: Sequence[str] = (),
    *,
    since_ms: int | None = None,
    until_ms: int | None = None,
    key_id: str | None = None,
) -> list[dict[str, Any]]:
    """Totals of ``billing_usage`` grouped by any of `GROUPS` (in that order of columns), for
    requests from ``since_ms`` (included) to ``until_ms`` (excluded); groups without requests
    are left out."""
    expressions = {"key": "key_id", "model": "model", "day": db.day}
    unknown = [g for g in group_by if g not in expressions]
    if unknown:
        raise ValueError(f"cannot group by {unknown[0]!r} (choose from {', '.join(GROUPS)})")
    clauses, args = [], []
    for clause, value in (
        ("created_ms >= ", since_ms),
        ("created_ms < ", until_ms),
        ("key_id = ", key_id),
    ):
        if value is not None:
            args.append(value)
            clauses.append(f"{clause}${len(args)}")
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    columns = [expressions[g] for g in group_by]
    select = ", ".join([*columns, _TOTALS])
    grouping = ""
    if columns:
        positions = ", ".join(str(i) for i in range(1, len(columns) + 1))
        grouping = f"GROUP BY {positions} ORDER BY {positions}"
    rows = await db.reader.fetch(f"SELECT {select} FROM billing_usage {where} {grouping}", *args)
    names = [("key_id" if g == "key" else g) for g in group_by]
    totals = []
    for row in rows:
        total: dict[str, Any] = dict(zip(names, row[: len(names)], strict=True))
        total.update(
            (name, int(value or 0))
            for name, value in zip(TOTAL_FIELDS, row[len(names) :], strict=True)
        )
        if total["requests"]:
            totals.append(total)
    return totals
