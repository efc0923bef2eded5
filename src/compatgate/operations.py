"""The operation table: every upstream-bound endpoint, and everything the gateway knows about it.

An `Operation` is one row: its name (``ctx.endpoint``), its path (relative to where the gateway
is mounted), how its body is read and checked, the `Provider` method that serves it, how it is
metered (`compatgate.metering`), how it speaks to its clients (a `Dialect`: the error format
and where the key is) and, for protocols that are not OpenAI's own, how it is served through
a pivot when a provider lacks the native method (a `Conversion`: Chat Completions, or
another pivot method such as ``embeddings``), and, for an operation that can answer without
any upstream (a token count estimated locally), its ``local`` answer. Routing,
validation, metering, billing, rate limits and the docs all read this table, and every row
runs through the same pipeline (`compatgate.endpoints`): an endpoint cannot be added that is
not authorised, metered and limited.

The built-in rows (`OPENAI_OPERATIONS`) are registered by a default plugin; plugins add theirs
through the `register_operations` hook (the Responses API and the Anthropic and Gemini inbound
protocols are such plugins).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from starlette.requests import Request

from .exceptions import GatewayError
from .metering import CHAT_METER, AudioMeter, ImageMeter, Meter, SpeechMeter, TokenMeter
from .replies import Chunk
from .uploads import read_form
from .validation import (
    Validator,
    check_chat,
    check_completions,
    check_embeddings,
    check_model,
    check_speech,
    read_json,
)

if TYPE_CHECKING:
    from .config import GatewaySettings
    from .context import RequestContext

__all__ = [
    "CHAT_METER",
    "DROPPED_TOOLS_HEADER",
    "IGNORED_HEADER",
    "OPENAI",
    "OPENAI_OPERATIONS",
    "Conversion",
    "Dialect",
    "Encoder",
    "Local",
    "Operation",
    "form_reader",
    "json_reader",
    "query_reader",
]

Body = dict[str, Any]
Reader = Callable[[Request, "GatewaySettings"], Awaitable[Body]]
Local = Callable[["RequestContext", Body], Awaitable[Body]]

logger = logging.getLogger("compatgate")

#: Names the tools of a converted request that the upstream cannot run, which the gateway left out.
DROPPED_TOOLS_HEADER = "x-compatgate-dropped-tools"
#: Names the fields and items of a converted request that have no form in the pivot, left out.
IGNORED_HEADER = "x-compatgate-ignored"
_HEADER_LIMIT = 2000  # characters of such a header: the names, cut short past it

class Dialect:
    """How an operation speaks to its clients, beyond its bodies: the error format and where
    the client's key is. This base is OpenAI's; the Anthropic and Gemini inbound protocols
    subclass it."""

    name = "openai"

    def error(self, error: GatewayError, request_id: str | None = None) -> tuple[int, bytes, dict[str, str]]:
        """The status, body and headers that answer ``error`` (``request_id``: the request's
        id, for formats whose error body names it)."""
        return error.status_code, error.to_json(), error.headers

    def headers(self, ctx: RequestContext) -> Mapping[str, str] | None:
        """Headers every answer in this dialect carries (after those of the hooks), e.g.
        Anthropic's ``request-id``; None for none."""
        return None

    def stream(self, ctx: RequestContext) -> Encoder | None:
        """What the gateway itself writes into a *native* stream of this dialect (a `RawReply`
        relayed as the upstream sent it) before the upstream's first byte: its ``media_type``,
        ``keepalive`` and the ``error`` that ends it (see `compatgate.endpoints.EarlyStart`;
        ``start``, ``feed`` and ``finish`` are not called). None: OpenAI's."""
        return None

    def api_key(self, request: Request) -> str | None:
        """The key of ``Authorization: Bearer <key>`` or ``x-api-key``; None without one."""
        authorization = request.headers.get("authorization")
        if authorization:
            scheme, _, credentials = authorization.partition(" ")
            if scheme.lower() == "bearer" and credentials.strip():
                return credentials.strip()
        key = request.headers.get("x-api-key")
        return key.strip() if key and key.strip() else None

    def __repr__(self) -> str:
        return f"<Dialect {self.name}>"


OPENAI = Dialect()


class Encoder(Protocol):
    """Writes a stream of Chat Completions chunks in a client's protocol (SSE bytes).

    The relay writes what `start` returns as soon as the stream begins (before the first chunk,
    however long the upstream takes: a protocol's opening event, or ``b""``), checks the chunks
    (errors, finish reasons, usage) and calls `feed` with each one the client should see,
    `finish` once when the stream completed (it may return an awaitable, e.g. to store the
    answer before its last event goes out), `error` once when it broke (never followed by
    anything that looks complete) and `keepalive` while the upstream is silent."""

    media_type: str

    def start(self) -> bytes: ...

    def feed(self, chunk: Chunk) -> bytes: ...

    def finish(self) -> bytes | Awaitable[bytes]: ...

    def error(self, error: GatewayError) -> bytes: ...

    def keepalive(self) -> bytes: ...


