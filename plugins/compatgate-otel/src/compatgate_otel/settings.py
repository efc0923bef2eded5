"""The ``[plugins.otel]`` table, checked at gateway construction."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.trace import TracerProvider

from compatgate import ConfigError

__all__ = ["TracingSettings", "load_tracer_provider", "parse_settings"]

_KEYS = {"tracer_provider", "extract", "propagate", "forward_client_context", "provider_names"}


@dataclass(frozen=True, slots=True)
class TracingSettings:
    """``tracer_provider``: ``"module:attribute"`` naming a `TracerProvider` (or a function
    returning one), else the global one; ``extract``: continue the trace of an incoming
    ``traceparent``; ``propagate``: send the attempt span's ``traceparent`` upstream;
    ``forward_client_context``: send what the configured propagators carry too (the client's
    ``baggage`` and ``tracestate``: off by default, they are the client's business);
    ``provider_names``: ``gen_ai.provider.name`` by provider name, overriding the value
    derived from the provider's type (e.g. ``azure.ai.openai`` for an ``openai`` provider)."""

    tracer_provider: str | None = None
    extract: bool = True
    propagate: bool = True
    forward_client_context: bool = False
    provider_names: Mapping[str, str] = field(default_factory=dict)


def parse_settings(table: Mapping[str, Any], source: str = "<config>") -> TracingSettings:
    where = f"{source}: plugins.otel"
    unknown = sorted(set(table) - _KEYS)
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r} (allowed: {', '.join(sorted(_KEYS))})")
    provider = table.get("tracer_provider")
    if provider is not None and (not isinstance(provider, str) or ":" not in provider):
        raise ConfigError(f"{where}.tracer_provider must be a string \"module:attribute\"")
    for key in ("extract", "propagate", "forward_client_context"):
        if not isinstance(table.get(key, True), bool):
            raise ConfigError(f"{where}.{key} must be true or false")
    names = table.get("provider_names", {})
    if not isinstance(names, Mapping) or not all(isinstance(v, str) and v for v in names.values()):
        raise ConfigError(f"{where}.provider_names must be a table of non-empty strings")
    return TracingSettings(provider, table.get("extract", True), table.get("propagate", True),
                           table.get("forward_client_context", False), dict(names))


def load_tracer_provider(path: str, source: str = "<config>") -> TracerProvider:
    """The `TracerProvider` that ``"module:attribute"`` names (calling it if it is a function)."""
    module_name, _, attribute = path.partition(":")
    where = f"{source}: plugins.otel.tracer_provider = {path!r}"
    try:
        value: Any = importlib.import_module(module_name)
        for part in attribute.split("."):
            value = getattr(value, part)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"{where}: cannot be imported ({exc})") from None
    if not isinstance(value, TracerProvider) and callable(value):
        value = value()
    if not isinstance(value, TracerProvider):
        raise ConfigError(f"{where}: is not an opentelemetry TracerProvider")
    return value
