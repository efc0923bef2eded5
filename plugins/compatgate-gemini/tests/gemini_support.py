"""What the compatgate-gemini tests share: the recorded traces, a served gateway, helpers."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import orjson

from compatgate import Gateway
from compatgate.testing import FakeUpstream, ServedGateway, UsageLog, serve
from starlette.types import Receive, Scope, Send

SHARED = Path(os.environ.get("COMPATGATE_SHARED", Path(__file__).resolve().parents[3].parent / "shared"))
TRACES = SHARED / "fixtures" / "gemini"
SPEC = SHARED / "spec" / "openai-openapi.yaml"
UPSTREAM_KEY = "AIza-gemini-SECRET-0123456789"
CLIENT_KEY = "sk-client-gemini"
SSE_SPLIT = b"\r\n\r\n"  # Gemini separates its events with CRLF CRLF
USER = [{"role": "user", "content": "Hi"}]


@dataclass(frozen=True)
class Exchange:
    """One recorded request and its response."""

    method: str
    url: str
    request_body: bytes
    status: int
    response_headers: dict[str, str]
    response_body: bytes

    @property
    def request(self) -> dict[str, Any]:
        return orjson.loads(self.request_body)

    @property
    def streamed(self) -> bool:
        return self.response_headers.get("content-type", "").startswith("text/event-stream")

    def events(self) -> list[dict[str, Any]]:
        """The JSON events of a streamed response."""
        return [orjson.loads(block[6:]) for block in self.response_body.split(SSE_SPLIT) if block.startswith(b"data: ")]


def read_trace(name: str) -> list[Exchange]:
    """The exchanges of an httprr trace: a ``httprr trace v1`` line, then for each exchange a
    ``<request bytes> <response bytes>`` line and the raw HTTP request and response."""
    data = (TRACES / name).read_bytes()
    head, _, rest = data.partition(b"\n")
    assert head == b"httprr trace v1", name
    exchanges = []
    while rest:
        line, _, rest = rest.partition(b"\n")
        request_size, response_size = map(int, line.split())
        request, response = rest[:request_size], rest[request_size:request_size + response_size]
        rest = rest[request_size + response_size:]
        request_head, _, request_body = request.partition(b"\r\n\r\n")
        method, url, _ = request_head.split(b"\r\n", 1)[0].decode().split(" ", 2)
        response_head, _, response_body = response.partition(b"\r\n\r\n")
        status_line, *header_lines = response_head.decode().split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in header_lines)}
        exchanges.append(Exchange(method, url, request_body, int(status_line.split()[1]), headers, response_body))
    return exchanges


TRACE_NAMES = sorted(p.name for p in TRACES.glob("*.httprr"))


def gemini_config(upstream_url: str, *, models: list[dict[str, Any]] | None = None, **options: Any) -> dict[str, Any]:
    """A gateway with one Gemini provider at ``upstream_url`` (``options`` go to its table)."""
    provider = {"type": "gemini", "base_url": upstream_url, "api_key": UPSTREAM_KEY,
                "read_timeout": 5.0, "connect_timeout": 2.0, **options}
    return {
        "gateway": {"api_keys": [CLIENT_KEY]},
        "providers": {"google": provider},
        "models": models if models is not None else [
            {"name": "gemini-2.5-flash", "provider": "google"},
            {"name": "gemini-3-flash-preview", "provider": "google"},
            {"name": "flash", "provider": "google", "upstream_model": "gemini-2.5-flash"},
            {"name": "embed", "provider": "google", "upstream_model": "gemini-embedding-001"},
        ],
    }


class Counting:
    """The gateway as an ASGI app that counts the API requests it started."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.started = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].endswith(API_PATHS):
            self.started += 1
        await self.gateway(scope, receive, send)


API_PATHS = ("/chat/completions", "/completions", "/embeddings")


class Served(ServedGateway):
    """A gateway served on loopback (as a `Counting` app), with its usage log and clients."""

    default_key = CLIENT_KEY

    def __init__(self, app: Counting, url: str) -> None:
        super().__init__(app.gateway, url)
        self.app = app

    def reset(self) -> None:
        """Forget the usage records, once every request started so far has recorded its own
        (a stream records after its last byte, possibly after its client is done)."""
        self.records(self.app.started)
        self.usage.records.clear()
        self.app.started = 0

    def post(self, path: str, body: dict[str, Any]) -> httpx2.Response:
        return httpx2.post(f"{self.url}{path}", json=body, timeout=10, headers={"authorization": f"Bearer {CLIENT_KEY}"})

    def stream(self, body: dict[str, Any]) -> tuple[httpx2.Response, list[bytes]]:
        """POST a streaming chat request; the response and the raw SSE data payloads."""
        with httpx2.stream("POST", f"{self.url}/chat/completions", json={**body, "stream": True}, timeout=10,
                           headers={"authorization": f"Bearer {CLIENT_KEY}"}) as response:
            payloads = [line[6:].encode() for line in response.iter_lines() if line.startswith("data: ")]
        return response, payloads


@contextmanager
def serve_counting(config: dict[str, Any]) -> Iterator[Served]:
    """A gateway with a usage log, served on loopback as a `Counting` app."""
    app = Counting(Gateway(config, plugins=(UsageLog,)))
    with serve(app) as url:
        yield Served(app, url)


def chunks_of(payloads: list[bytes]) -> list[dict[str, Any]]:
    """The JSON chunks of a relayed stream that ended with ``[DONE]``."""
    assert payloads and payloads[-1] == b"[DONE]", payloads[-1:] if payloads else payloads
    return [orjson.loads(p) for p in payloads[:-1]]


