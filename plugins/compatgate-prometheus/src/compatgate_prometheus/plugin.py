"""`Prometheus`: the plugin class, one instance (and one registry) per gateway, and
`metrics_app`, which serves a gateway's metrics where the host mounts it."""

from __future__ import annotations

from collections.abc import Callable

from starlette.routing import BaseRoute, Route

from compatgate import ConfigError, Gateway, RequestContext, UsageRecord, hookimpl, withdraw_hooks

from .exposition import MetricsEndpoint
from .metrics import GatewayMetrics
from .settings import PrometheusSettings, parse_settings

__all__ = ["Prometheus", "metrics_app"]

_STATE = "compatgate_prometheus"  # gateway.state key of the active plugin


class Prometheus:
    """Prometheus metrics for one gateway, active when ``[plugins.prometheus]`` is configured.

    ``metrics`` is None while inert. Passed in ``Gateway(plugins=[Prometheus])`` it replaces
    the entry point's instance (the core registers one), so nothing is counted twice.
    """

    def __init__(self, gateway: Gateway) -> None:
        self.settings: PrometheusSettings | None = None
        self.metrics: GatewayMetrics | None = None
        table = gateway.config.plugins.get("prometheus")
        if table is None:
            withdraw_hooks(self, "register_routes", "admit_request", "record_usage")
            return
        self.settings = parse_settings(table, gateway.config.source)
        self.metrics = GatewayMetrics(self.settings)
        gateway.state[_STATE] = self

    @hookimpl
    def register_routes(self, register: Callable[[BaseRoute], None]) -> None:
        metrics, settings = self.metrics, self.settings
        if metrics is not None and settings is not None and settings.path:
            register(Route(settings.path, MetricsEndpoint(metrics, settings.token)))

    @hookimpl(trylast=True)
    def admit_request(self, ctx: RequestContext) -> None:
        # trylast: a request counts as in flight once every other plugin has admitted it.
        if self.metrics is not None:
            self.metrics.admitted(ctx)

    @hookimpl
    def record_usage(self, ctx: RequestContext, record: UsageRecord) -> None:
        if self.metrics is not None:
            self.metrics.finished(ctx, record)



def metrics_app(gateway: Gateway, *, token: str | None = None) -> MetricsEndpoint:
    """An ASGI app serving ``gateway``'s metrics (``app.mount("/metrics", metrics_app(gw))``).

    ``token``, else the configured ``[plugins.prometheus] token``, is required as
    ``Authorization: Bearer <token>`` when set. Raises `ConfigError` when the plugin is not
    active on this gateway (no ``[plugins.prometheus]`` table, or not installed).
    """
    plugin = gateway.state.get(_STATE)
    metrics = plugin.metrics if isinstance(plugin, Prometheus) else None
    if metrics is None:
        raise ConfigError(
            f"{gateway.config.source}: compatgate-prometheus is not active on this gateway: "
            "add a [plugins.prometheus] table"
        )
    return MetricsEndpoint(metrics, token if token is not None else metrics.settings.token)
