"""Fuzzing every operation of a gateway (issue 14): hypothesis strategies for request bodies
(JSON around each operation's known fields: wrong types, huge, negative, float and boolean
numbers, nested junk, unicode, duplicate keys in the raw text; multipart: fields in any order,
repeated, files first, truncated bodies), odd ``Authorization`` headers, and a fake upstream that
sometimes answers nonsense. `Target.check` sends one generated request and names what is wrong
with the answer (a 500, an error body not in the dialect's shape, the upstream's key echoed).

Used by ``tests/test_fuzz.py`` (a few hundred examples in the normal suite) and
``benchmarks/fuzz.py`` (10,000 and more, with counts).
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx2
import orjson
from hypothesis import strategies as st
from starlette.types import Send

from compatgate.testing import FakeUpstream, Received, ServedGateway, fake_upstream, serve_gateway

UPSTREAM_KEY = "sk-fuzz-upstream-SECRET-31337"
STATIC_KEY = "sk-fuzz-static"
MODELS = ("gpt-4o", "gpt-cheap", "gpt-native", "claude", "gemini-x", "unpriced", "nope", "")

# -- values ---------------------------------------------------------------------------------

NUMBERS = st.one_of(
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([0, -1, 1, 2, 16, 2**31, 2**63 - 1, 2**63, 2**64, 10**30, 1e308, -1e308, 0.5, -0.0,
                     True, False, None, "1", "100", "1e308", "-5", ""]),
)
TEXT = st.text(max_size=40) | st.sampled_from(["", "..", "../../x", "a/b", "é😀", "\x00\n\r", "x" * 300])
JUNK = st.recursive(NUMBERS | TEXT | st.booleans() | st.none(),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
                    max_leaves=12)


def _mostly(valid: st.SearchStrategy[Any], bad: st.SearchStrategy[Any], odds: int = 5) -> st.SearchStrategy[Any]:
    """``valid`` most of the time, ``bad`` once in ``odds`` draws (so that most requests get
    past authentication and validation, and some of everything does not)."""
    return one_in(odds).flatmap(lambda rare: bad if rare else valid)


def one_in(odds: int) -> st.SearchStrategy[bool]:
    """True once in ``odds`` draws (``st.integers`` favours its bounds: not for odds)."""
    return st.sampled_from([False] * (odds - 1) + [True])


def _field(valid: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return _mostly(valid, NUMBERS | JUNK, 8)


COUNT = _mostly(st.integers(1, 2000), NUMBERS, 4)
CONTENT_PART = st.fixed_dictionaries({"type": _field(st.sampled_from(["text", "image_url"])), "text": _field(TEXT)})
MESSAGE = st.fixed_dictionaries({
    "role": _field(st.sampled_from(["user", "system", "assistant", "developer"])),
    "content": _field(TEXT | st.lists(CONTENT_PART, min_size=1, max_size=3))})
INPUT_PART = st.fixed_dictionaries({
    "type": _field(st.sampled_from(["input_text", "output_text", "input_image", "input_file", "refusal", "x"])),
    "text": _field(TEXT)})
INPUT_ITEM = st.fixed_dictionaries({
    "type": _mostly(st.just("message"), st.sampled_from(["function_call", "function_call_output", "reasoning",
                                                          "item_reference"]) | JUNK, 4),
    "role": _field(st.sampled_from(["user", "assistant", "developer", "system"])),
    "content": _field(TEXT | st.lists(INPUT_PART, min_size=1, max_size=3))})
TOOL = st.fixed_dictionaries({"type": _field(st.sampled_from(["function", "web_search"])), "name": _field(TEXT),
                              "parameters": _field(st.just({"type": "object", "properties": {}}))})
CHAT_TOOL = st.fixed_dictionaries({"type": _field(st.just("function")),
                                   "function": _field(st.fixed_dictionaries({"name": TEXT}))})
MODEL = _mostly(st.sampled_from(MODELS[:5]), st.sampled_from(MODELS[5:]) | TEXT, 4)
ANTHROPIC_BLOCK = st.fixed_dictionaries({
    "type": _field(st.sampled_from(["text", "image", "tool_use", "tool_result", "thinking", "x"])),
    "text": _field(TEXT), "id": _field(TEXT), "name": _field(TEXT), "input": _field(st.just({})),
    "tool_use_id": _field(TEXT), "content": _field(TEXT), "thinking": _field(TEXT), "signature": _field(TEXT)})
ANTHROPIC_MESSAGE = st.fixed_dictionaries({
    "role": _field(st.sampled_from(["user", "assistant", "system"])),
    "content": _field(TEXT | st.lists(ANTHROPIC_BLOCK, min_size=1, max_size=3))})
ANTHROPIC_TOOL = st.fixed_dictionaries({"name": _field(TEXT), "input_schema": _field(st.just({"type": "object"})),
                                        "type": _field(st.sampled_from(["custom", "web_search_20250305"]))})
GEMINI_PART = st.fixed_dictionaries({
    "text": _field(TEXT), "thought": _field(st.booleans()), "thoughtSignature": _field(TEXT),
    "functionCall": _field(st.fixed_dictionaries({"name": _field(TEXT), "args": _field(st.just({}))})),
    "functionResponse": _field(st.fixed_dictionaries({"name": _field(TEXT), "response": _field(st.just({}))}))})
GEMINI_CONTENT = st.fixed_dictionaries({"role": _field(st.sampled_from(["user", "model", "x"])),
                                        "parts": _field(st.lists(GEMINI_PART, min_size=1, max_size=3))})
GEMINI_CONTENTS = _field(st.lists(GEMINI_CONTENT, min_size=1, max_size=3))
GEMINI_GENERATE = {
    "contents": GEMINI_CONTENTS,
    "systemInstruction": _field(GEMINI_CONTENT),
    "generationConfig": _field(st.fixed_dictionaries({
        "maxOutputTokens": COUNT, "temperature": _field(st.floats(0, 2)), "candidateCount": COUNT,
        "stopSequences": _field(st.lists(TEXT, max_size=2)),
        "thinkingConfig": _field(st.fixed_dictionaries({"thinkingBudget": COUNT}))})),
    "tools": _field(st.lists(st.fixed_dictionaries({"functionDeclarations": _field(st.lists(
        st.fixed_dictionaries({"name": _field(TEXT), "parameters": _field(st.just({"type": "OBJECT"}))}),
        max_size=2))}), max_size=2)),
}
TEXTS = _field(TEXT | st.lists(TEXT, min_size=1, max_size=3))

#: The fields each JSON operation knows, with a mostly valid value strategy.
JSON_FIELDS: dict[str, dict[str, st.SearchStrategy[Any]]] = {
    "chat.completions": {"messages": _field(st.lists(MESSAGE, min_size=1, max_size=3)), "max_tokens": COUNT,
                         "max_completion_tokens": COUNT, "n": _mostly(st.integers(1, 3), NUMBERS, 4),
                         "stream": _field(st.booleans()),
                         "stream_options": _field(st.fixed_dictionaries({"include_usage": _field(st.booleans())})),
                         "tools": _field(st.lists(CHAT_TOOL, max_size=2)), "temperature": _field(st.floats(0, 2))},
    "completions": {"prompt": TEXTS, "max_tokens": COUNT, "n": _mostly(st.integers(1, 3), NUMBERS, 4),
                    "best_of": _mostly(st.integers(1, 3), NUMBERS, 4), "stream": _field(st.booleans()),
                    "echo": _field(st.booleans())},
    "embeddings": {"input": TEXTS, "encoding_format": _field(st.sampled_from(["float", "base64"])),
                   "dimensions": COUNT},
    "responses": {"input": _field(TEXT | st.lists(INPUT_ITEM, min_size=1, max_size=3)), "instructions": _field(TEXT),
                  "max_output_tokens": COUNT, "max_tokens": COUNT, "tools": _field(st.lists(TOOL, max_size=2)),
                  "previous_response_id": _field(st.sampled_from(["resp_x", "resp_00000000"])),
                  "store": _field(st.booleans()), "stream": _field(st.booleans()),
                  "tool_choice": _field(st.sampled_from(["auto", "none", "required"])),
                  "text": _field(st.just({"format": {"type": "json_object"}})),
                  "reasoning": _field(st.just({"effort": "low"}))},
    "images.generations": {"prompt": _field(TEXT), "n": _mostly(st.integers(1, 3), NUMBERS, 4),
                           "size": _field(st.just("256x256")), "response_format": _field(st.just("b64_json"))},
    "audio.speech": {"input": _field(TEXT), "voice": _field(st.just("alloy")),
                     "response_format": _field(st.just("mp3")), "speed": _field(st.floats(0.25, 4))},
    "moderations": {"input": TEXTS},
    "messages": {"messages": _field(st.lists(ANTHROPIC_MESSAGE, min_size=1, max_size=3)), "max_tokens": COUNT,
                 "system": _field(TEXT | st.lists(st.fixed_dictionaries({"type": _field(st.just("text")),
                                                                          "text": _field(TEXT)}), max_size=2)),
                 "stream": _field(st.booleans()), "stop_sequences": _field(st.lists(TEXT, max_size=2)),
                 "thinking": _field(st.fixed_dictionaries({"type": _field(st.sampled_from(["enabled", "disabled"])),
                                                           "budget_tokens": COUNT})),
                 "tools": _field(st.lists(ANTHROPIC_TOOL, max_size=2)),
                 "tool_choice": _field(st.fixed_dictionaries({"type": _field(st.sampled_from(["auto", "any", "tool"]))})),
                 "temperature": _field(st.floats(0, 1)), "metadata": _field(st.just({"user_id": "u"}))},
    "messages.count_tokens": {"messages": _field(st.lists(ANTHROPIC_MESSAGE, min_size=1, max_size=3)),
                              "system": _field(TEXT)},
    "gemini.generate_content": GEMINI_GENERATE,
    "gemini.stream_generate_content": GEMINI_GENERATE,
    "gemini.count_tokens": {"contents": GEMINI_CONTENTS},
    "gemini.embed_content": {"content": _field(GEMINI_CONTENT), "outputDimensionality": COUNT,
                             "taskType": _field(st.sampled_from(["RETRIEVAL_QUERY", "x"]))},
    "gemini.batch_embed_contents": {"requests": _field(st.lists(st.fixed_dictionaries({
        "content": _field(GEMINI_CONTENT), "model": _field(TEXT)}), max_size=3))},
}
#: Fields a JSON operation cannot do without (present in most generated requests).
REQUIRED = {"chat.completions": ("messages",), "completions": ("prompt",), "embeddings": ("input",),
            "responses": ("input",), "images.generations": ("prompt",), "audio.speech": ("input", "voice"),
            "moderations": ("input",), "messages": ("messages", "max_tokens"), "messages.count_tokens": ("messages",),
            "gemini.generate_content": ("contents",), "gemini.stream_generate_content": ("contents",),
            "gemini.count_tokens": ("contents",), "gemini.embed_content": ("content",),
            "gemini.batch_embed_contents": ("requests",)}
#: The multipart operations: their text fields and the name of their file field.
FORM_FIELDS: dict[str, tuple[tuple[str, ...], str]] = {
    "images.edits": (("prompt", "n", "size", "quality", "response_format"), "image"),
    "audio.transcriptions": (("response_format", "language", "temperature", "timestamp_granularities[]"), "file"),
    "audio.translations": (("response_format", "prompt", "temperature"), "file"),
}
AUTHORIZATION = _mostly(
    st.sampled_from([f"Bearer {STATIC_KEY}", "RICH", "RICH", "LIMITED", "POOR"]),
    st.sampled_from(["Bearer", "Bearer ", "bearer  x", "Basic abc", "", None,
                     "Bearer sk-cg-0000000000000000-" + "a" * 43, "Bearer sk-cg-zz-yy"])
    | st.text(alphabet=st.characters(min_codepoint=1, max_codepoint=255), max_size=60).map(lambda t: "Bearer " + t),
    6,
)


@dataclass
class Generated:
    """One request to send: path, headers, raw body; and how the upstream answers."""

    operation: str
    path: str
    headers: dict[str, str]
    body: bytes
    upstream: str
    seed: int


@st.composite
def requests(draw: st.DrawFn, operations: list[str]) -> Generated:
    operation = draw(st.sampled_from(operations))
    headers: dict[str, str] = {}
    if operation in FORM_FIELDS:
        body, content_type = draw(_form(operation))
    else:
        body, content_type = draw(_json(operation))
    kind = draw(_mostly(st.just("right"), st.sampled_from(["text/plain", "none", "multipart/form-data"]), 10))
    if kind == "right":
        headers["content-type"] = content_type
    elif kind != "none":
        headers["content-type"] = kind
    auth = draw(AUTHORIZATION)
    if auth is not None:  # as an HTTP client can send it: no control characters, no outer spaces
        headers["authorization"] = "".join(c for c in auth if " " <= c != "\x7f").strip()
    upstream = draw(_mostly(st.just("ok"), st.sampled_from(["nonsense", "not_json", "error", "garbage_stream",
                                                             "truncated_stream", "empty"]), 3))
    path = ""
    if operation.startswith("gemini."):  # the model is in the path (and may be anything there)
        path = draw(_mostly(st.sampled_from(MODELS[:5]), st.sampled_from(MODELS[5:]) | TEXT, 4))
    return Generated(operation, path, headers, body, upstream, draw(st.integers(0, 2**32)))


@st.composite
def _json(draw: st.DrawFn, operation: str) -> tuple[bytes, str]:
    known = JSON_FIELDS[operation]
    body: dict[str, Any] = {} if draw(one_in(20)) else {"model": draw(MODEL)}
    for name, value in known.items():
        if name in REQUIRED[operation] and not draw(one_in(10)) or draw(one_in(4)):
            body[name] = draw(value)
    if draw(one_in(5)):
        body.update(draw(st.dictionaries(TEXT, JUNK, max_size=2)))
    shape = draw(_mostly(st.just("plain"), st.sampled_from(["duplicate", "truncated", "not_object", "deep"]), 8))
    text = json.dumps(body, ensure_ascii=draw(st.booleans()))
    if shape == "duplicate" and len(body) > 1:  # the same key twice: which one counts?
        name = draw(st.sampled_from(sorted(body)))
        text = text[:-1] + ", " + json.dumps(name) + ": " + json.dumps(draw(MODEL | JUNK)) + "}"
    elif shape == "truncated":
        text = text[: draw(st.integers(0, max(len(text) - 1, 0)))]
    elif shape == "not_object":
        text = json.dumps(draw(JUNK))
    elif shape == "deep":
        depth = draw(st.integers(100, 3000))
        text = text[:-1] + ', "x": ' + "[" * depth + "]" * depth + "}"
    return text.encode("utf-8", "surrogatepass"), "application/json"


@st.composite
def _form(draw: st.DrawFn, operation: str) -> tuple[bytes, str]:
    names, file_field = FORM_FIELDS[operation]
    parts: list[tuple[str, bytes, str | None]] = []
    for _ in range(draw(_mostly(st.just(1), st.sampled_from([0, 2]), 6))):
        parts.append(("model", str(draw(MODEL)).encode("utf-8", "surrogatepass"), None))
    for name in draw(st.lists(st.sampled_from(names), max_size=4)):
        value = draw(_mostly(st.sampled_from(["1", "2", "json", "text", "en", "a hat", "256x256"]), NUMBERS | TEXT))
        parts.append((name, str(value).encode("utf-8", "surrogatepass"), None))
    for _ in range(draw(_mostly(st.just(1), st.sampled_from([0, 2]), 6))):
        parts.append((file_field, draw(st.binary(max_size=3000)), draw(_mostly(st.just("a.wav"),
                                                                               st.sampled_from(["", 'x"y'])))))
    if draw(one_in(3)):  # any order (files first, as the Node SDK sends them...)
        parts = draw(st.permutations(parts))
    boundary = uuid.UUID(int=draw(st.integers(0, 2**128 - 1))).hex
    body = b""
    for name, value, filename in parts:
        file = f'; filename="{filename}"' if filename is not None else ""
        body += f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"{file}\r\n\r\n'.encode() + value + b"\r\n"
    body += f"--{boundary}--\r\n".encode()
    if draw(one_in(10)):
        body = body[: draw(st.integers(0, len(body)))]
    boundary_header = draw(_mostly(st.just(boundary), st.sampled_from(["other", ""]), 10))
    return body, f"multipart/form-data; boundary={boundary_header}"


# -- the fake upstream's answers ------------------------------------------------------------


def _chunk(text: str, finish: str | None = None) -> bytes:
    data = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
            "choices": [{"index": 0, "delta": {"content": text}, "text": text, "finish_reason": finish}]}
    return b"data: " + orjson.dumps(data) + b"\n\n"


def answer(behaviour: str, request: Received, seed: int) -> tuple[int, str, bytes]:
    """The status, content type and body the fake upstream answers ``request`` with."""
    try:
        sent = request.json if request.headers.get("content-type", "").startswith("application/json") else {}
    except orjson.JSONDecodeError:
        sent = {}
    streamed = isinstance(sent, dict) and sent.get("stream") is True
    if behaviour == "error":
        status = (400, 401, 404, 429, 502, 503, 529)[seed % 7]  # (a 500 relayed would hide ours)
        return status, "application/json", orjson.dumps({"error": {"message": f"bad key {UPSTREAM_KEY}"}})
    if behaviour == "nonsense":
        junk = [{"choices": {"a": 1}}, {"choices": [5]}, [1, 2], {"data": 5}, {"usage": "x"}, "str", 1e308,
                {"choices": [{"message": {"content": 5, "tool_calls": 5}}]}, {"text": 5, "duration": "x"}]
        return 200, "application/json", orjson.dumps(junk[seed % len(junk)])
    if behaviour == "not_json":
        return 200, "application/json", b"<html>oops</html>"
    if behaviour == "empty":
        return 200, ("application/json", "text/event-stream", "text/plain")[seed % 3], b""
    if behaviour == "garbage_stream":
        events = [b"data: {not json}\n\n", b"data: [1,2]\n\n", b'data: {"error": {"message": "' + UPSTREAM_KEY.encode()
                  + b'"}}\n\n', b'data: {"choices": [{"delta": 5}]}\n\n', b"event: error\ndata: {}\n\n", b": x\n\n"]
        return 200, "text/event-stream", _chunk("hi") + events[seed % len(events)] + b"data: [DONE]\n\n"
    if behaviour == "truncated_stream":
        return 200, "text/event-stream", _chunk("hi") + _chunk(" there")
    path = request.path
    if streamed or path.endswith("/responses") and streamed:
        usage = b'data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[],' \
                b'"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}\n\n'
        return 200, "text/event-stream", _chunk("Hi") + _chunk("", "stop") + usage + b"data: [DONE]\n\n"
    if path.endswith(("/chat/completions", "/responses")):
        return 200, "application/json", orjson.dumps({
            "id": "c", "object": "chat.completion", "created": 1, "model": "m",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}})
    if path.endswith("/completions"):
        return 200, "application/json", orjson.dumps({"id": "c", "object": "text_completion", "choices": [
            {"index": 0, "text": "Hi", "finish_reason": "stop"}], "usage": {"prompt_tokens": 1, "completion_tokens": 1}})
    if path.endswith("/embeddings"):
        return 200, "application/json", orjson.dumps({"object": "list", "data": [
            {"object": "embedding", "index": 0, "embedding": [0.1, 0.2]}], "usage": {"prompt_tokens": 1, "total_tokens": 1}})
    if path.endswith(("/images/generations", "/images/edits")):
        return 200, "application/json", orjson.dumps({"created": 1, "data": [{"b64_json": "eA=="}]})
    if path.endswith("/speech"):
        return 200, "audio/mpeg", b"\xff\xfb" * 100
    if path.endswith(("/transcriptions", "/translations")):
        return 200, "application/json", orjson.dumps({"text": "hello", "duration": 1.5})
    return 200, "application/json", orjson.dumps({"id": "m", "results": [{"flagged": False}]})


def handler_for(behaviour: str, seed: int) -> Any:
    async def handle(request: Received, send: Send) -> None:
        status, media_type, body = answer(behaviour, request, seed)
        await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", media_type.encode())]})
        await send({"type": "http.response.body", "body": body})

    return handle


# -- the target -------------------------------------------------------------------------------


def fuzz_config(url: str, tmp: Path) -> dict[str, Any]:
    provider = {"base_url": f"{url}/v1", "api_key": UPSTREAM_KEY, "read_timeout": 5.0, "connect_timeout": 2.0}
    return {
        "gateway": {"api_keys": [STATIC_KEY], "response_store_path": str(tmp / "responses.sqlite3"),
                    "access_log": "off", "max_request_bytes": 1_000_000, "max_upload_bytes": 1_000_000},
        "providers": {"up": {"type": "openai", **provider}, "native": {"type": "openai", "native_responses": True,
                                                                       **provider},
                      "claude": {"type": "anthropic", **provider, "base_url": url},
                      "gemini": {"type": "gemini", **provider, "base_url": url}},
        "models": [{"name": "gpt-4o", "provider": "up"}, {"name": "gpt-cheap", "provider": "up", "max_output_tokens": 50},
                   {"name": "gpt-native", "provider": "native"}, {"name": "unpriced", "provider": "up"},
                   {"name": "claude", "provider": "claude"}, {"name": "gemini-x", "provider": "gemini"}],
        "plugins": {
            "billing": {"database": f"sqlite:///{tmp / 'billing.db'}", "secret": "fuzz-secret-0123456789abcdef",
                        "admin_key": "fuzz-admin-0123456789abcdef", "unpriced": "free", "prices": {
                            "gpt-*": {"input": 1, "output": 2, "per_image": "0.01", "per_audio_second": "0.001",
                                      "per_million_characters": 5, "max_tokens": 500},
                            "claude": {"input": 3, "output": 15}, "gemini-*": {"input": 1, "output": 1}}},
            "ratelimit": {"backend": "memory", "rpm": 10_000_000, "tpm": 10_000_000_000},
        },
    }


@dataclass
class Target:
    """A served gateway (billing on SQLite, rate limits in memory) and its fake upstream."""

    gateway: ServedGateway
    upstream: FakeUpstream
    client: httpx2.Client
    keys: dict[str, str] = field(default_factory=dict)
    statuses: Counter[int] = field(default_factory=Counter)
    problems: list[tuple[str, Generated, str]] = field(default_factory=list)

    @property
    def operations(self) -> list[str]:
        """The HTTP operations of the gateway (the realtime WebSocket is not fuzzed here)."""
        return sorted(name for name, op in self.gateway.gateway.operations.items() if not op.websocket)

    def check(self, generated: Generated) -> str | None:
        """Send ``generated``; what is wrong with the answer, or None."""
        operation = self.gateway.gateway.operations[generated.operation]
        headers = dict(generated.headers)
        auth = headers.get("authorization")
        if auth in self.keys:
            headers["authorization"] = f"Bearer {self.keys[auth]}"
        self.upstream.handler = handler_for(generated.upstream, generated.seed)
        raw = {name: value.encode("latin-1") for name, value in headers.items()}  # header bytes as sent
        path = operation.path
        if "{model:path}" in path:  # a Gemini route: the version and the model in the URL
            model = quote(generated.path, safe="") or "x"
            action = path.rsplit(":", 1)[1]
            path = f"/v1beta/models/{model}:{action}" + ("?alt=sse" if action == "streamGenerateContent" else "")
        with self.client.stream("POST", self.gateway.url + path, content=generated.body,
                                headers=raw) as response:
            content = response.read()
        self.statuses[response.status_code] += 1
        problem = None
        if response.status_code == 500:
            problem = "status 500"
        elif UPSTREAM_KEY.encode() in content:
            problem = "the upstream key in the answer"
        elif response.status_code >= 400:
            problem = _error_shape(operation.dialect.name, content)
        if problem is not None:
            self.problems.append((problem, generated, content[:500].decode("utf-8", "replace")))
        return problem


def _error_shape(dialect: str, content: bytes) -> str | None:
    try:
        data = orjson.loads(content)
    except orjson.JSONDecodeError:
        return f"an error body that is not JSON: {content[:200]!r}"
    error = data.get("error") if isinstance(data, dict) else None
    if not isinstance(error, dict) or not isinstance(error.get("message"), str):
        return f"an error body not in the {dialect} shape: {content[:200]!r}"
    if dialect == "openai" and not {"message", "type", "param", "code"} <= error.keys():
        return f"an OpenAI error without all its fields: {content[:200]!r}"
    if dialect == "anthropic" and data.get("type") != "error":
        return f"an Anthropic error without type 'error': {content[:200]!r}"
    if dialect == "gemini" and not {"code", "message", "status"} <= error.keys():
        return f"a Google error without code, message and status: {content[:200]!r}"
    return None


@contextmanager
def target(tmp: Path) -> Any:
    """A `Target` served while the block runs, with billing keys: ``RICH`` (a budget), ``POOR``
    (nearly nothing left) and ``LIMITED`` (allowed ``gpt-*`` only)."""
    with ExitStack() as stack:
        fake, url = stack.enter_context(fake_upstream())
        gw = stack.enter_context(serve_gateway(fuzz_config(url, tmp), usage_log=False))
        admin = {"authorization": "Bearer fuzz-admin-0123456789abcdef"}
        client = stack.enter_context(httpx2.Client(timeout=30))
        keys = {}
        for name, spec in (("RICH", {"budget": "1000000"}), ("POOR", {"budget": "0.00001"}),
                           ("LIMITED", {"budget": "1000", "allowed_models": ["gpt-*"]})):
            created = client.post(f"{gw.url}/admin/keys", json=spec, headers=admin)
            assert created.status_code == 201, created.text
            keys[name] = created.json()["secret"]
        yield Target(gw, fake, client, keys)