class Conversion:
    """How an operation is served through a pivot when the routed provider has no native
    method for it: the client's body becomes a request for the provider method ``method``
    (Chat Completions, the pivot between protocols, unless a subclass names another one, e.g.
    ``embeddings``), measured by ``meter``; the pivot's answer, or its chunks through an
    `Encoder`, becomes the client's answer. ``request`` refuses what it cannot convert with an
    `InvalidRequestError`; ``reply`` raises an `UpstreamError` (502) for an answer that makes no
    sense. Subclass it and implement the three methods (``encoder`` only for streams)."""

    #: The provider method the converted request goes to.
    method: str = "chat_completions"
    #: The meter of the converted request (see `compatgate.metering`).
    meter: Meter = CHAT_METER

    async def request(self, ctx: RequestContext, body: Body) -> Body:
        raise NotImplementedError

    async def reply(self, ctx: RequestContext, answer: Body) -> Body:
        raise NotImplementedError

    def encoder(self, ctx: RequestContext) -> Encoder:
        raise NotImplementedError

    @staticmethod
    def report(ctx: RequestContext, tools: Sequence[str] = (), ignored: Sequence[str] = ()) -> None:
        """Say what a conversion left out: the tools the upstream cannot run (hosted or server
        tools) in `DROPPED_TOOLS_HEADER` and the ``compatgate`` log at INFO (they change what
        the model can do), fields and items without a pivot form in `IGNORED_HEADER` and the
        log at DEBUG."""
        if tools:
            ctx.response_headers[DROPPED_TOOLS_HEADER] = _header(tools)
            logger.info("compatgate: request %s (%s, model %s): tools the upstream cannot run were left out: %s",
                        ctx.request_id, ctx.endpoint, ctx.model, ", ".join(tools))
        if ignored:
            ctx.response_headers[IGNORED_HEADER] = _header(ignored)
            logger.debug("compatgate: request %s (%s): left out, without an equivalent upstream: %s",
                         ctx.request_id, ctx.endpoint, ", ".join(ignored))


def _header(names: Sequence[str]) -> str:
    """``names`` as one header value: printable ASCII, at most `_HEADER_LIMIT` characters."""
    text = ", ".join(dict.fromkeys(names)).encode("ascii", "replace").decode("ascii")
    text = "".join(c if c.isprintable() else "?" for c in text)
    return text if len(text) <= _HEADER_LIMIT else text[: _HEADER_LIMIT - 3] + "..."


async def json_reader(request: Request, settings: GatewaySettings) -> Body:
    """A JSON object body, at most ``max_request_bytes``."""
    return await read_json(request, settings.max_request_bytes)


async def query_reader(request: Request, settings: GatewaySettings) -> Body:
    """The query string's fields (a WebSocket handshake's ``?model=``)."""
    return dict(request.query_params)


def form_reader(*checked: str) -> Reader:
    """A multipart/form-data body, at most ``max_upload_bytes``, whose ``checked`` fields (those
    the gateway reads) are forwarded exactly as checked (see `compatgate.uploads`)."""
    fields = frozenset(("model", *checked))

    async def read(request: Request, settings: GatewaySettings) -> Body:
        return await read_form(request, settings.max_upload_bytes, fields)

    return read


@dataclass(frozen=True, slots=True)
class Operation:
    """One upstream-bound operation (see the module docstring). ``method`` names the `Provider`
    method that serves it natively (``provider.serves(method)``); ``streams`` whether
    ``stream: true`` is accepted; ``websocket`` for a session (``/realtime``) rather than a
    request; ``http_method`` the method it answers. ``via`` serves it through a pivot for
    providers without ``method``; ``local``, when neither serves it, answers it without any
    upstream (a local estimate): the request still runs the whole pipeline (authentication,
    routing, metering, admission, the usage record), without an upstream call."""

    name: str
    path: str
    method: str
    validate: Validator
    meter: Meter
    read: Reader = json_reader
    streams: bool = False
    dialect: Dialect = OPENAI
    via: Conversion | None = None
    local: Local | None = None
    websocket: bool = False
    http_method: str = "POST"


def _upload_size(body: Body) -> int:
    return int(getattr(body, "size", 0))



#: The OpenAI API's operations, registered by the default plugin ``compatgate.defaults.api``.
#: (``/responses`` is the default plugin ``compatgate.defaults.responses``.)
OPENAI_OPERATIONS: tuple[Operation, ...] = (
    Operation("chat.completions", "/chat/completions", "chat_completions", check_chat, CHAT_METER, streams=True),
    Operation("completions", "/completions", "completions", check_completions,
              TokenMeter("max_tokens", "n_predict", "max_new_tokens", choices=("n", "best_of")), streams=True),
    Operation("embeddings", "/embeddings", "embeddings", check_embeddings, TokenMeter(output=False)),
    Operation("images.generations", "/images/generations", "images_generations", check_model, ImageMeter()),
    Operation("images.edits", "/images/edits", "images_edits", check_model, ImageMeter(),
              read=form_reader("n", "prompt", "size", "quality")),
    Operation("audio.transcriptions", "/audio/transcriptions", "audio_transcriptions", check_model,
              AudioMeter(_upload_size), read=form_reader()),
    Operation("audio.translations", "/audio/translations", "audio_translations", check_model,
              AudioMeter(_upload_size), read=form_reader()),
    Operation("audio.speech", "/audio/speech", "audio_speech", check_speech, SpeechMeter()),
    Operation("moderations", "/moderations", "moderations", check_model, TokenMeter(output=False)),
    Operation("realtime", "/realtime", "realtime", check_model, Meter(), read=query_reader, websocket=True,
              http_method="GET"),
)
