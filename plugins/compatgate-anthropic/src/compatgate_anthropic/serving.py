"""Anthropic's Messages API served by the gateway: ``POST /messages`` and
``POST /messages/count_tokens`` as rows of the core's operation table (`OPERATIONS`, registered
by this plugin's `register_operations`), for every provider.

- `AnthropicDialect`: errors in Anthropic's format (`inbound.error_body`), the key from
  ``x-api-key`` or ``Authorization: Bearer``, and a ``request-id`` header on every answer.
- ``messages``: relayed natively to providers that serve ``messages`` (``type = "anthropic"``),
  metered on the Anthropic body (``max_tokens``, the local prompt estimate); for every other
  provider converted to chat completions (`MessagesConversion`: `inbound.to_chat`,
  `inbound.from_chat`, the stream through `MessageEncoder`). Server tools the upstream cannot
  run are dropped and named in ``x-compatgate-dropped-tools`` (fields and blocks without a chat
  form in ``x-compatgate-ignored``) and in the ``compatgate`` log (`Conversion.report`).
- ``messages.count_tokens``: Anthropic's own count (``messages_count_tokens``), else the
  upstream's counter of the converted chat request (``chat_input_tokens``: Gemini providers),
  else the local estimate (`inbound.count_tokens_estimate`). It generates nothing: its meter
  measures nothing, so budgets reserve nothing for it and nothing is charged.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from compatgate import (
    Chunk,
    Conversion,
    Dialect,
    GatewayError,
    InvalidRequestError,
    Meter,
    Operation,
    RequestContext,
    TokenMeter,
    UpstreamError,
)
from compatgate.validation import check_model_name

from .inbound import (
    MessageStream,
    count_tokens_answer,
    count_tokens_estimate,
    error_body,
    error_event,
    from_chat,
    to_chat,
    validate,
    validate_count_tokens,
    validate_native,
)
from .inbound.checks import invalid

__all__ = [
    "ANTHROPIC",
    "OPERATIONS",
    "AnthropicDialect",
    "CountTokensConversion",
    "MessageEncoder",
    "MessagesConversion",
    "NativeFraming",
]

Body = dict[str, Any]
_MEDIA_TYPE = "text/event-stream; charset=utf-8"


class AnthropicDialect(Dialect):
    """How ``/messages`` speaks to its clients beyond its bodies (see the module docstring)."""

    name = "anthropic"

    def error(self, error: GatewayError, request_id: str | None = None) -> tuple[int, bytes, dict[str, str]]:
        return error_body(error, request_id=request_id)

    def headers(self, ctx: RequestContext) -> Mapping[str, str]:
        return {"request-id": ctx.request_id}

    def stream(self, ctx: RequestContext) -> NativeFraming:
        return NativeFraming(ctx.request_id)


class NativeFraming:
    """What the gateway writes into a native ``/messages`` stream before the upstream's first
    byte: SSE comments as keep-alives (an Anthropic client reads nothing into them; a ``ping``
    event may not come before the upstream's own ``message_start``), and Anthropic's ``error``
    event when the upstream fails meanwhile."""

    media_type = _MEDIA_TYPE

    def __init__(self, request_id: str) -> None:
        self.request_id = request_id

    def start(self) -> bytes:
        return b""

    def feed(self, chunk: Chunk) -> bytes:  # pragma: no cover - never called on a native stream
        raise NotImplementedError("a native stream is relayed as the upstream sent it")

    def finish(self) -> bytes:  # pragma: no cover - never called on a native stream
        raise NotImplementedError("a native stream is relayed as the upstream sent it")

    def error(self, error: GatewayError) -> bytes:
        return error_event(error, request_id=self.request_id)

    def keepalive(self) -> bytes:
        return b": keep-alive\n\n"


ANTHROPIC = AnthropicDialect()


def _check_count(body: Body) -> None:
    """What the pipeline needs of every ``count_tokens`` body, whatever the provider: the
    fields it routes on (`validate_native`) and a model name it can route."""
    validate_native(body)
    check_model_name(body["model"])


def _check(body: Body) -> None:
    """`_check_count`, and the ``max_tokens`` every ``/messages`` body carries (the meter
    reserves it)."""
    _check_count(body)
    if "max_tokens" not in body:
        raise invalid("max_tokens", "Field required.")


class MessageEncoder:
    """The `compatgate.Encoder` of a converted ``/messages`` stream: the pivot's chunks as
    Anthropic's events, through `MessageStream`. ``message_start`` goes out as soon as the
    stream begins (`start`), a ``ping`` event while the upstream is silent."""

    media_type = _MEDIA_TYPE

    def __init__(self, stream: MessageStream) -> None:
        self.stream = stream

    def start(self) -> bytes:
        return self.stream.start()

    def feed(self, chunk: Chunk) -> bytes:
        return self.stream.feed(chunk.data)

    def finish(self) -> bytes:
        return self.stream.finish()

    def error(self, error: GatewayError) -> bytes:
        return self.stream.error(error)

    def keepalive(self) -> bytes:
        return self.stream.ping()


class MessagesConversion(Conversion):
    """``/messages`` served through chat completions (see the module docstring)."""

    async def request(self, ctx: RequestContext, body: Body) -> Body:
        validate(body)
        conversion = to_chat(body, ctx.gateway.signer)
        self.report(ctx, conversion.dropped_tools, conversion.ignored)
        return conversion.body

    async def reply(self, ctx: RequestContext, answer: Body) -> Body:
        if not isinstance(answer.get("choices"), list) or not answer["choices"]:
            raise UpstreamError("The upstream answered without a choice.", status_code=502)
        return from_chat(answer, model=ctx.model, stop_sequences=ctx.body.get("stop_sequences"),
                         signer=ctx.gateway.signer, input_tokens=_prompt(ctx))

    def encoder(self, ctx: RequestContext) -> MessageEncoder:
        stream = MessageStream(model=ctx.model, input_tokens=_prompt(ctx),
                               stop_sequences=ctx.body.get("stop_sequences"), signer=ctx.gateway.signer,
                               request_id=ctx.request_id)
        return MessageEncoder(stream)


class CountTokensConversion(Conversion):
    """``/messages/count_tokens`` counted by the upstream's counter of the converted chat
    request (`compatgate.Provider.chat_input_tokens`)."""

    method = "chat_input_tokens"
    meter = Meter()

    async def request(self, ctx: RequestContext, body: Body) -> Body:
        validate_count_tokens(body)
        return to_chat(body, ctx.gateway.signer).body

    async def reply(self, ctx: RequestContext, answer: Body) -> Body:
        tokens = answer.get("input_tokens")
        if not isinstance(tokens, int) or isinstance(tokens, bool) or tokens < 0:
            raise UpstreamError("The upstream's token count is not a number.", status_code=502)
        return count_tokens_answer(tokens)


async def estimate(ctx: RequestContext, body: Body) -> Body:
    """``count_tokens`` answered by the gateway: the documented local estimate."""
    validate_count_tokens(body)
    return count_tokens_answer(count_tokens_estimate(body))


def _prompt(ctx: RequestContext) -> int:
    return ctx.units.prompt_tokens if ctx.units is not None else 0


def _anthropic_prompt(body: Mapping[str, Any]) -> int:
    """The prompt estimate of an Anthropic body, as the meter measures it (0 for a body whose
    content the estimate cannot read: the upstream judges it)."""
    try:
        return count_tokens_estimate(body)
    except (TypeError, AttributeError, InvalidRequestError):
        return 0


#: The rows this plugin adds to the operation table.
OPERATIONS: tuple[Operation, ...] = (
    Operation("messages", "/messages", "messages", _check, TokenMeter("max_tokens", prompt=_anthropic_prompt),
              streams=True, dialect=ANTHROPIC, via=MessagesConversion()),
    Operation("messages.count_tokens", "/messages/count_tokens", "messages_count_tokens", _check_count, Meter(),
              dialect=ANTHROPIC, via=CountTokensConversion(), local=estimate),
)
