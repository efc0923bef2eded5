"""`Prometheus`: the plugin class, one instance (and one registry) per gateway."""

from __future__ import annotations

from collections.abc import Callable

from starlette.routing import BaseRoute, Route

from compatgate import Gateway, RequestContext, UsageRecord, hookimpl, withdraw_hooks

from .exposition import _STATE, MetricsEndpoint
from .metrics import GatewayMetrics
from .settings import PrometheusSettings, parse_settings

__all__ = ["Prometheus"]


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

