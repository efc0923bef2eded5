"""A fast fake OpenAI upstream for benchmarks: raw asyncio protocol + httptools (+ uvloop).

Every response is pre-encoded bytes, so the upstream does almost no work per request and
cannot be the bottleneck of a Python gateway. Routes (HTTP/1.1, keep-alive):

  POST /v1/chat/completions   JSON chat.completion, or with "stream": true an SSE body of
                              20 chat.completion.chunk events, a usage chunk
                              ("choices": []) and "data: [DONE]".
  POST /v1/embeddings         a fixed 1536-dimension embedding list.
  GET  /health                200 "ok".

Slow streaming mode (time to first token / per-chunk gap): on the port given with
--slow-port, or on any port with the query string ?delay_ms=N, a streamed chat completion
sends 60 content chunks, N ms apart (5 ms on the slow port), the first one at once.

    python benchmarks/upstream.py --port 9100 --slow-port 9101
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import json
import math
import urllib.parse
from dataclasses import dataclass
from typing import cast

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


def json_response(status: bytes, body: bytes) -> bytes:
    head = (
        b"HTTP/1.1 " + status + b"\r\ncontent-type: application/json\r\n"
        b"content-length: %d\r\nopenai-processing-ms: 1\r\nx-request-id: req_bench\r\n"
        b"connection: keep-alive\r\n\r\n" % len(body)
    )
    return head + body


SSE_HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream; charset=utf-8\r\n"
    b"transfer-encoding: chunked\r\ncache-control: no-cache\r\nx-request-id: req_bench\r\n"
    b"connection: keep-alive\r\n\r\n"
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
# Fast stream: one write holding every event as its own HTTP chunk, then the last chunk.
STREAM_RESPONSE = (
    SSE_HEAD
    + b"".join(http_chunk(e) for e in content_events(FAST_CHUNKS))
    + http_chunk(closing_events(FAST_CHUNKS))
    + b"0\r\n\r\n"
)
SLOW_EVENTS = [http_chunk(e) for e in content_events(SLOW_CHUNKS)]
SLOW_CLOSING = http_chunk(closing_events(SLOW_CHUNKS)) + b"0\r\n\r\n"


@dataclass(frozen=True)
class PortMode:
    delay_ms: float  # 0 = fast stream


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
            self._chat(parsed.query)
        elif method == b"POST" and path == b"/v1/embeddings":
            self.transport.write(EMBEDDINGS_RESPONSE)
        else:
            self.transport.write(NOT_FOUND)

    def _chat(self, query: bytes | None) -> None:
        assert self.transport is not None
        try:
            request = json.loads(b"".join(self.body))
        except ValueError:
            self.transport.write(BAD_REQUEST)
            return
        if not isinstance(request, dict) or request.get("stream") is not True:
            self.transport.write(CHAT_RESPONSE)
            return
        delay_ms = self.mode.delay_ms
        if query:
            values = urllib.parse.parse_qs(query.decode()).get("delay_ms")
            delay_ms = float(values[0]) if values else delay_ms
        if delay_ms <= 0:
            self.transport.write(STREAM_RESPONSE)
        else:
            asyncio.get_running_loop().create_task(self._slow_stream(delay_ms / 1000))

    async def _slow_stream(self, delay_s: float) -> None:
        transport = self.transport
        assert transport is not None
        transport.write(SSE_HEAD + SLOW_EVENTS[0])
        for event in SLOW_EVENTS[1:]:
            await asyncio.sleep(delay_s)
            if transport.is_closing():
                return
            transport.write(event)
        transport.write(SLOW_CLOSING)


async def serve(host: str, port: int, slow_port: int | None, slow_delay_ms: float) -> None:
    loop = asyncio.get_running_loop()
    servers = [
        await loop.create_server(lambda: UpstreamProtocol(PortMode(0)), host, port, backlog=1024)
    ]
    if slow_port is not None:
        slow_mode = PortMode(slow_delay_ms)
        servers.append(
            await loop.create_server(lambda: UpstreamProtocol(slow_mode), host, slow_port)
        )
    print(f"upstream listening on {host}:{port} (slow: {slow_port})", flush=True)
    await asyncio.gather(*(server.serve_forever() for server in servers))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9100)
    parser.add_argument("--slow-port", type=int, default=None)
    parser.add_argument("--slow-delay-ms", type=float, default=5.0)
    args = parser.parse_args()
    server = serve(args.host, args.port, args.slow_port, args.slow_delay_ms)
    with contextlib.suppress(KeyboardInterrupt):
        if importlib.util.find_spec("uvloop") is not None:
            import uvloop

            uvloop.run(server)
        else:
            asyncio.run(server)


if __name__ == "__main__":
    main()
