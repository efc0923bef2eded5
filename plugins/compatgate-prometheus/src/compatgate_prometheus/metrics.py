"""The metrics of one gateway, in a registry of their own, and how a request updates them.

In multi-process mode (``PROMETHEUS_MULTIPROC_DIR`` set before ``prometheus_client`` is
imported) every process writes its values to files in that directory and a scrape aggregates
them all; the gauges are summed over live processes (``livesum``).
"""

from __future__ import annotations

import gc
import os
import weakref
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client import values as prometheus_values
from prometheus_client.metrics import MetricWrapperBase

from compatgate import ConfigError

from .settings import PrometheusSettings

if TYPE_CHECKING:
    from compatgate import RequestContext, UsageRecord

__all__ = ["GatewayMetrics", "multiprocess_directory"]

_STATE = "prometheus"  # key of a request's gauge labels in ctx.state
_OTHER = "_other"

# In multi-process mode the values of equal metric names share files per process: one
# namespace per gateway and process, or two gateways would overwrite each other's values.
_OWNERS: weakref.WeakValueDictionary[str, GatewayMetrics] = weakref.WeakValueDictionary()


def multiprocess_directory() -> str | None:
    """The multi-process directory when prometheus_client runs in multi-process mode."""
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or os.environ.get("prometheus_multiproc_dir")
    active = prometheus_values.ValueClass is not prometheus_values.MutexValue
    if directory and not active:
        raise ConfigError(
            "PROMETHEUS_MULTIPROC_DIR is set but prometheus_client was imported before it was: "
            "set the variable before the process starts"
        )
    if active and not directory:
        raise ConfigError("prometheus_client is in multi-process mode but PROMETHEUS_MULTIPROC_DIR is unset")
    return directory if active else None


