"""`Tracing`: a span per API request and a child span per upstream attempt.

The request span (kind SERVER) continues the caller's trace: the current span when the host
app is instrumented, else the incoming ``traceparent``. It is started lazily, at the first
upstream call or when the request ends, with its start time taken from the request's start,
so requests that never go upstream cost one span and nothing before `record_usage`.

An attempt span (kind CLIENT) starts in `upstream_headers`, right before the call, and its
context is what goes upstream as ``traceparent``. It ends when the request ends: a failed
attempt at its start plus the latency the gateway recorded (time to response headers), the
attempt that produced the answer at the end of the answer (a whole stream).

The GenAI attributes of the answer (response model and id, finish reasons, token usage) and
the request parameters go on the attempt span that produced the answer, the inference span of
the conventions, and on the request span only when no attempt span did (a provider that does
not go through `HTTPProvider.send`): a backend summing ``gen_ai.usage.*`` never counts twice.

Finish reasons, response model and id come from the `UsageRecord`, which the gateway fills
where it already looks at the answer: the plugin implements no ``transform_*`` hook, so the
gateway keeps relaying upstream bytes without re-serialising them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import propagate, trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanKind, StatusCode, Tracer, TracerProvider

from compatgate import Attempt, Gateway, Provider, RequestContext, UsageRecord, hookimpl, withdraw_hooks

from . import semconv as sc
from .settings import TracingSettings, load_tracer_provider, parse_settings

__all__ = ["Tracing"]

_STATE = "compatgate_otel"  # ctx.state key of a request's spans
_VERSION = "0.1.0"


@dataclass(slots=True)
class _RequestTrace:
    """The spans of one request while it runs."""

    span: Span
    parent: Context | None
    context: Context
    parameters: dict[str, Any]
    # (index in ctx.attempts, span, start ns, model named at the start)
    attempts: list[tuple[int, Span, int, str | None]] = field(default_factory=list)


_TRACEPARENT = TraceContextTextMapPropagator()

class Tracing:
    """OpenTelemetry tracing for one gateway, active when ``[plugins.otel]`` is configured or
    a tracer provider is given. ``tracer_provider`` wins over the configured one; without
    either the global provider is used. Passed in ``Gateway(plugins=[...])`` (itself, a subclass
    such as `using`'s, or an instance), it replaces the entry point's instance."""

    def __init__(self, gateway: Gateway, *, tracer_provider: TracerProvider | None = None) -> None:
        self.tracer: Tracer | None = None
        self.settings = TracingSettings()
        self._servers: dict[str, dict[str, Any]] = {}
        table = gateway.config.plugins.get("otel")
        if table is None and tracer_provider is None:
            withdraw_hooks(self, "upstream_headers", "record_usage")  # inert at no cost
            return
        self.settings = parse_settings(table or {}, gateway.config.source)
        if tracer_provider is None and self.settings.tracer_provider:
            tracer_provider = load_tracer_provider(self.settings.tracer_provider, gateway.config.source)
        self.tracer = trace.get_tracer("compatgate_otel", _VERSION, tracer_provider=tracer_provider)

    @classmethod
    def using(cls, tracer_provider: TracerProvider) -> type[Tracing]:
        """A plugin class bound to ``tracer_provider``:
        ``Gateway(config, plugins=[Tracing.using(provider)])``."""

        class BoundTracing(cls):  # type: ignore[valid-type,misc]
            def __init__(self, gateway: Gateway) -> None:
                super().__init__(gateway, tracer_provider=tracer_provider)

        return BoundTracing

    # -- hooks ------------------------------------------------------------------------------

    @hookimpl
    def upstream_headers(self, ctx: RequestContext, provider: Provider) -> dict[str, str] | None:
        tracer = self.tracer
        if tracer is None:
            return None
        current = ctx.state.get(_STATE)
        if current is None:
            current = ctx.state[_STATE] = self._begin(tracer, ctx)
        index = len(ctx.attempts)
        if current.attempts and current.attempts[-1][0] == index:  # that call recorded nothing
            stale = current.attempts.pop()[1]
            stale.set_attribute(sc.ERROR_TYPE, "_OTHER")
            stale.set_status(StatusCode.ERROR, "the upstream call failed before it was recorded")
            stale.end()
        route = ctx.route
        model = route.upstream_model if route is not None and route.provider is provider else None
        attributes = {
            sc.OPERATION_NAME: sc.operation_name(ctx.endpoint),
            sc.PROVIDER_NAME: self._provider_name(provider),
            **current.parameters,
            **self._server(provider),
            "compatgate.provider": provider.name,
            "compatgate.attempt.number": index + 1,
        }
        if model:
            attributes[sc.REQUEST_MODEL] = model
        start = time.time_ns()
        span = tracer.start_span(
            sc.span_name(ctx.endpoint, model), current.context, SpanKind.CLIENT, attributes, start_time=start
        )
        current.attempts.append((index, span, start, model))
        if not self.settings.propagate:
            return None
        carrier: dict[str, str] = {}
        context = trace.set_span_in_context(span, current.parent)
        if self.settings.forward_client_context:  # the configured propagators: baggage, tracestate...
            propagate.inject(carrier, context=context)
        else:  # only this gateway's traceparent: the client's baggage and tracestate stay here
            _TRACEPARENT.inject(carrier, context=context)
            carrier.pop("tracestate", None)
        return carrier

    @hookimpl
    def record_usage(self, ctx: RequestContext, record: UsageRecord) -> None:
        tracer = self.tracer
        if tracer is None:
            return
        current = ctx.state.pop(_STATE, None) or self._begin(tracer, ctx)
        now = time.time_ns()
        answered = False  # whether an attempt span took the answer's attributes
        for position, (index, span, start, model) in enumerate(current.attempts):
            attempt = record.attempts[index] if index < len(record.attempts) else None
            last = position == len(current.attempts) - 1
            answered = _end_attempt(span, start, model, attempt, record, last, now) or answered
        attributes: dict[str, Any] = {
            sc.HTTP_RESPONSE_STATUS_CODE: record.status_code,
            "compatgate.outcome": record.outcome,
            "compatgate.attempts": len(record.attempts),
        }
        if not answered:  # no attempt span produced the answer: the request span describes it
            attributes.update(current.parameters)
            attributes.update(_answer_attributes(record))
        if record.key_id is not None:
            attributes["compatgate.key_id"] = record.key_id
        route = ctx.route
        if route is not None:
            attributes[sc.PROVIDER_NAME] = self._provider_name(route.provider)
            attributes["compatgate.provider"] = route.provider.name
            attributes["compatgate.upstream_model"] = route.upstream_model
        if record.time_to_first_token_ms is not None:
            attributes[sc.RESPONSE_TIME_TO_FIRST_CHUNK] = record.time_to_first_token_ms / 1000.0
        if record.outcome == "error":
            attributes[sc.ERROR_TYPE] = record.error_code or str(record.status_code)
        span = current.span
        span.set_attributes(attributes)
        # A refusal (4xx) is the client's error: a SERVER span's status stays unset.
        if record.outcome == "error" and (record.status_code >= 500 or record.status_code < 400):
            span.set_status(StatusCode.ERROR, record.error)
        span.end(end_time=now)

    # -- helpers ----------------------------------------------------------------------------

    def _begin(self, tracer: Tracer, ctx: RequestContext) -> _RequestTrace:
        """Start the request span, backdated to when the request arrived."""
        parent: Context | None = None
        if self.settings.extract and not trace.get_current_span().get_span_context().is_valid:
            parent = propagate.extract(ctx.request.headers)
        elapsed = int((time.perf_counter() - ctx.started) * 1e9)
        attributes: dict[str, Any] = {
            sc.OPERATION_NAME: sc.operation_name(ctx.endpoint),
            "compatgate.request_id": ctx.request_id,
        }
        if ctx.model:
            attributes[sc.REQUEST_MODEL] = ctx.model
            attributes[sc.REQUEST_STREAM] = ctx.stream
        span = tracer.start_span(
            sc.span_name(ctx.endpoint, ctx.model), parent, SpanKind.SERVER, attributes,
            start_time=time.time_ns() - elapsed,
        )
        context = trace.set_span_in_context(span, parent)
        return _RequestTrace(span, parent, context, sc.request_attributes(ctx.body))

    def _server(self, provider: Provider) -> dict[str, Any]:
        server = self._servers.get(provider.name)
        if server is None:
            server = self._servers[provider.name] = sc.server_attributes(provider.config.base_url)
        return server

    def _provider_name(self, provider: Provider) -> str:
        return sc.provider_name(provider.type, self.settings.provider_names.get(provider.name))


def _answer_attributes(record: UsageRecord) -> dict[str, Any]:
    """The GenAI attributes of the answer: response model, id, finish reasons, token usage."""
    attributes: dict[str, Any] = {}
    if record.response_model is not None:
        attributes[sc.RESPONSE_MODEL] = record.response_model
    if record.response_id is not None:
        attributes[sc.RESPONSE_ID] = record.response_id
    if record.finish_reasons:
        attributes[sc.RESPONSE_FINISH_REASONS] = record.finish_reasons
    if record.usage is not None:
        attributes.update(sc.usage_attributes(record.usage))
    return attributes


def _end_attempt(
    span: Span,
    start: int,
    model: str | None,
    attempt: Attempt | None,
    record: UsageRecord,
    last: bool,
    now: int,
) -> bool:
    """End an attempt span with what the gateway recorded about that upstream call; True when
    it was the call that produced the answer (it then carries the answer's attributes)."""
    if attempt is None:  # the call never got as far as being recorded
        span.set_attribute(sc.ERROR_TYPE, record.error_code or "_OTHER")
        span.set_status(StatusCode.ERROR, record.error)
        span.end(end_time=now)
        return False
    attributes: dict[str, Any] = {sc.HTTP_RESPONSE_STATUS_CODE: attempt.status_code}
    if attempt.upstream_model and attempt.upstream_model != model:  # e.g. a fallback's model
        attributes[sc.REQUEST_MODEL] = attempt.upstream_model
        span.update_name(sc.span_name(record.endpoint, attempt.upstream_model))
    answered = last and attempt.error is None and attempt.status_code < 400
    if not answered:
        if attempt.error is not None or attempt.status_code >= 400:
            attributes[sc.ERROR_TYPE] = str(attempt.status_code)
            span.set_status(StatusCode.ERROR, attempt.error)
        span.set_attributes(attributes)
        span.end(end_time=start + int(attempt.latency_ms * 1e6))
        return False
    # The call that produced the answer: it lasted until the answer ended (a whole stream).
    attributes.update(_answer_attributes(record))
    if record.outcome == "error":  # the stream broke after it had started
        attributes[sc.ERROR_TYPE] = record.error_code or "_OTHER"
        span.set_status(StatusCode.ERROR, record.error)
    elif record.outcome == "aborted":
        attributes["compatgate.outcome"] = "aborted"
    span.set_attributes(attributes)
    span.end(end_time=now)
    return True