def gemini_response(parts: list[dict[str, Any]], finish: str | None = "STOP", **extra: Any) -> dict[str, Any]:
    """A one-candidate Gemini response (or stream event) with ``parts``."""
    candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}, "index": 0}
    if finish is not None:
        candidate["finishReason"] = finish
    return {"candidates": [candidate], "modelVersion": "gemini-2.5-flash", "responseId": "resp-1", **extra}


def sse(*events: dict[str, Any]) -> bytes:
    """Gemini's framing of ``events``."""
    return b"".join(b"data: " + orjson.dumps(event) + SSE_SPLIT for event in events)


def model_of(exchange: Exchange) -> str:
    return exchange.url.split("/models/", 1)[1].split(":", 1)[0]


def openai_request(exchange: Exchange) -> dict[str, Any]:
    """The OpenAI chat request a client sends for a recorded Gemini request: the same
    conversation, tool call ids being Gemini's or, where Gemini gave none, shaped like the ones
    the gateway generates (``call_`` and 24 hex digits), which it never sends upstream."""
    recorded = exchange.request
    messages: list[dict[str, Any]] = []
    system = recorded.get("systemInstruction")
    if system:
        messages.append({"role": "system", "content": "".join(p["text"] for p in system["parts"])})
    generated = 0
    pending: list[str] = []
    for content in recorded["contents"]:
        if content["role"] == "model":
            text = "".join(p["text"] for p in content["parts"] if "text" in p)
            message: dict[str, Any] = {"role": "assistant", "content": text or None}
            for part in content["parts"]:
                if "functionCall" not in part:
                    continue
                call = part["functionCall"]
                call_id = call.get("id") or f"call_{generated:024x}"
                generated += 1
                tool_call: dict[str, Any] = {"id": call_id, "type": "function", "function": {
                    "name": call["name"], "arguments": orjson.dumps(call["args"]).decode()}}
                if "thoughtSignature" in part:
                    tool_call["extra_content"] = {"google": {"thought_signature": part["thoughtSignature"]}}
                message.setdefault("tool_calls", []).append(tool_call)
                pending.append(call_id)
            messages.append(message)
            continue
        for part in content["parts"]:
            if "functionResponse" in part:
                answer = part["functionResponse"]
                call_id = answer.get("id") or pending[0]
                pending.remove(call_id)
                messages.append({"role": "tool", "tool_call_id": call_id, "content": orjson.dumps(answer["response"]).decode()})
            else:
                messages.append({"role": "user", "content": part["text"]})
    body: dict[str, Any] = {"model": model_of(exchange), "messages": messages}
    if "temperature" in recorded.get("generationConfig", {}):
        body["temperature"] = recorded["generationConfig"]["temperature"]
    for tool in recorded.get("tools", []):
        for declaration in tool["functionDeclarations"]:
            body.setdefault("tools", []).append({"type": "function", "function": {
                "name": declaration["name"], "description": declaration["description"],
                "parameters": declaration["parametersJsonSchema"]}})
    return body


def expected_upstream_request(exchange: Exchange) -> dict[str, Any]:
    """The recorded request without what an OpenAI request cannot carry: the tools'
    ``responseJsonSchema`` and the (ignored) role of ``systemInstruction``."""
    expected = exchange.request
    expected.get("systemInstruction", {}).pop("role", None)
    for tool in expected.get("tools", []):
        for declaration in tool["functionDeclarations"]:
            declaration.pop("responseJsonSchema", None)
    return expected


@dataclass
class Answer:
    """What a Gemini response says, read straight from the recording."""

    text: str
    reasoning: str
    calls: list[tuple[str, dict[str, Any], str | None, str | None]]  # name, args, id, signature
    finish: str
    usage: dict[str, int]


def recorded_answer(exchange: Exchange) -> Answer:
    events = exchange.events() if exchange.streamed else [orjson.loads(exchange.response_body)]
    parts = [p for e in events for c in e["candidates"] for p in c["content"]["parts"]]
    calls = [(p["functionCall"]["name"], p["functionCall"]["args"], p["functionCall"].get("id"),
              p.get("thoughtSignature")) for p in parts if "functionCall" in p]
    finish = [c["finishReason"] for e in events for c in e["candidates"] if "finishReason" in c][-1]
    meta = events[-1]["usageMetadata"]
    return Answer(
        text="".join(p["text"] for p in parts if "text" in p and not p.get("thought")),
        reasoning="".join(p["text"] for p in parts if p.get("thought")),
        calls=calls,
        finish=finish,
        usage={"prompt": meta["promptTokenCount"], "candidates": meta.get("candidatesTokenCount", 0),
               "thoughts": meta.get("thoughtsTokenCount", 0), "total": meta["totalTokenCount"]},
    )


def sent(gw: Served, upstream: FakeUpstream, **body: Any) -> dict[str, Any]:
    """The Gemini request for the chat request ``body`` (which must succeed)."""
    upstream.handler = upstream.json_reply(gemini_response([{"text": "ok"}]))
    response = gw.post("/chat/completions", {"model": "gemini-2.5-flash", "messages": USER, **body})
    assert response.status_code == 200, response.text
    return upstream.received[-1].json


def refused(gw: Served, upstream: FakeUpstream, **body: Any) -> dict[str, Any]:
    """The OpenAI error for ``body``, which must be refused before going upstream."""
    before = len(upstream.received)
    response = gw.post("/chat/completions", {"model": "gemini-2.5-flash", "messages": USER, **body})
    assert response.status_code == 400, response.text
    assert len(upstream.received) == before
    return response.json()["error"]
