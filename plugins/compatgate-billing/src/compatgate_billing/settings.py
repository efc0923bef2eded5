"""The ``[plugins.billing]`` table, checked at construction.

Every mistake is a `compatgate.ConfigError` naming the key (``plugins.billing.prices."gpt-4o".input``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from compatgate import Config
from compatgate.settings import Table

from .pricing import Price, PriceTable, to_micro

__all__ = ["PLUGIN_NAME", "BillingSettings", "parse_settings"]

PLUGIN_NAME = "billing"
_WHERE = f"plugins.{PLUGIN_NAME}"
DEFAULT_DATABASE = "sqlite:///compatgate-billing.db"
_KEYS = {
    "database",
    "schema",
    "pool_size",
    "secret",
    "admin_key",
    "unpriced",
    "reservation_ttl_seconds",
    "max_tokens",
    "queue_size",
    "batch_seconds",
    "prices",
    "cache_hit_fraction",
}
_TOKEN_RATES = ("input", "output", "cached_input", "cache_write")  # per million tokens
_UNIT_RATES = ("per_image", "per_audio_second", "per_million_characters")
_PRICE_KEYS = {*_TOKEN_RATES, *_UNIT_RATES, "max_tokens"}
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
_MIN_SECRET = 16

# How billing words a key it does not know.
_UNKNOWN = "{path}: unknown key{hint} (allowed: {allowed})"


@dataclass(frozen=True, slots=True)
class BillingSettings:
    """The checked ``[plugins.billing]`` table. ``sqlite_path`` is set for SQLite, ``dsn`` and
    ``schema`` for PostgreSQL."""

    dialect: Literal["sqlite", "postgresql"]
    sqlite_path: Path | None
    dsn: str | None = field(repr=False)
    schema: str
    pool_size: int
    secret: bytes = field(repr=False)
    admin_key: str | None = field(repr=False)
    unpriced: Literal["free", "refuse"]
    reservation_ttl: float
    max_tokens: int
    queue_size: int
    batch_seconds: float
    prices: PriceTable
    cache_hit_fraction: int = 0  # micro-units of 1: what share of its cost a cache hit is billed


def parse_settings(config: Config) -> BillingSettings | None:
    """The billing settings of ``config``; None when it has no ``[plugins.billing]`` table."""
    if PLUGIN_NAME not in config.plugins:
        return None
    table = Table(config.plugin(PLUGIN_NAME), _WHERE, config.source)
    table.only(_KEYS, message=_UNKNOWN)
    secret = table.get("secret")
    if not isinstance(secret, str) or len(secret) < _MIN_SECRET:
        raise table.error(
            f"is required: a random string of at least {_MIN_SECRET} characters, best read "
            'from the environment (secret = "${COMPATGATE_BILLING_SECRET}"); keys are stored as '
            "HMAC-SHA256 digests under it", "secret"
        )
    admin_key = table.get("admin_key")
    if admin_key is not None and (not isinstance(admin_key, str) or len(admin_key) < _MIN_SECRET):
        raise table.error(f"must be a string of at least {_MIN_SECRET} characters", "admin_key")
    unpriced = table.get("unpriced", "free")
    if unpriced not in ("free", "refuse"):
        raise table.error('must be "free" or "refuse"', "unpriced")
    dialect, sqlite_path, dsn = _database(table)
    schema = table.get("schema", "public")
    if not isinstance(schema, str) or not _IDENTIFIER.fullmatch(schema):
        raise table.error("must be a PostgreSQL identifier (letters, digits, underscores)", "schema")
    if "schema" in table and dialect != "postgresql":
        raise table.error("applies to a PostgreSQL database only", "schema")
    return BillingSettings(
        dialect=dialect,
        sqlite_path=sqlite_path,
        dsn=dsn,
        schema=schema,
        pool_size=_number(table, "pool_size", int, 10, low=1),
        secret=secret.encode(),
        admin_key=admin_key,
        unpriced=unpriced,
        reservation_ttl=_number(table, "reservation_ttl_seconds", float, 60.0, low=0.5),
        max_tokens=_number(table, "max_tokens", int, 4096, low=1),
        queue_size=_number(table, "queue_size", int, 10_000, low=1),
        batch_seconds=_number(table, "batch_seconds", float, 0.0, low=0.0),
        prices=_prices(table),
        cache_hit_fraction=_fraction(table),
    )


def _fraction(table: Table) -> int:
    """``cache_hit_fraction`` (0 to 1, at most six decimals) in micro-units of 1."""
    try:
        micro = to_micro(table.get("cache_hit_fraction", 0))
    except ValueError as exc:
        raise table.error(str(exc), "cache_hit_fraction") from None
    if not 0 <= micro <= 1_000_000:
        raise table.error("must be between 0 and 1 (the share of the price a cache hit pays)",
                          "cache_hit_fraction")
    return micro


def _database(table: Table) -> tuple[Literal["sqlite", "postgresql"], Path | None, str | None]:
    url = table.get("database", DEFAULT_DATABASE)
    if not isinstance(url, str):
        raise table.error("must be a string", "database")
    if url.startswith(("postgresql://", "postgres://")):
        return "postgresql", None, url
    if url.startswith("sqlite:///"):
        raw = url[len("sqlite:///") :]
        if not raw or raw == ":memory:":
            raise table.error("needs a file path for an SQLite database (sqlite:///billing.db)", "database")
        path = Path(raw)
        if not path.is_absolute():  # relative to the configuration file, like a person reads it
            source = table.source or "<dict>"
            base = Path(source).resolve().parent if source != "<dict>" else Path.cwd()
            path = base / path
        return "sqlite", path, None
    raise table.error('must be "sqlite:///PATH" or "postgresql://USER@HOST:PORT/DATABASE"', "database")


def _number(table: Table, key: str, kind: type[int | float], default: float, *, low: float) -> Any:
    value: Any = table.value(key, kind, default)
    if value < low:
        raise table.error(f"must be at least {low}", key)
    return value


def _prices(table: Table) -> PriceTable:
    raw = table.get("prices", {})
    if not isinstance(raw, Mapping):
        raise table.error('must be a table of models: [plugins.billing.prices."gpt-4o"]', "prices")
    prices: dict[str, Price] = {}
    for model, entry in raw.items():
        where = f'{_WHERE}.prices."{model}"'
        if not isinstance(entry, Mapping):
            raise table.error('must be a table (input = 2.5, output = 10.0)', f'prices."{model}"')
        price = Table(entry, where, table.source)
        price.only(_PRICE_KEYS, message=_UNKNOWN)
        rates: dict[str, int | None] = {}
        for kind in (*_TOKEN_RATES, *_UNIT_RATES):
            if kind not in price:
                rates[kind] = None if kind in ("cached_input", "cache_write") else 0
                continue
            try:
                rates[kind] = to_micro(price[kind])
            except ValueError as exc:
                unit = "per million tokens" if kind in _TOKEN_RATES else kind.replace("_", " ")
                raise price.error(f"({unit}) {exc}", kind) from None
            if rates[kind] < 0:  # type: ignore[operator]
                raise price.error("must not be negative", kind)
        limit = price.get("max_tokens")
        if limit is not None and (
            isinstance(limit, bool) or not isinstance(limit, int) or limit < 1
        ):
            raise price.error("must be a positive integer", "max_tokens")
        prices[str(model)] = Price(
            input=rates["input"] or 0,
            output=rates["output"] or 0,
            cached_input=rates["cached_input"],
            cache_write=rates["cache_write"],
            max_tokens=limit,
            per_image=rates["per_image"] or 0,
            per_audio_second=rates["per_audio_second"] or 0,
            per_million_characters=rates["per_million_characters"] or 0,
        )
    return PriceTable(prices)
