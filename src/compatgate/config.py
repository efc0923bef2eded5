"""Loading and checking the configuration (a TOML file or the equivalent dict).

Strings may read the environment: ``"${OPENAI_API_KEY}"``, or ``"${PORT:-8000}"`` with a
default. A missing variable, an unknown key or a value of the wrong type is a `ConfigError`
whose message names the place (``providers.openai.api_key``) and, for a misspelled name, the
closest valid one. Plugins read their own tables from ``[plugins.<name>]`` through
`Config.plugin`; `PluginTables` remembers which tables were looked up, so that
``compatgate check`` can point out a table no plugin reads (a typo that would do nothing).
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .exceptions import ConfigError
from .hints import did_you_mean

__all__ = [
    "LOG_LEVELS",
    "MODEL_KEYS",
    "PROVIDER_KEYS",
    "Config",
    "GatewaySettings",
    "ModelConfig",
    "PluginTables",
    "ProviderConfig",
    "load_config",
]

DEFAULT_MAX_REQUEST_BYTES = 16 * 1024 * 1024
DEFAULT_MAX_UPLOAD_BYTES = 64 * 1024 * 1024
DEFAULT_STORE_BYTES_PER_KEY = 256 * 1024 * 1024
DEFAULT_SHUTDOWN_GRACE_SECONDS = 25.0
LOG_LEVELS = ("critical", "error", "warning", "info", "debug")

_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


@dataclass(frozen=True, slots=True)
class GatewaySettings:
    """The ``[gateway]`` table."""

    api_keys: tuple[str, ...] = field(default=(), repr=False)
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES
    load_entrypoints: bool = True
    access_log: str = "text"
    log_prompts: bool = False
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES
    response_store: str = "sqlite"
    response_store_path: str = "compatgate-responses.sqlite3"
    response_store_url: str | None = field(default=None, repr=False)
    response_store_ttl_days: float = 30.0
    response_store_max_bytes: int = DEFAULT_STORE_BYTES_PER_KEY
    default_max_output_tokens: int | None = None
    keepalive_seconds: float = 15.0
    secret: str | None = field(default=None, repr=False)
    log_level: str = "info"
    shutdown_grace_seconds: float = DEFAULT_SHUTDOWN_GRACE_SECONDS


@dataclass(frozen=True, slots=True)
class ProviderConfig:
    """One ``[providers.<name>]`` table. Keys not listed here are the provider type's `options`."""

    name: str
    type: str
    base_url: str | None = None
    api_key: str | None = field(default=None, repr=False)
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    owned_by: str | None = None
    connect_timeout: float = 10.0
    read_timeout: float = 600.0
    max_connections: int = 1000
    transport: str = "aiohttp"
    options: Mapping[str, Any] = field(default_factory=dict)
    first_token_timeout: float | None = None
    total_timeout: float | None = None


@dataclass(frozen=True, slots=True)
class ModelConfig:
    """One ``[[models]]`` entry. Keys not listed here are `options` for the provider."""

    name: str
    provider: str
    upstream_model: str
    owned_by: str | None = None
    created: int = 0
    options: Mapping[str, Any] = field(default_factory=dict)
    max_output_tokens: int | None = None


class PluginTables(Mapping[str, Mapping[str, Any]]):
    """The ``[plugins.<name>]`` tables. Every lookup by name (``tables["x"]``, ``.get("x")``,
    ``"x" in tables``) is remembered, found or not: `unread` lists the tables nobody asked for."""

    __slots__ = ("_tables", "looked_up")

    def __init__(self, tables: Mapping[str, Mapping[str, Any]]) -> None:
        self._tables = dict(tables)
        self.looked_up: set[str] = set()

    def __getitem__(self, name: str) -> Mapping[str, Any]:
        self.looked_up.add(name)
        return self._tables[name]

    def __contains__(self, name: object) -> bool:
        if isinstance(name, str):
            self.looked_up.add(name)
        return name in self._tables

    def __iter__(self) -> Iterator[str]:
        return iter(self._tables)

    def __len__(self) -> int:
        return len(self._tables)

    def unread(self) -> list[str]:
        """The tables no plugin has looked up so far."""
        return sorted(set(self._tables) - self.looked_up)

    def __repr__(self) -> str:
        return f"PluginTables({sorted(self._tables)})"


