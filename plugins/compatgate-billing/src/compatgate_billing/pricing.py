"""Money and prices, in integers only.

Amounts are integer *micro-units* of the configured currency (1 unit = 1,000,000 micro-units),
so the database never holds a float. A token price is kept as micro-units per million tokens,
a unit price per image, per second of audio or per million characters of speech; the cost of a
request is the exact sum over what it used, rounded up once to the next micro-unit. Every
amount is bounded by `MAX_AMOUNT` (what the ledger's 64-bit integers hold, with room to sum).
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from compatgate import Units, Usage

__all__ = [
    "MAX_AMOUNT",
    "MICRO",
    "Price",
    "PriceTable",
    "format_micro",
    "to_micro",
]

MICRO = 1_000_000
MAX_AMOUNT = 2**62  # micro-units: no amount the plugin computes or stores exceeds it
_TOKENS_PER_PRICE = 1_000_000  # prices are per million tokens
_CHARACTERS_PER_PRICE = 1_000_000


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
    """Micro-units per million tokens of each kind, per image, per second of audio and per
    million characters of speech; ``max_tokens`` is the most output tokens the model produces,
    the worst case when neither the request nor the gateway sets a limit (None: the plugin
    default)."""

    input: int = 0
    output: int = 0
    cached_input: int | None = None  # None: billed as input
    cache_write: int | None = None  # None: billed as input
    max_tokens: int | None = None
    per_image: int = 0
    per_audio_second: int = 0
    per_million_characters: int = 0

    def cost(self, usage: Usage | None, units: Units | None = None) -> int:
        """The cost of ``usage`` (tokens) and ``units`` (images, audio, characters) in
        micro-units, rounded up. ``prompt_tokens`` counts every input token, the cached reads
        and the cache writes included (OpenAI's convention)."""
        return min(self._tokens(usage) + self._units(units), MAX_AMOUNT)

    def _units(self, units: Units | None) -> int:
        if units is None:
            return 0
        return (
            max(units.images, 0) * self.per_image
            + math.ceil(max(units.audio_seconds, 0.0) * self.per_audio_second)
            + _ceil_div(max(units.characters, 0) * self.per_million_characters, _CHARACTERS_PER_PRICE)
        )

    def _tokens(self, usage: Usage | None) -> int:
        if usage is None:
            return 0
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

    def worst_case(self, units: Units, default_output: int) -> int:
        """The most a request measured as ``units`` can cost: every prompt token at the dearest
        input rate (a cache write may cost more than plain input), the output cap at the output
        rate (``default_output`` when the request has none), and its images, audio seconds and
        characters. At most `MAX_AMOUNT`."""
        rates = [self.input, self.cached_input or 0, self.cache_write or 0]
        output = units.output_tokens if units.output_tokens is not None else default_output
        tokens = _ceil_div(max(units.prompt_tokens, 0) * max(rates) + max(output, 0) * self.output,
                           _TOKENS_PER_PRICE)
        return min(tokens + self._units(units), MAX_AMOUNT)


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
