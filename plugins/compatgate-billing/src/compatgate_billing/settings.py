"""The ``[plugins.billing]`` table, checked at construction.

Every mistake is a `compatgate.ConfigError` naming the key (``plugins.billing.prices."gpt-4o".input``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from compatgate import Config, ConfigError

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
}
_TOKEN_RATES = ("input", "output", "cached_input", "cache_write")  # per million tokens
_UNIT_RATES = ("per_image", "per_audio_second", "per_million_characters")
_PRICE_KEYS = {*_TOKEN_RATES, *_UNIT_RATES, "max_tokens"}
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
_MIN_SECRET = 16

Fail = Callable[[str], ConfigError]


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


def parse_settings(config: Config) -> BillingSettings | None:
    """The billing settings of ``config``; None when it has no ``[plugins.billing]`` table."""
    if PLUGIN_NAME not in config.plugins:
        return None
    table = dict(config.plugin(PLUGIN_NAME))
    source = config.source

    def fail(message: str) -> ConfigError:
        return ConfigError(f"{source}: {_WHERE}.{message}")

    unknown = sorted(set(table) - _KEYS)
    if unknown:
        raise fail(f"{unknown[0]}: unknown key (allowed: {', '.join(sorted(_KEYS))})")
    secret = table.get("secret")
    if not isinstance(secret, str) or len(secret) < _MIN_SECRET:
        raise fail(
            f"secret is required: a random string of at least {_MIN_SECRET} characters, best read "
            'from the environment (secret = "${COMPATGATE_BILLING_SECRET}"); keys are stored as '
            "HMAC-SHA256 digests under it"
        )
    admin_key = table.get("admin_key")
    if admin_key is not None and (not isinstance(admin_key, str) or len(admin_key) < _MIN_SECRET):
        raise fail(f"admin_key must be a string of at least {_MIN_SECRET} characters")
    unpriced = table.get("unpriced", "free")
    if unpriced not in ("free", "refuse"):
        raise fail('unpriced must be "free" or "refuse"')
    dialect, sqlite_path, dsn = _database(table.get("database", DEFAULT_DATABASE), source, fail)
    schema = table.get("schema", "public")
    if not isinstance(schema, str) or not _IDENTIFIER.fullmatch(schema):
        raise fail("schema must be a PostgreSQL identifier (letters, digits, underscores)")
    if "schema" in table and dialect != "postgresql":
        raise fail("schema applies to a PostgreSQL database only")
    return BillingSettings(
        dialect=dialect,
        sqlite_path=sqlite_path,
        dsn=dsn,
        schema=schema,
        pool_size=_number(table, "pool_size", int, 10, fail, low=1),
        secret=secret.encode(),
        admin_key=admin_key,
        unpriced=unpriced,
        reservation_ttl=_number(table, "reservation_ttl_seconds", float, 60.0, fail, low=0.5),
        max_tokens=_number(table, "max_tokens", int, 4096, fail, low=1),
        queue_size=_number(table, "queue_size", int, 10_000, fail, low=1),
        batch_seconds=_number(table, "batch_seconds", float, 0.0, fail, low=0.0),
        prices=_prices(table.get("prices", {}), fail),
    )


def _database(
    url: Any, source: str, fail: Fail
) -> tuple[Literal["sqlite", "postgresql"], Path | None, str | None]:
    if not isinstance(url, str):
        raise fail("database must be a string")
    if url.startswith(("postgresql://", "postgres://")):
        return "postgresql", None, url
    if url.startswith("sqlite:///"):
        raw = url[len("sqlite:///") :]
        if not raw or raw == ":memory:":
            raise fail("database: an SQLite database needs a file path (sqlite:///billing.db)")
        path = Path(raw)
        if not path.is_absolute():  # relative to the configuration file, like a person reads it
            base = Path(source).resolve().parent if source != "<dict>" else Path.cwd()
            path = base / path
        return "sqlite", path, None
    raise fail('database must be "sqlite:///PATH" or "postgresql://USER@HOST:PORT/DATABASE"')


def _number(
    table: Mapping[str, Any],
    key: str,
    kind: type[int | float],
    default: float,
    fail: Fail,
    *,
    low: float,
) -> Any:
    value: Any = table.get(key, default)
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if isinstance(value, bool) or not isinstance(value, kind):
        raise fail(f"{key} must be of type {kind.__name__}")
    if value < low:
        raise fail(f"{key} must be at least {low}")
    return value


def _prices(raw: Any, fail: Fail) -> PriceTable:
    if not isinstance(raw, Mapping):
        raise fail('prices must be a table of models: [plugins.billing.prices."gpt-4o"]')
    prices: dict[str, Price] = {}
    for model, entry in raw.items():
        where = f'prices."{model}"'
        if not isinstance(entry, Mapping):
            raise fail(f"{where} must be a table (input = 2.5, output = 10.0)")
        unknown = sorted(set(entry) - _PRICE_KEYS)
        if unknown:
            raise fail(
                f"{where}.{unknown[0]}: unknown key (allowed: {', '.join(sorted(_PRICE_KEYS))})"
            )
        rates: dict[str, int | None] = {}
        for kind in (*_TOKEN_RATES, *_UNIT_RATES):
            if kind not in entry:
                rates[kind] = None if kind in ("cached_input", "cache_write") else 0
                continue
            try:
                rates[kind] = to_micro(entry[kind])
            except ValueError as exc:
                unit = "per million tokens" if kind in _TOKEN_RATES else kind.replace("_", " ")
                raise fail(f"{where}.{kind} ({unit}) {exc}") from None
            if rates[kind] < 0:  # type: ignore[operator]
                raise fail(f"{where}.{kind} must not be negative")
        limit = entry.get("max_tokens")
        if limit is not None and (
            isinstance(limit, bool) or not isinstance(limit, int) or limit < 1
        ):
            raise fail(f"{where}.max_tokens must be a positive integer")
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