@dataclass(frozen=True, slots=True)
class Config:
    """The whole configuration, checked."""

    gateway: GatewaySettings
    providers: Mapping[str, ProviderConfig]
    models: tuple[ModelConfig, ...]
    plugins: PluginTables
    source: str = "<dict>"

    def plugin(self, name: str) -> Mapping[str, Any]:
        """The ``[plugins.<name>]`` table (empty when absent)."""
        return self.plugins.get(name, {})


def load_config(config: str | os.PathLike[str] | Mapping[str, Any] | Config) -> Config:
    """Read and check a configuration from a TOML path, a dict or an existing `Config`."""
    if isinstance(config, Config):
        return config
    if isinstance(config, Mapping):
        return _parse(config, "<dict>")
    path = Path(config)
    try:
        with path.open("rb") as file:
            raw = tomllib.load(file)
    except FileNotFoundError:
        raise ConfigError(f"configuration file not found: {path}") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the configuration file: {exc.strerror or exc}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    return _parse(raw, str(path))


def _parse(raw: Mapping[str, Any], source: str) -> Config:
    data = _expand(raw, "")
    _only(data, "", {"gateway", "providers", "models", "plugins"}, source)
    gateway = _gateway(_table(data, "gateway", source), source)
    providers = {
        name: _provider(name, _as_table(table, f"providers.{name}", source), source)
        for name, table in _table(data, "providers", source).items()
    }
    models_raw = data.get("models", [])
    if not isinstance(models_raw, list):
        raise ConfigError(f"{source}: 'models' must be an array of tables ([[models]])")
    models = tuple(
        _model(i, _as_table(entry, f"models[{i}]", source), providers, source)
        for i, entry in enumerate(models_raw)
    )
    seen: set[str] = set()
    for model in models:
        if model.name in seen:
            raise ConfigError(f"{source}: model {model.name!r} is defined twice in [[models]]")
        seen.add(model.name)
    plugins = {
        name: _as_table(table, f"plugins.{name}", source)
        for name, table in _table(data, "plugins", source).items()
    }
    return Config(gateway, providers, models, PluginTables(plugins), source)


