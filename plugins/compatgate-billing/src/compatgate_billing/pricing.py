"""Money and prices, in integers only.

Amounts are integer *micro-units* of the configured currency (1 unit = 1,000,000 micro-units),
so the database never holds a float. A price is kept as micro-units per million tokens; the cost
of a request is the exact sum over token kinds, rounded up once to the next micro-unit.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from compatgate import Usage

__all__ = [
    "MICRO",
    "Price",
    "PriceTable",
    "format_micro",
    "request_output_limit",
    "to_micro",
]

MICRO = 1_000_000
_TOKENS_PER_PRICE = 1_000_000  # prices are per million tokens


def to_micro(value: Any) -> int:
    """``value`` (an int, a float as written in TOML or JSON, or a decimal string) in
    micro-units, exactly; ValueError when it is not a finite number with at most six decimals."""
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        raise ValueError("must be a number")
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        raise ValueError(f"{value!r} is not a number") from None
    if not amount.is_finite():
        raise ValueError("must be a finite number")
    micro = amount * MICRO
    if micro != micro.to_integral_value():
        raise ValueError(f"{value!r} has more than six decimal places")
    return int(micro)


def format_micro(micro: int) -> str:
    """Micro-units as a decimal amount with six places: ``12500000`` → ``"12.500000"``."""
    sign = "-" if micro < 0 else ""
    whole, fraction = divmod(abs(micro), MICRO)
    return f"{sign}{whole}.{fraction:06d}"


def _ceil_div(numerator: int, denominator: int) -> int:
    return -(-numerator // denominator)


@dataclass(frozen=True, slots=True)
class Price:
    """Micro-units per million tokens of each kind; ``max_tokens`` is the most output tokens the
    model produces, the worst case when a request sets no limit (None: the plugin default)."""

    input: int = 0
    output: int = 0
    cached_input: int | None = None  # None: billed as input
    cache_write: int | None = None  # None: billed as input
    max_tokens: int | None = None

    def cost(self, usage: Usage) -> int:
        """The cost of ``usage`` in micro-units, rounded up. ``prompt_tokens`` counts every input
        token, the cached reads and the cache writes included (OpenAI's convention)."""
        prompt = max(usage.prompt_tokens, 0)
        cached = min(max(usage.cached_tokens or 0, 0), prompt)
        written = min(max(usage.cache_write_tokens or 0, 0), prompt - cached)
        fresh = prompt - cached - written
        total = (
            fresh * self.input
            + cached * (self.input if self.cached_input is None else self.cached_input)
            + written * (self.input if self.cache_write is None else self.cache_write)
            + max(usage.completion_tokens, 0) * self.output
        )
        return _ceil_div(total, _TOKENS_PER_PRICE)

    def worst_case(self, prompt_tokens: int, output_tokens: int) -> int:
        """The most ``prompt_tokens`` in and ``output_tokens`` out can cost: every prompt token at
        the dearest input rate (a cache write may cost more than plain input)."""
        rates = [self.input, self.cached_input or 0, self.cache_write or 0]
        return _ceil_div(
            prompt_tokens * max(rates) + output_tokens * self.output, _TOKENS_PER_PRICE
        )


class PriceTable:
    """Prices by client-facing model name: an exact name first, then glob patterns
    (``"gpt-4o*"``) in the order the configuration lists them."""

    def __init__(self, prices: Mapping[str, Price]) -> None:
        self._exact = {name: price for name, price in prices.items() if not _is_glob(name)}
        self._globs = [(name, price) for name, price in prices.items() if _is_glob(name)]

    def lookup(self, model: str) -> Price | None:
        price = self._exact.get(model)
        if price is not None:
            return price
        for pattern, candidate in self._globs:
            if fnmatch.fnmatchcase(model, pattern):
                return candidate
        return None

    def __len__(self) -> int:
        return len(self._exact) + len(self._globs)


def _is_glob(name: str) -> bool:
    return any(char in name for char in "*?[")


def request_output_limit(endpoint: str, body: Mapping[str, Any], model_max: int) -> int:
    """The most output tokens a request may produce: its ``max_completion_tokens`` or
    ``max_tokens`` (else ``model_max``), times the number of choices (``n``, or ``best_of`` for
    legacy completions); 0 for embeddings."""
    if endpoint == "embeddings":
        return 0
    limit = (
        _positive(body.get("max_completion_tokens"))
        or _positive(body.get("max_tokens"))
        or model_max
    )
    choices = _positive(body.get("n")) or 1
    if endpoint == "completions":
        choices = max(choices, _positive(body.get("best_of")) or 1)
    return limit * choices


def _positive(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None
