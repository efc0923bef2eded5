"""Gemini's API served by the gateway: ``POST /{version}/models/{model}:generateContent``
(``version``: ``v1beta``, ``v1`` or ``v1alpha``),
``:streamGenerateContent``, ``:countTokens``, ``:embedContent`` and ``:batchEmbedContents`` as
rows of the core's operation table (`OPERATIONS`, registered by this plugin's
`register_operations`), for every provider.

- `GeminiDialect`: errors in Google's format (`inbound.error_body`), the key from
  ``x-goog-api-key`` (what the SDKs and the Gemini CLI send), else ``?key=`` (then taken out of
  the request's query string, so that no access log down the line writes it), else
  ``Authorization: Bearer`` / ``x-api-key``.
- The model comes from the path: `reader` reads the JSON body in camelCase
  (`inbound.names.camel_case`: Gemini accepts both spellings, the meters read one) and adds
  ``model`` (the path's, checked like every model name), ``stream`` (the action's) and, for
  ``streamGenerateContent``, ``sse`` (``?alt=sse``: server-sent events; otherwise one JSON
  array streamed element by element).
- Native for ``type = "gemini"`` providers (the body relayed, metered on
  ``generationConfig.maxOutputTokens`` times ``candidateCount``); converted for the others:
  generation through chat completions (`GenerateConversion`), embeddings through the OpenAI
  embeddings method (`EmbedConversion`), ``countTokens`` through the upstream's counter of the
  converted chat request (``chat_input_tokens``), else the local estimate. Hosted tools and
  fields the pivot cannot carry are named in ``x-compatgate-dropped-tools`` /
  ``x-compatgate-ignored`` and the ``compatgate`` log (`Conversion.report`).
- ``countTokens`` generates nothing: its meter measures nothing, so nothing is reserved or
  charged for it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, urlencode

from starlette.requests import Request

from compatgate import (
    Chunk,
    Conversion,
    Dialect,
    GatewayError,
    GatewaySettings,
    InvalidRequestError,
    Meter,
    NotFoundError,
    Operation,
    RequestContext,
    TokenMeter,
    UpstreamError,
)
from compatgate.operations import Reader
from compatgate.usage import estimate_tokens
from compatgate.validation import check_model_name, read_json

from .inbound import (
    ContentStream,
    count_tokens_estimate,
    embed_from_openai,
    embed_to_openai,
    error_body,
    from_chat,
    stream_error,
    to_chat,
    validate,
    validate_batch_embed_contents,
    validate_count_tokens,
    validate_embed_content,
    wants_thoughts,
)
from .inbound.names import camel_case
from .native import EVENT_STREAM, JSON

__all__ = [
    "GEMINI",
    "OPERATIONS",
    "VERSIONS",
    "CountConversion",
    "EmbedConversion",
    "GeminiDialect",
    "GeminiEncoder",
    "GenerateConversion",
    "NativeFraming",
    "reader",
]

Body = dict[str, Any]

_ROUTING = ("model", "stream", "sse")  # what `reader` adds to the body, never sent as such
_PREFIX = "/{version}/models/{model:path}:"
#: The API versions served (the google-genai SDKs default to ``v1`` or ``v1beta``).
VERSIONS = ("v1", "v1beta", "v1alpha")


class GeminiDialect(Dialect):
    """How the Gemini routes speak to their clients beyond their bodies."""

    name = "gemini"

    def error(self, error: GatewayError, request_id: str | None = None) -> tuple[int, bytes, dict[str, str]]:
        return error_body(error)

    def api_key(self, request: Request) -> str | None:
        key = request.headers.get("x-goog-api-key")
        if key and key.strip():
            return key.strip()
        query = request.scope.get("query_string", b"")
        if b"key=" in query:
            pairs = parse_qsl(query.decode("latin-1"), keep_blank_values=True)
            given = next((value for name, value in pairs if name == "key"), None)
            if given is not None:
                kept = urlencode([(name, value) for name, value in pairs if name != "key"])
                request.scope["query_string"] = kept.encode("latin-1")
                if given.strip():
                    return given.strip()
        return super().api_key(request)

    def stream(self, ctx: RequestContext) -> NativeFraming:
        return NativeFraming(sse=ctx.body.get("sse") is not False)


class NativeFraming:
    """What the gateway writes into a native ``streamGenerateContent`` before the upstream's
    first byte: blank lines as keep-alives (see `RawReply.keepalive` in `native`), and Google's
    error object (the array's only element in JSON array mode) when the upstream fails."""

    def __init__(self, *, sse: bool) -> None:
        self.sse = sse
        self.media_type = EVENT_STREAM if sse else JSON

    def start(self) -> bytes:
        return b""

    def feed(self, chunk: Chunk) -> bytes:  # pragma: no cover - never called on a native stream
        raise NotImplementedError("a native stream is relayed as the upstream sent it")

    def finish(self) -> bytes:  # pragma: no cover - never called on a native stream
        raise NotImplementedError("a native stream is relayed as the upstream sent it")

    def error(self, error: GatewayError) -> bytes:
        return stream_error(error, sse=self.sse, started=False)

    def keepalive(self) -> bytes:
        return b"\r\n"


GEMINI = GeminiDialect()


def reader(kind: str, *, stream: bool = False) -> Reader:
    """The body of one Gemini method: its JSON in camelCase (``kind``: ``request`` or
    ``embed``, see `camel_case`), with ``model`` from the path, ``stream`` and ``sse``."""

    async def read(request: Request, settings: GatewaySettings) -> Body:
        version = request.path_params["version"]
        if version not in VERSIONS:
            raise NotFoundError(f"Invalid URL ({request.method} {request.url.path}): API version {version!r} "
                                f"is not served (use {', '.join(VERSIONS)}).", code="unknown_url")
        body = camel_case(await read_json(request, settings.max_request_bytes), kind)
        model = request.path_params["model"]
        body["model"] = model[len("models/"):] if model.startswith("models/") else model
        body["stream"] = stream
        if stream:
            body["sse"] = request.query_params.get("alt") == "sse"
        return body

    return read


def _checked(validator: Any) -> Any:
    def check(body: Body) -> None:
        check_model_name(body["model"])
        validator(_request(body))

    return check


def _request(body: Body) -> Body:
    """The client's Gemini request, without what `reader` added."""
    return {key: value for key, value in body.items() if key not in _ROUTING}


class GeminiEncoder:
    """The `compatgate.Encoder` of a converted ``streamGenerateContent``: the pivot's chunks
    as Gemini responses through `ContentStream` (SSE or the JSON array)."""

    def __init__(self, stream: ContentStream) -> None:
        self.stream = stream
        self.media_type = EVENT_STREAM if stream.sse else JSON

    def start(self) -> bytes:
        return b""

    def feed(self, chunk: Chunk) -> bytes:
        return self.stream.feed(chunk.data)

    def finish(self) -> bytes:
        return self.stream.finish()

    def error(self, error: GatewayError) -> bytes:
        return self.stream.error(error)

    def keepalive(self) -> bytes:
        return self.stream.ping()


class GenerateConversion(Conversion):
    """``generateContent`` / ``streamGenerateContent`` through chat completions."""

    async def request(self, ctx: RequestContext, body: Body) -> Body:
        chat = to_chat(_request(body), model=ctx.model, stream=ctx.stream, signer=ctx.gateway.signer)
        tools = [name for name in chat.dropped if name.startswith("tools[")]
        self.report(ctx, tools, [name for name in chat.dropped if name not in tools])
        sent = chat.body
        if ctx.stream:
            sent["stream_options"] = {"include_usage": True}
        return sent

    async def reply(self, ctx: RequestContext, answer: Body) -> Body:
        if not isinstance(answer.get("choices"), list):
            raise UpstreamError("The upstream answered without choices.", status_code=502)
        return from_chat(answer, model=ctx.model, signer=ctx.gateway.signer, thoughts=wants_thoughts(ctx.body))

    def encoder(self, ctx: RequestContext) -> GeminiEncoder:
        stream = ContentStream(model=ctx.model, signer=ctx.gateway.signer, sse=ctx.body.get("sse") is not False,
                               thoughts=wants_thoughts(ctx.body))
        return GeminiEncoder(stream)


class CountConversion(Conversion):
    """``countTokens`` counted by the upstream's counter of the converted chat request."""

    method = "chat_input_tokens"
    meter = Meter()

    async def request(self, ctx: RequestContext, body: Body) -> Body:
        request = _request(body)
        validate_count_tokens(request)
        inner = request.get("generateContentRequest")
        source = {k: v for k, v in inner.items() if k != "model"} if isinstance(inner, Mapping) else request
        return to_chat(source, model=ctx.model, stream=False, signer=ctx.gateway.signer).body

    async def reply(self, ctx: RequestContext, answer: Body) -> Body:
        tokens = answer.get("input_tokens")
        if not isinstance(tokens, int) or isinstance(tokens, bool) or tokens < 0:
            raise UpstreamError("The upstream's token count is not a number.", status_code=502)
        return {"totalTokens": tokens}


async def estimate(ctx: RequestContext, body: Body) -> Body:
    """``countTokens`` answered by the gateway: the documented local estimate."""
    return {"totalTokens": count_tokens_estimate(_request(body))}


class EmbedConversion(Conversion):
    """``embedContent`` / ``batchEmbedContents`` through the OpenAI ``embeddings`` method."""

    method = "embeddings"
    meter = TokenMeter(output=False)

    def __init__(self, *, batch: bool) -> None:
        self.batch = batch

    async def request(self, ctx: RequestContext, body: Body) -> Body:
        return embed_to_openai(_request(body), model=ctx.model, batch=self.batch)

    async def reply(self, ctx: RequestContext, answer: Body) -> Body:
        count = len(ctx.sent["input"]) if self.batch else 1
        return embed_from_openai(answer, batch=self.batch, count=count)


def _generation_prompt(body: Mapping[str, Any]) -> int:
    """The prompt estimate of a generateContent body (0 when the estimate cannot read it: the
    upstream judges it)."""
    try:
        return count_tokens_estimate(_request(dict(body)))
    except (InvalidRequestError, TypeError, AttributeError, KeyError):
        return 0


def _embedding_prompt(body: Mapping[str, Any]) -> int:
    """The tokens of the texts of an embedContent / batchEmbedContents body (estimated)."""
    requests = body.get("requests") if isinstance(body.get("requests"), list) else [body]
    characters = 0
    for item in requests:
        content = item.get("content") if isinstance(item, Mapping) else None
        for part in (content.get("parts") if isinstance(content, Mapping) else None) or ():
            if isinstance(part, Mapping) and isinstance(part.get("text"), str):
                characters += len(part["text"])
    return estimate_tokens(characters)


_GENERATE_METER = TokenMeter("maxOutputTokens", path=("generationConfig",), choices=("candidateCount",),
                             prompt=_generation_prompt)
_EMBED_METER = TokenMeter(output=False, prompt=_embedding_prompt)

#: The rows this plugin adds to the operation table.
OPERATIONS: tuple[Operation, ...] = (
    Operation("gemini.generate_content", _PREFIX + "generateContent", "generate_content", _checked(validate),
              _GENERATE_METER, read=reader("request"), dialect=GEMINI, via=GenerateConversion()),
    Operation("gemini.stream_generate_content", _PREFIX + "streamGenerateContent", "generate_content",
              _checked(validate), _GENERATE_METER, read=reader("request", stream=True), streams=True,
              dialect=GEMINI, via=GenerateConversion()),
    Operation("gemini.count_tokens", _PREFIX + "countTokens", "count_tokens", _checked(validate_count_tokens),
              Meter(), read=reader("request"), dialect=GEMINI, via=CountConversion(), local=estimate),
    Operation("gemini.embed_content", _PREFIX + "embedContent", "embed_content", _checked(validate_embed_content),
              _EMBED_METER, read=reader("embed"), dialect=GEMINI, via=EmbedConversion(batch=False)),
    Operation("gemini.batch_embed_contents", _PREFIX + "batchEmbedContents", "batch_embed_contents",
              _checked(validate_batch_embed_contents), _EMBED_METER, read=reader("embed"), dialect=GEMINI,
              via=EmbedConversion(batch=True)),
)