def _gateway(table: dict[str, Any], source: str) -> GatewaySettings:
    allowed = {"api_keys", "max_request_bytes", "load_entrypoints", "access_log", "log_prompts",
               "max_upload_bytes", "response_store", "response_store_path", "response_store_url",
               "response_store_ttl_days", "response_store_max_bytes", "default_max_output_tokens",
               "keepalive_seconds", "secret", "log_level", "shutdown_grace_seconds"}
    _only(table, "gateway", allowed, source)
    keys = table.get("api_keys", [])
    if not isinstance(keys, list) or not all(isinstance(k, str) and k for k in keys):
        raise ConfigError(f"{source}: gateway.api_keys must be an array of non-empty strings")
    size = _typed(table, "gateway", "max_request_bytes", int, DEFAULT_MAX_REQUEST_BYTES, source)
    if size <= 0:
        raise ConfigError(f"{source}: gateway.max_request_bytes must be positive")
    entrypoints = _typed(table, "gateway", "load_entrypoints", bool, True, source)
    access_log = _typed(table, "gateway", "access_log", str, "text", source)
    if access_log not in ("text", "json", "off"):
        raise ConfigError(f"{source}: gateway.access_log must be \"text\", \"json\" or \"off\"")
    prompts = _typed(table, "gateway", "log_prompts", bool, False, source)
    upload = _typed(table, "gateway", "max_upload_bytes", int, DEFAULT_MAX_UPLOAD_BYTES, source)
    if upload <= 0:
        raise ConfigError(f"{source}: gateway.max_upload_bytes must be positive")
    store = _typed(table, "gateway", "response_store", str, "sqlite", source)
    if store not in ("sqlite", "postgres", "off"):
        raise ConfigError(f"{source}: gateway.response_store must be \"sqlite\", \"postgres\" or \"off\"")
    store_url = _typed(table, "gateway", "response_store_url", str, None, source)
    if store == "postgres" and not store_url:
        raise ConfigError(f"{source}: gateway.response_store = \"postgres\" needs gateway.response_store_url")
    ttl = _typed(table, "gateway", "response_store_ttl_days", float, 30.0, source)
    store_bytes = _typed(table, "gateway", "response_store_max_bytes", int, DEFAULT_STORE_BYTES_PER_KEY, source)
    cap = _typed(table, "gateway", "default_max_output_tokens", int, None, source)
    keepalive = _typed(table, "gateway", "keepalive_seconds", float, 15.0, source)
    for key, value in (("response_store_ttl_days", ttl), ("response_store_max_bytes", store_bytes),
                       ("default_max_output_tokens", cap if cap is not None else 1)):
        if value <= 0:
            raise ConfigError(f"{source}: gateway.{key} must be positive")
    if keepalive < 0:
        raise ConfigError(f"{source}: gateway.keepalive_seconds must be 0 (off) or a positive number of seconds")
    secret = _typed(table, "gateway", "secret", str, None, source)
    if secret is not None and len(secret) < 16:
        raise ConfigError(f"{source}: gateway.secret must be at least 16 characters long")
    log_level = _typed(table, "gateway", "log_level", str, "info", source)
    if log_level.lower() not in LOG_LEVELS:
        raise ConfigError(f"{source}: gateway.log_level must be one of {', '.join(LOG_LEVELS)}")
    grace = _typed(table, "gateway", "shutdown_grace_seconds", float, DEFAULT_SHUTDOWN_GRACE_SECONDS, source)
    if grace < 0:
        raise ConfigError(f"{source}: gateway.shutdown_grace_seconds must be zero or more seconds")
    return GatewaySettings(
        tuple(keys), size, entrypoints, access_log, prompts, upload, store,
        _typed(table, "gateway", "response_store_path", str, "compatgate-responses.sqlite3", source),
        store_url, ttl, store_bytes, cap, keepalive, secret, log_level.lower(), grace,
    )


# The keys every [providers.<name>] table may hold, whatever its type (with their types).
PROVIDER_KEYS = {
    "type": str,
    "base_url": str,
    "api_key": str,
    "headers": dict,
    "owned_by": str,
    "connect_timeout": float,
    "read_timeout": float,
    "first_token_timeout": float,
    "total_timeout": float,
    "max_connections": int,
    "transport": str,
}


def _provider(name: str, table: dict[str, Any], source: str) -> ProviderConfig:
    where = f"providers.{name}"
    if "type" not in table:
        raise ConfigError(f"{source}: {where}.type is required (e.g. type = \"openai\")")
    known = {key: _typed(table, where, key, kind, None, source) for key, kind in PROVIDER_KEYS.items()}
    headers = known.pop("headers") or {}
    if not all(isinstance(v, str) for v in headers.values()):
        raise ConfigError(f"{source}: {where}.headers values must be strings")
    if known["transport"] not in (None, "aiohttp", "httpx"):
        raise ConfigError(f"{source}: {where}.transport must be \"aiohttp\" or \"httpx\"")
    for key in ("first_token_timeout", "total_timeout"):
        if known[key] is not None and known[key] <= 0:
            raise ConfigError(f"{source}: {where}.{key} must be a positive number of seconds")
    if known["base_url"] is not None:
        _check_base_url(known["base_url"], f"{where}.base_url", source)
    options = {key: value for key, value in table.items() if key not in PROVIDER_KEYS}
    given = {key: value for key, value in known.items() if value is not None}
    return ProviderConfig(name=name, headers=headers, options=options, **given)


