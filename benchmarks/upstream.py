"""A fast fake OpenAI and Anthropic upstream for benchmarks: raw asyncio + httptools (+ uvloop).

Every response is pre-encoded bytes, so the upstream does almost no work per request and
cannot be the bottleneck of a Python gateway. Routes (HTTP/1.1, keep-alive):

  POST /v1/chat/completions   JSON chat.completion, or with "stream": true an SSE body of
                              20 chat.completion.chunk events, a usage chunk
                              ("choices": []) and "data: [DONE]".
  POST /v1/messages           Anthropic Messages API (shapes of the real recordings, see
                              _anthropic.py): a JSON Message, or with "stream": true
                              message_start, content_block_start, ping, 20 text_delta
                              content_block_deltas, content_block_stop, message_delta,
                              message_stop.
  POST /v1/embeddings         a fixed 1536-dimension embedding list.
  GET  /health                200 "ok".

Slow streaming mode (time to first token / per-chunk gap): on the port given with
--slow-port, or on any port with the query string ?delay_ms=N, a stream sends 60 content
events N ms apart (5 ms on the slow port), the first one at once with the opening events.

Hold mode (memory per open stream): on the port given with --hold-port, a stream sends its
opening events and first content event, then nothing until the client goes away.

    python benchmarks/upstream.py --port 9100 --slow-port 9101 --hold-port 9102
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import importlib.util
import json
import math
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

import _anthropic
import httptools

CREATED = 1732233600
CHAT_ID = "chatcmpl-AV3bench0000000000000000001"
CHAT_MODEL = "gpt-4o-2024-08-06"
FINGERPRINT = "fp_831e067d82"
FAST_CHUNKS = 20
SLOW_CHUNKS = 60
EMBEDDING_DIMS = 1536
TOKENS = ["Latency", " hides", " in", " every", " hop", ",", " bytes", " rush", " through", ". "]


def _dumps(obj: object) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def _usage(completion_tokens: int) -> dict[str, object]:
    return {
        "prompt_tokens": 24,
        "completion_tokens": completion_tokens,
        "total_tokens": 24 + completion_tokens,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def _token(i: int) -> str:
    return TOKENS[i % len(TOKENS)]


def chat_completion_body() -> bytes:
    content = "".join(_token(i) for i in range(FAST_CHUNKS))
    return _dumps(
        {
            "id": CHAT_ID,
            "object": "chat.completion",
            "created": CREATED,
            "model": CHAT_MODEL,
            "choices": [
                {
                    "index": 0,
                    "message": {
                        "role": "assistant",
                        "content": content,
                        "refusal": None,
                        "annotations": [],
                    },
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": _usage(FAST_CHUNKS),
            "service_tier": "default",
            "system_fingerprint": FINGERPRINT,
        }
    )


def _chunk(choices: list[dict[str, object]], usage: dict[str, object] | None) -> bytes:
    event = {
        "id": CHAT_ID,
        "object": "chat.completion.chunk",
        "created": CREATED,
        "model": CHAT_MODEL,
        "service_tier": "default",
        "system_fingerprint": FINGERPRINT,
        "choices": choices,
        "usage": usage,
    }
    return b"data: " + _dumps(event) + b"\n\n"


def content_events(count: int) -> list[bytes]:
    """`count` content chunks; the first also carries the assistant role (as OpenAI does)."""
    events = []
    for i in range(count):
        delta: dict[str, object] = {"content": _token(i)}
        if i == 0:
            delta = {"role": "assistant", "content": _token(i), "refusal": None}
        events.append(
            _chunk([{"index": 0, "delta": delta, "logprobs": None, "finish_reason": None}], None)
        )
    return events


def closing_events(count: int) -> bytes:
    """Finish chunk, usage chunk (choices: []) and the [DONE] sentinel."""
    finish = _chunk([{"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}], None)
    return finish + _chunk([], _usage(count)) + b"data: [DONE]\n\n"


def embeddings_body() -> bytes:
    vector = [round(math.sin(i * 0.37) * 0.05, 8) for i in range(EMBEDDING_DIMS)]
    return _dumps(
        {
            "object": "list",
            "data": [{"object": "embedding", "index": 0, "embedding": vector}],
            "model": "text-embedding-3-small",
            "usage": {"prompt_tokens": 10, "total_tokens": 10},
        }
    )


def http_chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


OPENAI_HEADERS = b"openai-processing-ms: 1\r\nx-request-id: req_bench\r\n"
ANTHROPIC_HEADERS = b"request-id: req_011BenchUpstream0000000001\r\n"


def json_response(status: bytes, body: bytes, headers: bytes = OPENAI_HEADERS) -> bytes:
    head = (
        b"HTTP/1.1 " + status + b"\r\ncontent-type: application/json\r\n"
        b"content-length: %d\r\n%sconnection: keep-alive\r\n\r\n" % (len(body), headers)
    )
    return head + body


def sse_head(headers: bytes) -> bytes:
    return (
        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream; charset=utf-8\r\n"
        b"transfer-encoding: chunked\r\ncache-control: no-cache\r\n%s"
        b"connection: keep-alive\r\n\r\n" % headers
    )


CHAT_RESPONSE = json_response(b"200 OK", chat_completion_body())
EMBEDDINGS_RESPONSE = json_response(b"200 OK", embeddings_body())
NOT_FOUND = json_response(
    b"404 Not Found", _dumps({"error": {"message": "not found", "type": "invalid_request_error"}})
)
BAD_REQUEST = json_response(
    b"400 Bad Request", _dumps({"error": {"message": "bad json", "type": "invalid_request_error"}})
)
HEALTH = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: keep-alive\r\n\r\nok"


Events = Callable[[int], list[bytes]]  # count -> SSE events


def _chunks(events: list[bytes]) -> bytes:
    return b"".join(http_chunk(e) for e in events)


@dataclass(frozen=True)
class StreamWire:
    """One streamed answer, pre-encoded as HTTP chunks (one SSE event each)."""

    fast: bytes  # the fast stream in one write: FAST_CHUNKS content events, closing, last chunk
    first: bytes  # slow and hold modes: head, opening events and the first content event
    rest: list[bytes]  # slow mode: the other SLOW_CHUNKS - 1 content events, one per delay
    closing: bytes  # slow mode: the closing events and the last chunk

    @classmethod
    def build(
        cls, head: bytes, opening: list[bytes], content: Events, closing: Events
    ) -> StreamWire:
        slow = [http_chunk(e) for e in content(SLOW_CHUNKS)]
        return cls(
            fast=head
            + _chunks([*opening, *content(FAST_CHUNKS), *closing(FAST_CHUNKS)])
            + b"0\r\n\r\n",
            first=head + _chunks(opening) + slow[0],
            rest=slow[1:],
            closing=_chunks(closing(SLOW_CHUNKS)) + b"0\r\n\r\n",
        )


def _texts(count: int) -> list[str]:
    return [_token(i) for i in range(count)]


CHAT_STREAM = StreamWire.build(
    sse_head(OPENAI_HEADERS), [], content_events, lambda n: [closing_events(n)]
)
MESSAGES_STREAM = StreamWire.build(
    sse_head(ANTHROPIC_HEADERS),
    _anthropic.opening_events(),
    lambda n: _anthropic.delta_events(_texts(n)),
    _anthropic.closing_events,
)
MESSAGES_RESPONSE = json_response(
    b"200 OK", _anthropic.message_body(_texts(FAST_CHUNKS)), ANTHROPIC_HEADERS
)


@dataclass(frozen=True)
class PortMode:
    delay_ms: float  # 0 = fast stream
    hold: bool = False  # streams send their first content event, then nothing


class UpstreamProtocol(asyncio.Protocol):
    def __init__(self, mode: PortMode) -> None:
        self.mode = mode
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.url = b""
        self.body: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            if self.transport is not None:
                self.transport.write(BAD_REQUEST)
                self.transport.close()

    def on_message_begin(self) -> None:
        self.url = b""
        self.body = []

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        assert self.transport is not None
        parsed = httptools.parse_url(self.url)
        path = parsed.path
        method = self.parser.get_method()
        if method == b"GET" and path == b"/health":
            self.transport.write(HEALTH)
        elif method == b"POST" and path == b"/v1/chat/completions":
            self._answer(parsed.query, CHAT_RESPONSE, CHAT_STREAM)
        elif method == b"POST" and path == b"/v1/messages":
            self._answer(parsed.query, MESSAGES_RESPONSE, MESSAGES_STREAM)
        elif method == b"POST" and path == b"/v1/embeddings":
            self.transport.write(EMBEDDINGS_RESPONSE)
        else:
            self.transport.write(NOT_FOUND)

    def _answer(self, query: bytes | None, whole: bytes, wire: StreamWire) -> None:
        assert self.transport is not None
        try:
            request = json.loads(b"".join(self.body))
        except ValueError:
            self.transport.write(BAD_REQUEST)
            return
        if not isinstance(request, dict) or request.get("stream") is not True:
            self.transport.write(whole)
            return
        if self.mode.hold:
            self.transport.write(wire.first)  # then nothing, until the client goes away
            return
        delay_ms = self.mode.delay_ms
        if query:
            values = urllib.parse.parse_qs(query.decode()).get("delay_ms")
            delay_ms = float(values[0]) if values else delay_ms
        if delay_ms <= 0:
            self.transport.write(wire.fast)
        else:
            asyncio.get_running_loop().create_task(self._slow_stream(wire, delay_ms / 1000))

    async def _slow_stream(self, wire: StreamWire, delay_s: float) -> None:
        transport = self.transport
        assert transport is not None
        transport.write(wire.first)
        for event in wire.rest:
            await asyncio.sleep(delay_s)
            if transport.is_closing():
                return
            transport.write(event)
        transport.write(wire.closing)


async def serve(host: str, port: int, modes: dict[int, PortMode]) -> None:
    """Serve fast mode on `port` and each other mode on its own port."""
    loop = asyncio.get_running_loop()
    servers = []
    for number, mode in {port: PortMode(0), **modes}.items():
        factory = functools.partial(UpstreamProtocol, mode)
        server = await loop.create_server(factory, host, number, backlog=4096)
        servers.append(server)
    print(f"upstream listening on {host}:{port} (others: {sorted(modes)})", flush=True)
    await asyncio.gather(*(server.serve_forever() for server in servers))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9100)
    parser.add_argument("--slow-port", type=int, default=None)
    parser.add_argument("--slow-delay-ms", type=float, default=5.0)
    parser.add_argument("--hold-port", type=int, default=None)
    args = parser.parse_args()
    modes = {}
    if args.slow_port is not None:
        modes[args.slow_port] = PortMode(args.slow_delay_ms)
    if args.hold_port is not None:
        modes[args.hold_port] = PortMode(0, hold=True)
    server = serve(args.host, args.port, modes)
    with contextlib.suppress(KeyboardInterrupt):
        if importlib.util.find_spec("uvloop") is not None:
            import uvloop

            uvloop.run(server)
        else:
            asyncio.run(server)


if __name__ == "__main__":
    main()
