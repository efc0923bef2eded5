"""The ``[plugins.ratelimit]`` table, checked at construction.

Every mistake is a `compatgate.ConfigError` naming the key (``plugins.ratelimit.keys."k1".rpm``).
A limit is a positive integer, or ``"unlimited"`` to lift a limit an earlier layer set (a tier or
the defaults); ``Limits`` keeps None for "not set here".
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any, Literal

from compatgate.settings import Table

__all__ = ["LIMIT_NAMES", "UNLIMITED", "Limits", "Settings", "parse_limit", "parse_settings"]

UNLIMITED = 0  # a layer's explicit "no limit"; `Limits.merge` turns it into None
LIMIT_NAMES = ("rpm", "tpm", "tpd", "concurrency")
_WHERE = "plugins.ratelimit"
_TOP_KEYS = {
    "backend",
    "redis_url",
    "key_prefix",
    "on_backend_error",
    "lease_seconds",
    "default_max_tokens",
    "redis_timeout",
    "redis_max_connections",
    "backend_retry_seconds",
    "keys",
    "tiers",
    "models",
    "providers",
    *LIMIT_NAMES,
}


@dataclass(frozen=True, slots=True)
class Limits:
    """Requests per minute, tokens per minute, tokens per day and concurrent requests.

    None means "not limited" (or, in a layer, "not set here"); `UNLIMITED` (0) in a layer lifts
    the limit an earlier layer set.
    """

    rpm: int | None = None
    tpm: int | None = None
    tpd: int | None = None
    concurrency: int | None = None

    def merge(self, layer: Limits) -> Limits:
        """These limits with every limit ``layer`` sets (``UNLIMITED`` lifts one)."""
        changes = {}
        for item in fields(self):
            value = getattr(layer, item.name)
            if value is not None:
                changes[item.name] = None if value == UNLIMITED else value
        return replace(self, **changes) if changes else self

    def finished(self) -> Limits:
        """The limits with `UNLIMITED` markers turned into None."""
        return Limits().merge(self)

    def __bool__(self) -> bool:
        return any(getattr(self, item.name) for item in fields(self))


@dataclass(frozen=True, slots=True)
class KeyOverride:
    """One ``[plugins.ratelimit.keys."<key_id>"]`` table: a tier, then limits."""

    tier: str | None
    limits: Limits


@dataclass(frozen=True, slots=True)
class Settings:
    """The checked ``[plugins.ratelimit]`` table."""

    backend: Literal["memory", "redis"] = "memory"
    redis_url: str | None = None
    key_prefix: str = "compatgate:ratelimit"
    on_backend_error: Literal["open", "closed"] = "open"
    lease_seconds: float = 30.0
    default_max_tokens: int = 1024
    redis_timeout: float = 1.0
    redis_max_connections: int = 512
    backend_retry_seconds: float = 1.0
    defaults: Limits = Limits()
    keys: Mapping[str, KeyOverride] = field(default_factory=dict)
    tiers: Mapping[str, Limits] = field(default_factory=dict)
    models: Mapping[str, Limits] = field(default_factory=dict)
    providers: Mapping[str, Limits] = field(default_factory=dict)


_DEFAULTS = Settings()


def parse_settings(table: Mapping[str, Any], source: str) -> Settings:
    """Check the ``[plugins.ratelimit]`` table; a `ConfigError` names the first mistake."""
    checked = Table(table, _WHERE, source)
    checked.only(_TOP_KEYS)
    backend = _choice(checked, "backend", ("memory", "redis"), "memory")
    redis_url = checked.get("redis_url")
    if redis_url is not None and not (
        isinstance(redis_url, str) and redis_url.startswith(("redis://", "rediss://", "unix://"))
    ):
        raise checked.error("must be a redis://, rediss:// or unix:// URL", "redis_url")
    if backend == "redis" and redis_url is None:
        raise checked.error(
            'is required with backend = "redis" (e.g. redis_url = "redis://127.0.0.1:6379/0")', "redis_url"
        )
    prefix = checked.get("key_prefix", _DEFAULTS.key_prefix)
    if not isinstance(prefix, str) or not prefix or any(c in prefix for c in "{} "):
        raise checked.error("must be a non-empty string without braces or spaces", "key_prefix")
    tiers = {name: _limits(value, allowed=set()) for name, value in _named(checked, "tiers")}
    keys = {}
    for key_id, override in _named(checked, "keys"):
        tier = override.get("tier")
        if tier is not None and (not isinstance(tier, str) or tier not in tiers):
            known = ", ".join(sorted(tiers)) or "none"
            raise override.error(f"= {tier!r} is not a tier in {_WHERE}.tiers (defined: {known})", "tier")
        keys[key_id] = KeyOverride(tier, _limits(override, allowed={"tier"}))
    defaults = Table({k: v for k, v in checked.items() if k in LIMIT_NAMES}, _WHERE, source)
    return Settings(
        backend=backend,
        redis_url=redis_url,
        key_prefix=prefix,
        on_backend_error=_choice(checked, "on_backend_error", ("open", "closed"), "open"),
        lease_seconds=_positive(checked, "lease_seconds", float, _DEFAULTS.lease_seconds),
        default_max_tokens=_positive(checked, "default_max_tokens", int, _DEFAULTS.default_max_tokens),
        redis_timeout=_positive(checked, "redis_timeout", float, _DEFAULTS.redis_timeout),
        redis_max_connections=_positive(checked, "redis_max_connections", int, _DEFAULTS.redis_max_connections),
        backend_retry_seconds=_positive(checked, "backend_retry_seconds", float, _DEFAULTS.backend_retry_seconds),
        defaults=_limits(defaults, allowed=set()).finished(),
        keys=keys,
        tiers=tiers,
        models={name: _limits(value, allowed=set()).finished() for name, value in _named(checked, "models")},
        providers={name: _limits(value, allowed=set()).finished() for name, value in _named(checked, "providers")},
    )


def parse_limit(value: Any) -> int | None:
    """A limit as a layer gives it: a positive int, ``"unlimited"`` (`UNLIMITED`), else None
    for an invalid value (the caller says where)."""
    if value == "unlimited":
        return UNLIMITED
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    return None


def _limits(table: Table, *, allowed: set[str]) -> Limits:
    table.only(set(LIMIT_NAMES) | allowed)
    given: dict[str, int] = {}
    for name in LIMIT_NAMES:
        if name in table:
            limit = parse_limit(table[name])
            if limit is None:
                raise table.error(f'must be a positive integer or "unlimited", not {table[name]!r}', name)
            given[name] = limit
    return Limits(**given)


def _named(table: Table, key: str) -> list[tuple[str, Table]]:
    """The tables of ``[plugins.ratelimit.<key>]`` by name, each named as TOML would quote it."""
    tables = table.table(key)
    return [(name, Table(value, f"{tables.where}.{_name(name)}", table.source)) for name, value in tables.items()]


def _choice(table: Table, key: str, choices: tuple[str, ...], default: str) -> Any:
    value = table.get(key, default)
    if value not in choices:
        listed = " or ".join(f'"{c}"' for c in choices)
        raise table.error(f"must be {listed}, not {value!r}", key)
    return value


def _positive(table: Table, key: str, kind: type, default: Any) -> Any:
    value = table.get(key, default)
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if kind is int and not isinstance(value, int):
        number = False
    if not number or not math.isfinite(value) or value <= 0:
        what = "a positive integer" if kind is int else "a positive number"
        raise table.error(f"must be {what}, not {value!r}", key)
    return kind(value)


def _name(name: str) -> str:
    """A table name as TOML would quote it in a message."""
    return name if name.replace("_", "").replace("-", "").isalnum() else f'"{name}"'
