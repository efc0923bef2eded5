"""The ``[plugins.prometheus]`` table, checked at gateway construction."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from compatgate import ConfigError

__all__ = ["DEFAULT_LATENCY_BUCKETS", "DEFAULT_TTFT_BUCKETS", "PrometheusSettings", "parse_settings"]

# LLM calls take from tens of milliseconds (embeddings) to minutes (long generations).
DEFAULT_LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0)
DEFAULT_TTFT_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0)

_NAMESPACE = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_KEYS = {"namespace", "path", "token", "latency_buckets", "ttft_buckets", "max_models"}


@dataclass(frozen=True, slots=True)
class PrometheusSettings:
    """``namespace`` prefixes every metric name; ``path`` (relative to where the gateway is
    mounted) serves the metrics under the gateway, behind ``token`` when set; ``max_models``
    bounds the distinct values of the ``model`` label (later ones are counted as ``_other``)."""

    namespace: str = "compatgate"
    path: str | None = None
    token: str | None = field(default=None, repr=False)
    latency_buckets: tuple[float, ...] = DEFAULT_LATENCY_BUCKETS
    ttft_buckets: tuple[float, ...] = DEFAULT_TTFT_BUCKETS
    max_models: int = 200


def parse_settings(table: Mapping[str, Any], source: str = "<config>") -> PrometheusSettings:
    """Check a ``[plugins.prometheus]`` table; a mistake is a `ConfigError` naming the key."""
    where = f"{source}: plugins.prometheus"
    unknown = sorted(set(table) - _KEYS)
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r} (allowed: {', '.join(sorted(_KEYS))})")
    namespace = _string(table, "namespace", where) or "compatgate"
    if not _NAMESPACE.fullmatch(namespace):
        raise ConfigError(f"{where}.namespace must match [a-zA-Z_][a-zA-Z0-9_]*")
    path = _string(table, "path", where)
    if path is not None and (not path.startswith("/") or path == "/"):
        raise ConfigError(f"{where}.path must start with '/' and name a route, e.g. \"/metrics\"")
    token = _string(table, "token", where)
    if token is not None and not token:
        raise ConfigError(f"{where}.token must not be empty (leave it out for no token)")
    max_models = table.get("max_models", 200)
    if not isinstance(max_models, int) or isinstance(max_models, bool) or max_models < 1:
        raise ConfigError(f"{where}.max_models must be a positive integer")
    return PrometheusSettings(
        namespace=namespace,
        path=path,
        token=token,
        latency_buckets=_buckets(table, "latency_buckets", DEFAULT_LATENCY_BUCKETS, where),
        ttft_buckets=_buckets(table, "ttft_buckets", DEFAULT_TTFT_BUCKETS, where),
        max_models=max_models,
    )


def _string(table: Mapping[str, Any], key: str, where: str) -> str | None:
    value = table.get(key)
    if value is not None and not isinstance(value, str):
        raise ConfigError(f"{where}.{key} must be a string")
    return value


def _buckets(
    table: Mapping[str, Any], key: str, default: tuple[float, ...], where: str
) -> tuple[float, ...]:
    value = table.get(key)
    if value is None:
        return default
    if (
        not isinstance(value, list)
        or not value
        or not all(isinstance(v, int | float) and not isinstance(v, bool) and v > 0 for v in value)
    ):
        raise ConfigError(f"{where}.{key} must be a non-empty array of positive numbers (seconds)")
    buckets = tuple(float(v) for v in value)
    if list(buckets) != sorted(set(buckets)):
        raise ConfigError(f"{where}.{key} must be strictly increasing")
    return buckets
