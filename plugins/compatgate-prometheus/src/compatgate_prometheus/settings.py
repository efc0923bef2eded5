"""The ``[plugins.prometheus]`` table, checked at gateway construction."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from compatgate.settings import UNKNOWN_NAMED_KEY, Table

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
    checked = Table(table, "plugins.prometheus", source)
    checked.only(_KEYS, message=UNKNOWN_NAMED_KEY)
    namespace = checked.value("namespace", str) or "compatgate"
    if not _NAMESPACE.fullmatch(namespace):
        raise checked.error("must match [a-zA-Z_][a-zA-Z0-9_]*", "namespace")
    path = checked.value("path", str)
    if path is not None and (not path.startswith("/") or path == "/"):
        raise checked.error("must start with '/' and name a route, e.g. \"/metrics\"", "path")
    token = checked.value("token", str)
    if token is not None and not token:
        raise checked.error("must not be empty (leave it out for no token)", "token")
    max_models = checked.get("max_models", 200)
    if not isinstance(max_models, int) or isinstance(max_models, bool) or max_models < 1:
        raise checked.error("must be a positive integer", "max_models")
    return PrometheusSettings(
        namespace=namespace,
        path=path,
        token=token,
        latency_buckets=_buckets(checked, "latency_buckets", DEFAULT_LATENCY_BUCKETS),
        ttft_buckets=_buckets(checked, "ttft_buckets", DEFAULT_TTFT_BUCKETS),
        max_models=max_models,
    )


def _buckets(table: Table, key: str, default: tuple[float, ...]) -> tuple[float, ...]:
    value = table.get(key)
    if value is None:
        return default
    if (
        not isinstance(value, list)
        or not value
        or not all(isinstance(v, int | float) and not isinstance(v, bool) and v > 0 for v in value)
    ):
        raise table.error("must be a non-empty array of positive numbers (seconds)", key)
    buckets = tuple(float(v) for v in value)
    if list(buckets) != sorted(set(buckets)):
        raise table.error("must be strictly increasing", key)
    return buckets
