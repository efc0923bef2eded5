"""The ``[plugins.cache]`` table, checked at gateway construction.

Every mistake is a `compatgate.ConfigError` naming the key (``plugins.cache.models."gpt-4o".ttl_seconds``).
Per-model tables (``[plugins.cache.models."<model>"]``, an exact client-facing model name or a
glob such as ``"gpt-4o*"``) override ``enabled``, ``ttl_seconds``, ``when`` and ``tool_calls``.
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from compatgate import ConfigError

__all__ = ["ModelPolicy", "Settings", "parse_settings"]

PLUGIN_NAME = "cache"
_WHERE = f"plugins.{PLUGIN_NAME}"
_MIN_ADMIN_KEY = 16
_POLICY_KEYS = {"enabled", "ttl_seconds", "when", "tool_calls"}
_TOP_KEYS = {
    "backend",
    "scope",
    "team_metadata_key",
    "max_bytes",
    "max_entry_bytes",
    "redis_url",
    "key_prefix",
    "redis_timeout",
    "redis_max_connections",
    "backend_retry_seconds",
    "admin_key",
    "ignore_params",
    "models",
    *_POLICY_KEYS,
}

When = Literal["temperature_zero", "always"]
Scope = Literal["key", "team", "global"]


@dataclass(frozen=True, slots=True)
class ModelPolicy:
    """What the cache does for one model: whether it caches at all, how long an entry lives,
    ``when`` (``"temperature_zero"``: only requests with ``temperature = 0``; embeddings are
    always deterministic), and whether answers with tool calls are stored."""

    enabled: bool = True
    ttl_seconds: float = 3600.0
    when: When = "temperature_zero"
    tool_calls: bool = False


@dataclass(frozen=True, slots=True)
class Settings:
    """The checked ``[plugins.cache]`` table."""

    backend: Literal["memory", "redis"] = "memory"
    scope: Scope = "key"
    team_metadata_key: str = "team"
    max_bytes: int = 64 * 1024 * 1024
    max_entry_bytes: int = 2 * 1024 * 1024
    redis_url: str | None = None
    key_prefix: str = "compatgate:cache"
    redis_timeout: float = 0.5
    redis_max_connections: int = 64
    backend_retry_seconds: float = 1.0
    admin_key: str | None = field(default=None, repr=False)
    ignore_params: frozenset[str] = frozenset()
    default: ModelPolicy = ModelPolicy()
    models: Mapping[str, ModelPolicy] = field(default_factory=dict)

    def policy(self, model: str) -> ModelPolicy:
        """The policy of the client-facing model ``model``: its exact table, else the first
        matching glob, else the defaults."""
        policy = self.models.get(model)
        if policy is not None:
            return policy
        for pattern, candidate in self.models.items():
            if any(c in pattern for c in "*?[") and fnmatch.fnmatchcase(model, pattern):
                return candidate
        return self.default


_DEFAULTS = Settings()


def parse_settings(table: Mapping[str, Any], source: str) -> Settings:
    """Check the ``[plugins.cache]`` table; a `ConfigError` names the first mistake."""
    _only(table, _WHERE, _TOP_KEYS, source)
    backend = _choice(table, "backend", ("memory", "redis"), "memory", _WHERE, source)
    redis_url = table.get("redis_url")
    if redis_url is not None and not (
        isinstance(redis_url, str) and redis_url.startswith(("redis://", "rediss://", "unix://"))
    ):
        raise ConfigError(f"{source}: {_WHERE}.redis_url must be a redis://, rediss:// or unix:// URL")
    if backend == "redis" and redis_url is None:
        raise ConfigError(
            f'{source}: {_WHERE}.redis_url is required with backend = "redis" '
            '(e.g. redis_url = "redis://127.0.0.1:6379/0")'
        )
    prefix = table.get("key_prefix", _DEFAULTS.key_prefix)
    if not isinstance(prefix, str) or not prefix or any(c in prefix for c in "*?[]{} \\"):
        raise ConfigError(
            f"{source}: {_WHERE}.key_prefix must be a non-empty string without spaces, "
            "braces or glob characters"
        )
    team_key = table.get("team_metadata_key", _DEFAULTS.team_metadata_key)
    if not isinstance(team_key, str) or not team_key:
        raise ConfigError(f"{source}: {_WHERE}.team_metadata_key must be a non-empty string")
    admin_key = table.get("admin_key")
    if admin_key is not None and (not isinstance(admin_key, str) or len(admin_key) < _MIN_ADMIN_KEY):
        raise ConfigError(f"{source}: {_WHERE}.admin_key must be a string of at least {_MIN_ADMIN_KEY} characters")
    ignored = table.get("ignore_params", [])
    if not isinstance(ignored, list) or not all(isinstance(p, str) and p for p in ignored):
        raise ConfigError(f"{source}: {_WHERE}.ignore_params must be an array of parameter names")
    if "model" in ignored:
        raise ConfigError(f"{source}: {_WHERE}.ignore_params cannot ignore 'model'")
    max_bytes = _positive(table, "max_bytes", int, _DEFAULTS.max_bytes, _WHERE, source)
    max_entry = _positive(table, "max_entry_bytes", int, _DEFAULTS.max_entry_bytes, _WHERE, source)
    default = _policy(table, ModelPolicy(), _WHERE, source)
    models_table = table.get("models", {})
    if not isinstance(models_table, Mapping):
        raise ConfigError(f'{source}: {_WHERE}.models must be a table: [{_WHERE}.models."gpt-4o"]')
    models = {}
    for name, value in models_table.items():
        where = f'{_WHERE}.models."{name}"'
        if not isinstance(value, Mapping):
            raise ConfigError(f"{source}: {where} must be a table (enabled = false, ttl_seconds = 60)")
        _only(value, where, _POLICY_KEYS, source)
        models[str(name)] = _policy(value, default, where, source)
    return Settings(
        backend=backend,
        scope=_choice(table, "scope", ("key", "team", "global"), "key", _WHERE, source),
        team_metadata_key=team_key,
        max_bytes=max_bytes,
        max_entry_bytes=min(max_entry, max_bytes),
        redis_url=redis_url,
        key_prefix=prefix,
        redis_timeout=_positive(table, "redis_timeout", float, _DEFAULTS.redis_timeout, _WHERE, source),
        redis_max_connections=_positive(
            table, "redis_max_connections", int, _DEFAULTS.redis_max_connections, _WHERE, source
        ),
        backend_retry_seconds=_positive(
            table, "backend_retry_seconds", float, _DEFAULTS.backend_retry_seconds, _WHERE, source
        ),
        admin_key=admin_key,
        ignore_params=frozenset(ignored),
        default=default,
        models=models,
    )


def _policy(table: Mapping[str, Any], base: ModelPolicy, where: str, source: str) -> ModelPolicy:
    changes: dict[str, Any] = {}
    for key in ("enabled", "tool_calls"):
        if key in table:
            if not isinstance(table[key], bool):
                raise ConfigError(f"{source}: {where}.{key} must be true or false")
            changes[key] = table[key]
    if "ttl_seconds" in table:
        changes["ttl_seconds"] = _positive(table, "ttl_seconds", float, None, where, source)
    if "when" in table:
        changes["when"] = _choice(table, "when", ("temperature_zero", "always"), None, where, source)
    return replace(base, **changes) if changes else base


def _only(table: Mapping[str, Any], where: str, allowed: set[str], source: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise ConfigError(
            f"{source}: unknown key {where}.{unknown[0]} (allowed here: {', '.join(sorted(allowed))})"
        )


def _choice(
    table: Mapping[str, Any], key: str, choices: tuple[str, ...], default: Any, where: str, source: str
) -> Any:
    value = table.get(key, default)
    if value not in choices:
        listed = " or ".join(f'"{c}"' for c in choices)
        raise ConfigError(f"{source}: {where}.{key} must be {listed}, not {value!r}")
    return value


def _positive(
    table: Mapping[str, Any], key: str, kind: type, default: Any, where: str, source: str
) -> Any:
    value = table.get(key, default)
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if kind is int and not isinstance(value, int):
        number = False
    if not number or not math.isfinite(value) or value <= 0:
        what = "a positive integer" if kind is int else "a positive number"
        raise ConfigError(f"{source}: {where}.{key} must be {what}, not {value!r}")
    return kind(value)
