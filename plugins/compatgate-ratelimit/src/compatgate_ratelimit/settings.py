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

from compatgate import ConfigError

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
    _only(table, _WHERE, _TOP_KEYS, source)
    backend = _choice(table, "backend", ("memory", "redis"), "memory", source)
    redis_url = table.get("redis_url")
    if redis_url is not None and not (
        isinstance(redis_url, str) and redis_url.startswith(("redis://", "rediss://", "unix://"))
    ):
        raise ConfigError(
            f"{source}: {_WHERE}.redis_url must be a redis://, rediss:// or unix:// URL"
        )
    if backend == "redis" and redis_url is None:
        raise ConfigError(
            f'{source}: {_WHERE}.redis_url is required with backend = "redis" '
            '(e.g. redis_url = "redis://127.0.0.1:6379/0")'
        )
    prefix = table.get("key_prefix", _DEFAULTS.key_prefix)
    if not isinstance(prefix, str) or not prefix or any(c in prefix for c in "{} "):
        raise ConfigError(
            f"{source}: {_WHERE}.key_prefix must be a non-empty string without braces or spaces"
        )
    tiers = {
        name: _limits(value, f"{_WHERE}.tiers.{_name(name)}", source, allowed=set())
        for name, value in _table(table, "tiers", source).items()
    }
    keys = {}
    for key_id, value in _table(table, "keys", source).items():
        where = f"{_WHERE}.keys.{_name(key_id)}"
        override = _as_table(value, where, source)
        tier = override.get("tier")
        if tier is not None and (not isinstance(tier, str) or tier not in tiers):
            known = ", ".join(sorted(tiers)) or "none"
            raise ConfigError(
                f"{source}: {where}.tier = {tier!r} is not a tier in {_WHERE}.tiers (defined: {known})"
            )
        keys[key_id] = KeyOverride(tier, _limits(override, where, source, allowed={"tier"}))
    return Settings(
        backend=backend,
        redis_url=redis_url,
        key_prefix=prefix,
        on_backend_error=_choice(table, "on_backend_error", ("open", "closed"), "open", source),
        lease_seconds=_positive(table, "lease_seconds", float, _DEFAULTS.lease_seconds, source),
        default_max_tokens=_positive(
            table, "default_max_tokens", int, _DEFAULTS.default_max_tokens, source
        ),
        redis_timeout=_positive(table, "redis_timeout", float, _DEFAULTS.redis_timeout, source),
        redis_max_connections=_positive(
            table, "redis_max_connections", int, _DEFAULTS.redis_max_connections, source
        ),
        backend_retry_seconds=_positive(
            table, "backend_retry_seconds", float, _DEFAULTS.backend_retry_seconds, source
        ),
        defaults=_limits(
            {k: v for k, v in table.items() if k in LIMIT_NAMES}, _WHERE, source, allowed=set()
        ).finished(),
        keys=keys,
        tiers=tiers,
        models={
            name: _limits(value, f"{_WHERE}.models.{_name(name)}", source, allowed=set()).finished()
            for name, value in _table(table, "models", source).items()
        },
        providers={
            name: _limits(
                value, f"{_WHERE}.providers.{_name(name)}", source, allowed=set()
            ).finished()
            for name, value in _table(table, "providers", source).items()
        },
    )


def parse_limit(value: Any) -> int | None:
    """A limit as a layer gives it: a positive int, ``"unlimited"`` (`UNLIMITED`), else None
    for an invalid value (the caller says where)."""
    if value == "unlimited":
        return UNLIMITED
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    return None


def _limits(value: Any, where: str, source: str, *, allowed: set[str]) -> Limits:
    table = _as_table(value, where, source)
    _only(table, where, set(LIMIT_NAMES) | allowed, source)
    given: dict[str, int] = {}
    for name in LIMIT_NAMES:
        if name in table:
            limit = parse_limit(table[name])
            if limit is None:
                raise ConfigError(
                    f'{source}: {where}.{name} must be a positive integer or "unlimited", not {table[name]!r}'
                )
            given[name] = limit
    return Limits(**given)


def _table(table: Mapping[str, Any], key: str, source: str) -> Mapping[str, Any]:
    return _as_table(table.get(key, {}), f"{_WHERE}.{key}", source)


def _as_table(value: Any, where: str, source: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{source}: {where} must be a table")
    return value


def _only(table: Mapping[str, Any], where: str, allowed: set[str], source: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise ConfigError(
            f"{source}: unknown key {where}.{unknown[0]} (allowed here: {', '.join(sorted(allowed))})"
        )


def _choice(
    table: Mapping[str, Any], key: str, choices: tuple[str, ...], default: str, source: str
) -> Any:
    value = table.get(key, default)
    if value not in choices:
        listed = " or ".join(f'"{c}"' for c in choices)
        raise ConfigError(f"{source}: {_WHERE}.{key} must be {listed}, not {value!r}")
    return value


def _positive(table: Mapping[str, Any], key: str, kind: type, default: Any, source: str) -> Any:
    value = table.get(key, default)
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if kind is int and not isinstance(value, int):
        number = False
    if not number or not math.isfinite(value) or value <= 0:
        what = "a positive integer" if kind is int else "a positive number"
        raise ConfigError(f"{source}: {_WHERE}.{key} must be {what}, not {value!r}")
    return kind(value)


def _name(name: str) -> str:
    """A table name as TOML would quote it in a message."""
    return name if name.replace("_", "").replace("-", "").isalnum() else f'"{name}"'