class GatewayMetrics:
    """Every metric of one gateway; `admitted` and `finished` bracket each request."""

    def __init__(self, settings: PrometheusSettings) -> None:
        self.settings = settings
        self.multiprocess_dir = multiprocess_directory()
        if self.multiprocess_dir is not None:
            _claim(settings.namespace, self)
        self.registry = CollectorRegistry(auto_describe=True)
        self._models: set[str] = set()
        ns, reg = settings.namespace, self.registry
        request = ("endpoint", "model", "provider")
        self.requests = _Children(Counter(
            "requests", "API requests by how they ended.", (*request, "status", "outcome"),
            namespace=ns, registry=reg,
        ))
        self.duration = _Children(Histogram(
            "request_duration_seconds", "End-to-end latency of API requests (to the last byte).",
            (*request, "outcome"), namespace=ns, registry=reg, buckets=settings.latency_buckets,
        ))
        self.ttft = _Children(Histogram(
            "time_to_first_token_seconds", "Time from the request to the first streamed chunk.",
            request, namespace=ns, registry=reg, buckets=settings.ttft_buckets,
        ))
        self.tokens = _Children(Counter(
            "tokens", "Tokens by kind: prompt, completion, cached, reasoning, cache_write; "
            "estimated=\"true\" when the upstream never reported them (e.g. an aborted stream).",
            (*request, "kind", "estimated"), namespace=ns, registry=reg,
        ))
        self.upstream_latency = _Children(Histogram(
            "upstream_latency_seconds", "Time from an upstream call to its response headers.",
            ("provider",), namespace=ns, registry=reg, buckets=settings.latency_buckets,
        ))
        self.upstream_errors = _Children(Counter(
            "upstream_errors", "Failed upstream calls by provider and status "
            "(status=\"stream\": a stream that broke after it had started).",
            ("provider", "status"), namespace=ns, registry=reg,
        ))
        self.retries = _Children(Counter(
            "upstream_retries", "Upstream calls beyond the first of a request, by the provider called.",
            ("provider",), namespace=ns, registry=reg,
        ))
        self.in_flight = _Children(Gauge(
            "requests_in_flight", "Admitted API requests not finished yet.", request,
            namespace=ns, registry=reg, multiprocess_mode="livesum",
        ))
        self.streams = _Children(Gauge(
            "open_streams", "Streamed API requests not finished yet.", request,
            namespace=ns, registry=reg, multiprocess_mode="livesum",
        ))
        self.cache = _Children(Counter(
            "cache_requests", "Requests a response cache took part in, by result: hit (served from "
            "the cache, no upstream call), miss, bypass (not cacheable, or the client said no-cache).",
            (*request, "result"), namespace=ns, registry=reg,
        ))
        self.cache_bytes = _Children(Counter(
            "cache_served_bytes", "Bytes of answers served from a response cache.",
            request, namespace=ns, registry=reg,
        ))
        self.cache_saved = _Children(Counter(
            "cache_saved_tokens", "Upstream tokens cache hits did not use, by kind: prompt, completion.",
            (*request, "kind"), namespace=ns, registry=reg,
        ))
        self.refusals = _Children(Counter(
            "refusals", "Requests answered 429, by error code (rate_limit_exceeded, "
            "insufficient_quota...) and source (gateway: a plugin refused; upstream: relayed).",
            ("model", "code", "source"), namespace=ns, registry=reg,
        ))

    def close(self) -> None:
        """Give the namespace back (multi-process mode), e.g. when another instance takes over."""
        if _OWNERS.get(self.settings.namespace) is self:
            del _OWNERS[self.settings.namespace]

    def model_label(self, model: str, routed: bool) -> str:
        """``model`` as a label value: empty for a request that was never routed (the name is
        the client's), ``_other`` past ``max_models`` distinct names."""
        if not routed:
            return ""
        if model in self._models:
            return model
        if len(self._models) < self.settings.max_models:
            self._models.add(model)
            return model
        return _OTHER

    def admitted(self, ctx: RequestContext) -> None:
        """A request passed `admit_request`: count it in flight (and as an open stream)."""
        route = ctx.route
        provider = route.provider.name if route is not None else ""
        labels = (ctx.endpoint, self.model_label(ctx.model, route is not None), provider)
        self.in_flight(*labels).inc()
        if ctx.stream:
            self.streams(*labels).inc()
        ctx.state[_STATE] = labels

    def finished(self, ctx: RequestContext, record: UsageRecord) -> None:
        """A request ended (`record_usage`): update every metric."""
        admitted = ctx.state.pop(_STATE, None)
        if admitted is not None:
            self.in_flight(*admitted).dec()
            if ctx.stream:
                self.streams(*admitted).dec()
        provider = record.provider or ""
        model = self.model_label(record.model, record.provider is not None)
        endpoint = record.endpoint
        self.requests(endpoint, model, provider, str(record.status_code), record.outcome).inc()
        self.duration(endpoint, model, provider, record.outcome).observe(record.latency_ms / 1000.0)
        if record.time_to_first_token_ms is not None:
            self.ttft(endpoint, model, provider).observe(record.time_to_first_token_ms / 1000.0)
        usage = record.usage
        if record.cache is not None:
            self.cache(endpoint, model, provider, record.cache).inc()
            if record.cached:  # no upstream call: its tokens are saved, not used
                note = ctx.state.get("cache")
                served = getattr(note, "served_bytes", 0)
                if isinstance(served, int) and served > 0:
                    self.cache_bytes(endpoint, model, provider).inc(served)
                if usage is not None:
                    for kind, count in (("prompt", usage.prompt_tokens), ("completion", usage.completion_tokens)):
                        if count:
                            self.cache_saved(endpoint, model, provider, kind).inc(count)
                usage = None
        if usage is not None:
            estimated = "true" if usage.estimated else "false"
            for kind, count in (
                ("prompt", usage.prompt_tokens),
                ("completion", usage.completion_tokens),
                ("cached", usage.cached_tokens),
                ("reasoning", usage.reasoning_tokens),
                ("cache_write", usage.cache_write_tokens),
            ):
                if count:
                    self.tokens(endpoint, model, provider, kind, estimated).inc(count)
        for index, attempt in enumerate(record.attempts):
            self.upstream_latency(attempt.provider).observe(attempt.latency_ms / 1000.0)
            if attempt.error is not None or attempt.status_code >= 400:
                self.upstream_errors(attempt.provider, str(attempt.status_code)).inc()
            if index:
                self.retries(attempt.provider).inc()
        if record.outcome == "error" and record.status_code < 400 and record.attempts:
            self.upstream_errors(record.attempts[-1].provider, "stream").inc()
        if record.status_code == 429:
            upstream = bool(record.attempts) and record.attempts[-1].status_code == 429
            source = "upstream" if upstream else "gateway"
            self.refusals(model, record.error_code or "", source).inc()


class _Children:
    """A metric's children by label values, kept once made: ``metric.labels(...)`` checks and
    locks on every call, which made up most of the plugin's cost per request."""

    __slots__ = ("children", "metric")

    def __init__(self, metric: MetricWrapperBase) -> None:
        self.metric = metric
        self.children: dict[tuple[str, ...], Any] = {}

    def __call__(self, *labels: str) -> Any:
        child = self.children.get(labels)
        if child is None:
            child = self.children[labels] = self.metric.labels(*labels)
        return child


def _claim(namespace: str, metrics: GatewayMetrics) -> None:
    if namespace in _OWNERS:
        gc.collect()  # a gateway that is gone but not collected yet holds no claim
    if namespace in _OWNERS:
        raise ConfigError(
            f"plugins.prometheus: another gateway in this process already uses the namespace "
            f"{namespace!r} in multi-process mode; give each gateway its own namespace"
        )
    _OWNERS[namespace] = metrics
