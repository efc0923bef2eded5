"""The operation-table walk (issue 14): for EVERY operation of a gateway with every plugin of
this repository installed, on SQLite and PostgreSQL, prove that

- a model the key may not use is refused (403) before any upstream call;
- a key whose budget cannot cover the request is refused (429) before any upstream call;
- a client leaving a streamed answer midway is charged its estimate;
- an upstream error carrying the upstream's key is scrubbed from the answer and the ledger.

The operations are read from ``gateway.operations``, not listed here: an operation added without
a request builder in `BUILDERS` FAILS this test, so that no endpoint can be added without being
walked (and one added without metering fails the 429 check: it would cost nothing).
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx2
import orjson
import pytest
from billing_support import (
    MESSAGES,
    PRICES,
    UPSTREAM_KEY,
    Database,
    Served,
    billing_config,
    postgres_database,
)
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from compatgate import AuthenticationError, Gateway, GatewayError, InsufficientQuotaError, PermissionDeniedError
from compatgate.testing import FakeUpstream, serve, serve_gateway

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8
WAV = b"RIFF" + bytes(range(256)) * 16
PRICED = {**PRICES, "gpt-4o*": {**PRICES["gpt-4o*"], "per_image": "0.01", "per_audio_second": "0.001",
                               "per_million_characters": 10}}


@dataclass(frozen=True)
class Request:
    """How to send one minimal valid request of an operation: its path (relative to the
    gateway), and a JSON body or multipart parts (``(name, value, filename)``)."""

    path: str
    json: dict[str, Any] | None = None
    parts: tuple[tuple[str, bytes | str, str | None], ...] = ()
    websocket: bool = False
    stream_path: str | None = None  # where the request streams, for a protocol that says so in the path

    def streaming(self) -> tuple[str, dict[str, Any]]:
        """The path and body of the same request, streamed."""
        if self.stream_path is not None:
            return self.stream_path, dict(self.json or {})
        return self.path, {**(self.json or {}), "stream": True}

    def send(self, url: str, key: str, *, stream: bool = False) -> httpx2.Response:
        headers = {"authorization": f"Bearer {key}"}
        if self.parts:
            boundary = uuid.uuid4().hex
            body = b"".join(
                _part_head(boundary, name, filename) + (value.encode() if isinstance(value, str) else value) + b"\r\n"
                for name, value, filename in self.parts
            ) + f"--{boundary}--\r\n".encode()
            headers["content-type"] = f"multipart/form-data; boundary={boundary}"
            return httpx2.post(url + self.path, content=body, headers=headers, timeout=20)
        body = {**(self.json or {}), **({"stream": True} if stream else {})}
        return httpx2.post(url + self.path, json=body, headers=headers, timeout=20)


def _part_head(boundary: str, name: str, filename: str | None) -> bytes:
    file = f'; filename="{filename}"' if filename else ""
    return f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"{file}\r\n\r\n'.encode()


def _json(path: str, **fields: Any) -> Callable[[str], Request]:
    return lambda model: Request(path, {"model": model, **fields})


def _form(path: str, *parts: tuple[str, bytes | str, str | None]) -> Callable[[str], Request]:
    return lambda model: Request(path, parts=(("model", model, None), *parts))


def _gemini(action: str, **fields: Any) -> Callable[[str], Request]:
    """A Gemini request: the model is in the path, the stream in the action."""

    def build(model: str) -> Request:
        streamed = f"/v1beta/models/{model}:streamGenerateContent?alt=sse" if action.endswith("enerateContent") else None
        return Request(f"/v1beta/models/{model}:{action}", fields, stream_path=streamed)

    return build


GEMINI_CONTENTS = [{"role": "user", "parts": [{"text": "Say something."}]}]
ANTHROPIC_MESSAGES = [{"role": "user", "content": "Say something."}]


#: A minimal valid request of each operation, by operation name (``ctx.endpoint``), for a model.
BUILDERS: dict[str, Callable[[str], Request]] = {
    "chat.completions": _json("/chat/completions", messages=MESSAGES),
    "completions": _json("/completions", prompt="Say something."),
    "embeddings": _json("/embeddings", input="Say something."),
    "responses": _json("/responses", input="Say something."),
    "images.generations": _json("/images/generations", prompt="a cat"),
    "images.edits": _form("/images/edits", ("prompt", "a hat", None), ("image", PNG, "cat.png")),
    "audio.transcriptions": _form("/audio/transcriptions", ("file", WAV, "a.wav")),
    "audio.translations": _form("/audio/translations", ("file", WAV, "a.wav")),
    "audio.speech": _json("/audio/speech", input="Say something.", voice="alloy"),
    "moderations": _json("/moderations", input="Say something."),
    "realtime": lambda model: Request(f"/realtime?model={model}", websocket=True),
    "messages": _json("/messages", max_tokens=100, messages=ANTHROPIC_MESSAGES),
    "messages.count_tokens": _json("/messages/count_tokens", messages=ANTHROPIC_MESSAGES),
    "gemini.generate_content": _gemini("generateContent", contents=GEMINI_CONTENTS),
    "gemini.stream_generate_content": _gemini("streamGenerateContent", contents=GEMINI_CONTENTS),
    "gemini.count_tokens": _gemini("countTokens", contents=GEMINI_CONTENTS),
    "gemini.embed_content": _gemini("embedContent", content={"parts": [{"text": "Say something."}]}),
    "gemini.batch_embed_contents": _gemini("batchEmbedContents", requests=[
        {"content": {"parts": [{"text": "Say something."}]}}]),
}

#: Operations that cost nothing by design (they generate nothing: counting tokens is free at
#: every provider), so a key without money may use them; they are recorded at a cost of 0.
FREE = frozenset({"messages.count_tokens", "gemini.count_tokens"})


def _status(gw: Served, operation: str, error: type[GatewayError]) -> int:
    """The status the operation's dialect answers ``error`` with (Anthropic's clients get 402
    ``billing_error`` for an empty budget, OpenAI's and Gemini's 429)."""
    return gw.gateway.operations[operation].dialect.error(error("x"))[0]


def _operations() -> tuple[list[str], list[str], list[str]]:
    """Every operation of a gateway with every installed plugin (entry points), billing on; those
    whose upstream error reaches the client: not the realtime handshake (an upstream refuses it
    with a status line, which carries no text), not a free operation the gateway can answer
    itself (an estimate, for an upstream without the operation); and those that stream (the
    abort of one that does not cancels its call: tested in the core)."""
    with tempfile.TemporaryDirectory() as tmp:
        config = billing_config("http://127.0.0.1:9", Database(f"sqlite:///{tmp}/walk.db"), prices=PRICED)
        operations = Gateway(config).operations
    relayed = [name for name, operation in operations.items()
               if name != "realtime" and not (name in FREE and operation.local is not None)]
    streaming = [name for name, operation in operations.items() if operation.streams]
    return sorted(operations), sorted(relayed), sorted(streaming)


OPERATIONS, RELAYED_ERRORS, STREAMING = _operations()


class Upstream:
    """The fake HTTP upstream and, on the same port, a realtime WebSocket upstream that answers
    each ``response.create`` and notes what it received."""

    def __init__(self) -> None:
        self.http = FakeUpstream()
        self.events: list[dict[str, Any]] = []
        self.sessions = 0
        self.closed = threading.Event()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "websocket":
            await self.http(scope, receive, send)
            return
        self.sessions += 1
        await receive()
        await send({"type": "websocket.accept"})
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                self.closed.set()
                return
            event = json.loads(message["text"])
            self.events.append(event)
            if event["type"] == "response.create":
                usage = {"input_tokens": 5, "output_tokens": 5, "total_tokens": 10}
                await send({"type": "websocket.send", "text": json.dumps(
                    {"type": "response.done", "response": {"id": "r", "status": "completed", "usage": usage}})})

    def reset(self) -> None:
        self.http.handler = None
        self.http.received.clear()
        self.http.hung_up.clear()
        self.events.clear()
        self.sessions = 0
        self.closed.clear()

    @property
    def calls(self) -> int:
        return len(self.http.received) + sum(e["type"] == "response.create" for e in self.events)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def walk(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple]:
    """One gateway (every installed plugin, billing on the parametrised database) and its
    upstream, for the whole module."""
    if request.param == "sqlite":
        databases: Iterator[Database] = iter([Database(f"sqlite:///{tmp_path_factory.mktemp('walk')}/b.db")])
    else:
        databases = postgres_database(request.getfixturevalue("postgres_url"))
    db = next(databases)
    upstream = Upstream()
    try:
        with serve(upstream) as url:
            config = billing_config(url, db, prices=PRICED)
            with serve_gateway(config, usage_log=False, served=Served) as gw:
                yield gw, upstream, db
    finally:
        for _ in databases:  # drops the PostgreSQL schema
            pass


@pytest.fixture
def env(walk: tuple) -> tuple[Served, Upstream, Database]:
    gw, upstream, db = walk
    upstream.reset()
    return gw, upstream, db


def _request(operation: str, model: str) -> Request:
    builder = BUILDERS.get(operation)
    assert builder is not None, (
        f"the operation {operation!r} has no request builder in test_operation_walk.BUILDERS: every "
        "operation must be walked (403 before the upstream, 429 before the upstream, abort charged, "
        "secrets scrubbed)")
    return builder(model)


def _realtime(gw: Served, request: Request, key: str, create: bool) -> dict[str, Any]:
    """Open a realtime session (sending a ``response.create`` when ``create``) and return the
    error event that ended it; the close code must be 1008."""
    url = gw.url.replace("http://", "ws://") + request.path
    with connect(url, additional_headers={"Authorization": f"Bearer {key}"}) as socket:
        if create:
            socket.send(json.dumps({"type": "response.create"}))
        event = json.loads(socket.recv(timeout=5))
        with pytest.raises(ConnectionClosed) as closed:
            socket.recv(timeout=5)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
    assert event["type"] == "error", event
    return event["error"]


@pytest.mark.parametrize("operation", OPERATIONS)
def test_a_model_the_key_may_not_use_is_403_before_any_upstream_call(env, operation):
    gw, upstream, _ = env
    _, key = gw.create_key(allowed_models=["gpt-4o"], budget="10")
    request = _request(operation, "gpt-4o-mini")
    if request.websocket:
        assert _realtime(gw, request, key, create=False)["code"] == "model_not_allowed"
        assert upstream.sessions == 0
    else:
        response = request.send(gw.url, key)
        assert response.status_code == _status(gw, operation, PermissionDeniedError) == 403, response.text
    assert upstream.calls == 0


@pytest.mark.parametrize("operation", OPERATIONS)
def test_a_budget_that_cannot_cover_the_request_is_429_before_any_upstream_call(env, operation):
    gw, upstream, db = env
    _, key = gw.create_key(budget="0")
    request = _request(operation, "gpt-4o")
    if operation in FREE:  # served, and recorded at no cost
        response = request.send(gw.url, key)
        assert response.status_code == 200, response.text
        status, cost, _, _ = _ledger_row(db, response.headers["x-request-id"])
        assert (status, cost) == ("ok", 0)
        return
    if request.websocket:  # the session opens; its first response is what costs
        assert _realtime(gw, request, key, create=True)["code"] == "insufficient_quota"
    else:
        response = request.send(gw.url, key)
        refused = _status(gw, operation, InsufficientQuotaError)
        assert response.status_code == refused, f"{operation} was not metered: {response.status_code} {response.text}"
    assert upstream.calls == 0, f"{operation} reached the upstream on a key with no money"


def _chat_stream(upstream: Upstream) -> Callable[..., Any]:
    """A chat (or legacy completions) stream that writes for a long while, stopping when the
    gateway hangs up."""

    async def handler(received: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]})
        legacy = "prompt" in received.json
        for _ in range(200):
            choice = ({"index": 0, "text": "word " * 10, "finish_reason": None} if legacy else
                      {"index": 0, "delta": {"content": "word " * 10}, "finish_reason": None})
            data = {"id": "x", "object": "chat.completion.chunk", "created": 1, "model": "m", "choices": [choice]}
            await send({"type": "http.response.body", "body": b"data: " + orjson.dumps(data) + b"\n\n",
                        "more_body": True})
            await asyncio.sleep(0.02)
            if upstream.http.hung_up.is_set():
                return
        await send({"type": "http.response.body", "body": b""})

    return handler


@pytest.mark.parametrize("operation", STREAMING)
def test_a_client_leaving_a_stream_is_charged_its_estimate(env, operation):
    gw, upstream, db = env
    _, key = gw.create_key(budget="10")
    upstream.http.handler = _chat_stream(upstream)
    path, body = _request(operation, "gpt-4o").streaming()
    with httpx2.stream("POST", gw.url + path, json=body, headers={"authorization": f"Bearer {key}"},
                       timeout=20) as response:
        assert response.status_code == 200, response.read()
        request_id = response.headers["x-request-id"]
        for index, _ in enumerate(response.iter_lines()):
            if index > 12:
                break
    assert upstream.http.hung_up.wait(5), "the upstream kept streaming after the client left"
    row = _ledger_row(db, request_id)
    status, cost, estimated, completion = row
    assert status == "aborted" and estimated and completion > 0 and cost > 0, row


@pytest.mark.parametrize("operation", RELAYED_ERRORS)
def test_an_upstream_error_with_the_upstream_key_is_scrubbed(env, operation):
    gw, upstream, db = env
    _, key = gw.create_key(budget="10")
    request = _request(operation, "gpt-4o")
    upstream.http.handler = upstream.http.json_reply(
        {"error": {"message": f"Incorrect API key provided: {UPSTREAM_KEY}", "type": "invalid_request_error",
                   "code": "invalid_api_key"}}, status=401)
    response = request.send(gw.url, key)
    assert response.status_code == _status(gw, operation, AuthenticationError) == 401, response.text
    assert UPSTREAM_KEY not in response.text and UPSTREAM_KEY not in str(response.headers)
    assert len(upstream.http.received) == 1
    request_id = response.headers["x-request-id"]
    _ledger_row(db, request_id)
    rows = db.fetch("SELECT error FROM billing_usage WHERE request_id = $1", request_id)
    assert rows and rows[0][0] and "***" in rows[0][0] and UPSTREAM_KEY not in rows[0][0]


def _ledger_row(db: Database, request_id: str, timeout: float = 10.0) -> tuple[Any, ...]:
    sql = "SELECT status, cost_micro, estimated, completion_tokens FROM billing_usage WHERE request_id = $1"
    deadline = time.monotonic() + timeout
    while True:
        rows = db.fetch(sql, request_id)
        if rows or time.monotonic() > deadline:
            assert rows, f"no ledger row for {request_id}"
            return rows[0]
        time.sleep(0.05)


def test_every_operation_has_a_builder():
    """The walk's own guard, as one test: the operations without a request builder."""
    missing = sorted(set(OPERATIONS) - set(BUILDERS))
    assert not missing, f"operations without a request builder in test_operation_walk.BUILDERS: {missing}"
