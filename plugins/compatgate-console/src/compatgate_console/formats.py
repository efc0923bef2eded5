"""How the console writes values in its pages and exports: money, numbers, times."""

from __future__ import annotations

from datetime import UTC, datetime

from compatgate_billing.pricing import format_micro

__all__ = ["date", "money", "ms", "num", "when"]


def money(micro: int | None) -> str:
    if micro is None:
        return "—"
    text = format_micro(micro).rstrip("0")
    whole, _, fraction = text.partition(".")
    return f"{int(whole):,}.{fraction.ljust(2, '0')}" if not whole.startswith("-") else \
        f"-{int(whole[1:]):,}.{fraction.ljust(2, '0')}"


def num(value: int | float | None) -> str:
    if value is None:
        return "—"
    return f"{value:,}" if isinstance(value, int) else f"{value:,.2f}"


def when(millis: int | None) -> str:
    if millis is None:
        return "—"
    return datetime.fromtimestamp(millis / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")


def date(millis: int | None) -> str:
    return "never" if millis is None else datetime.fromtimestamp(millis / 1000, UTC).strftime("%Y-%m-%d")


def ms(value: int | None) -> str:
    return "—" if value is None else f"{value:,} ms"