def _model(
    index: int, table: dict[str, Any], providers: Mapping[str, ProviderConfig], source: str
) -> ModelConfig:
    where = f"models[{index}]"
    name = _typed(table, where, "name", str, None, source)
    provider = _typed(table, where, "provider", str, None, source)
    if not name or not provider:
        raise ConfigError(f"{source}: {where} needs both 'name' and 'provider'")
    if provider not in providers:
        known = ", ".join(sorted(providers)) or "none"
        raise ConfigError(
            f"{source}: {where} ({name!r}) names provider {provider!r}, which is not defined "
            f"in [providers] (defined: {known})"
        )
    upstream = _typed(table, where, "upstream_model", str, name, source)
    owned_by = _typed(table, where, "owned_by", str, None, source)
    created = _typed(table, where, "created", int, 0, source)
    cap = _typed(table, where, "max_output_tokens", int, None, source)
    if cap is not None and cap <= 0:
        raise ConfigError(f"{source}: {where}.max_output_tokens must be positive")
    options = {key: value for key, value in table.items() if key not in MODEL_KEYS}
    return ModelConfig(name, provider, upstream, owned_by, created, options, cap)


# The keys every [[models]] entry may hold; any other is an option of its provider's type.
MODEL_KEYS = ("name", "provider", "upstream_model", "owned_by", "created", "max_output_tokens")


def _check_base_url(url: str, where: str, source: str) -> None:
    """Refuse a ``base_url`` that cannot be called: no ``http://``/``https://``, or no host.
    The message shows the URL without its credentials."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() not in ("http", "https"):
        local = url.lstrip("/").startswith(("localhost", "127.", "0.0.0.0", "[::1]"))
        guess = url if sep else f"{'http' if local else 'https'}://{url.lstrip('/')}"
        shown = _without_credentials(url)
        fix = f"write {_without_credentials(guess)!r}" if not sep else "use http:// or https://"
        raise ConfigError(
            f"{source}: {where} = {shown!r} must start with http:// or https:// ({fix})"
        )
    host = rest.split("/", 1)[0].rpartition("@")[2]
    if not host or host.startswith(":"):
        raise ConfigError(f"{source}: {where} = {_without_credentials(url)!r} has no host name")


def _without_credentials(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "", url
    authority, slash, path = rest.partition("/")
    if "@" in authority:
        authority = "***@" + authority.rpartition("@")[2]
    return f"{scheme}{sep}{authority}{slash}{path}"


def _expand(value: Any, where: str) -> Any:
    if isinstance(value, str):
        return _VARIABLE.sub(lambda match: _variable(match, where), value)
    if isinstance(value, Mapping):
        return {key: _expand(item, f"{where}.{key}" if where else key) for key, item in value.items()}
    if isinstance(value, list):
        return [_expand(item, f"{where}[{i}]") for i, item in enumerate(value)]
    return value


def _variable(match: re.Match[str], where: str) -> str:
    name, default = match.group(1), match.group(2)
    value = os.environ.get(name)
    if not value and default is not None:  # as in the shell: unset or empty
        return default
    if value is None:
        raise ConfigError(f"environment variable {name} is not set (needed by {where})")
    return value


def _table(data: Mapping[str, Any], key: str, source: str) -> dict[str, Any]:
    return _as_table(data.get(key, {}), key, source)


def _as_table(value: Any, where: str, source: str) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{source}: {where} must be a table")
    return dict(value)


def _only(table: Mapping[str, Any], where: str, allowed: set[str], source: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        place = f"{where}." if where else ""
        raise ConfigError(
            f"{source}: unknown key {place}{unknown[0]}{did_you_mean(unknown[0], allowed)} "
            f"(allowed here: {', '.join(sorted(allowed))})"
        )


def _typed(table: Mapping[str, Any], where: str, key: str, kind: type, default: Any, source: str) -> Any:
    if key not in table:
        return default
    value = table[key]
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if kind is not bool and isinstance(value, bool) or not isinstance(value, kind):
        raise ConfigError(f"{source}: {where}.{key} must be of type {kind.__name__}")
    return value
