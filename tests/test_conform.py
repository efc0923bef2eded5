"""Conformance (`compatgate.conform`): recorded non-conforming answers of real servers (Ollama,
vLLM, llama.cpp server, LM Studio; see tests/fixtures/nonconforming/README.md) come out valid
for the official OpenAPI schema in ``auto`` and ``strict`` mode with their content unchanged,
and OpenAI's own recorded streams come out byte-identical."""

from __future__ import annotations

import asyncio
import base64
import copy
import json
import struct
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from support import FIXTURES, SHARED

from compatgate import Chunk, UpstreamError
from compatgate.conform import (
    ConformError,
    ConformingStream,
    StreamConformer,
    conform_mode,
    conform_reply,
    decode_embedding,
    encode_embedding,
)
from compatgate.exceptions import ConfigError
from compatgate.provider import decode_event
from compatgate.sse import SSEDecoder
from compatgate.testing import OpenAISchema

HERE = Path(__file__).parent / "fixtures" / "nonconforming"
CASES = [
    pytest.param(server, case, id=f"{server}/{case['file']}")
    for server in ("ollama", "vllm", "llamacpp", "lmstudio")
    for case in json.loads((HERE / server / "cases.json").read_text())
]
BODIES = [p for p in CASES if not p.values[1]["stream"]]
STREAMS = [p for p in CASES if p.values[1]["stream"]]
RECORDINGS = sorted((FIXTURES / "openai-sse").glob("*.bin"))
SCHEMA_OF = {"chat.completions": "CreateChatCompletionResponse", "completions": "CreateCompletionResponse",
             "embeddings": "CreateEmbeddingResponse"}


# -- helpers ---------------------------------------------------------------------------------


def _close(node: Any) -> Any:
    """The schema with ``additionalProperties: false`` on every object that lists its
    properties: what a decoder refusing unknown fields accepts."""
    if isinstance(node, list):
        return [_close(item) for item in node]
    if not isinstance(node, dict):
        return node
    closed = {key: _close(value) for key, value in node.items()}
    if "properties" in closed and "additionalProperties" not in closed:
        closed["additionalProperties"] = False
    return closed


@pytest.fixture(scope="session")
def closed_schema() -> OpenAISchema:
    schema = OpenAISchema(SHARED / "spec" / "openai-openapi.yaml")
    schema.components = _close(copy.deepcopy(schema.components))
    return schema


def errors(schema: OpenAISchema, endpoint: str, data: dict[str, Any], *, chunk: bool) -> list[str]:
    """Every way ``data`` fails its schema. Two documented gaps between the spec and the real
    API are tolerated, nothing else: a streamed legacy completion says ``"finish_reason": null``
    until its choice ends (the spec's enum is not nullable), and a base64 embedding is a string
    (the spec only knows float arrays): it is checked as the floats it encodes."""
    if endpoint == "chat.completions" and chunk:
        return schema.errors("CreateChatCompletionStreamResponse", data)
    if endpoint == "embeddings":
        data = copy.deepcopy(data)
        for item in data.get("data", ()):
            if isinstance(item.get("embedding"), str):
                item["embedding"] = _floats(item["embedding"])
    found = schema.errors(SCHEMA_OF[endpoint], data)
    if endpoint == "completions" and chunk:
        nulls = {f"choices/{i}/finish_reason:" for i, c in enumerate(data.get("choices", []))
                 if isinstance(c, dict) and c.get("finish_reason") is None}
        found = [e for e in found if e.split(" ", 1)[0] not in nulls]
    return found


def _floats(encoded: str) -> list[float]:
    raw = base64.b64decode(encoded, validate=True)
    assert len(raw) % 4 == 0
    return list(struct.unpack(f"<{len(raw) // 4}f", raw))


def _f32(values: list[float]) -> list[float]:
    return list(struct.unpack(f"<{len(values)}f", struct.pack(f"<{len(values)}f", *values)))


def payloads(content: bytes) -> list[bytes]:
    return [block[6:] for block in content.split(b"\n\n") if block.startswith(b"data: {")]


def keys_with_values(node: Any, path: str = "") -> set[str]:
    """Paths of every key holding a non-null value (lists by position)."""
    found: set[str] = set()
    if isinstance(node, dict):
        for key, value in node.items():
            if value is not None:
                found.add(f"{path}/{key}")
                found |= keys_with_values(value, f"{path}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found |= keys_with_values(value, f"{path}/{index}")
    return found


class Replay:
    """A `ChunkStream` reading a recorded SSE body the way the OpenAI provider does (events
    decoded up to ``data: [DONE]``, the upstream's bytes kept); ``done`` tells whether
    ``[DONE]`` came. ``closed`` records that the consumer closed it."""

    def __init__(self, content: bytes) -> None:
        self.content = content
        self.done = False
        self.closed = False
        self.sent: list[bytes] = []
        self._chunks = self._read()

    async def _read(self) -> AsyncIterator[Chunk]:
        decoder = SSEDecoder()
        for cut in range(0, len(self.content), 97):  # arbitrary network reads
            events = decoder.feed(self.content[cut:cut + 97])
            for index, event in enumerate(events):
                if event.data == b"[DONE]":
                    self.done = True
                    return
                self.sent.append(event.data)
                yield Chunk(decode_event(event), event.data, index < len(events) - 1)

    def __aiter__(self) -> AsyncIterator[Chunk]:
        return self._chunks

    async def aclose(self) -> None:
        self.closed = True
        await self._chunks.aclose()


def relay(content: bytes, kind: str, mode: str, request: dict[str, Any],
          done: bool = True) -> tuple[list[Chunk], Replay]:
    """What the relay receives from a `ConformingStream` around the recording."""
    upstream = Replay(content)
    conformer = StreamConformer(kind, strict=mode == "strict", request=request, model=request["model"])  # type: ignore[arg-type]
    stream = ConformingStream(upstream, conformer, (lambda: upstream.done) if done else None)

    async def collect() -> list[Chunk]:
        out = [chunk async for chunk in stream]
        await stream.aclose()
        return out

    return asyncio.run(collect()), upstream


def stream_content(chunks: list[dict[str, Any]]) -> tuple[dict[int, str], dict[Any, list[str]], Any]:
    """The text per choice, the tool calls (id, name, arguments) per choice and call index,
    and the usage counts of a stream."""
    text: dict[int, str] = {}
    calls: dict[Any, list[str]] = {}
    usage = None
    for data in chunks:
        if data.get("usage"):
            usage = tuple(data["usage"].get(k) for k in ("prompt_tokens", "completion_tokens", "total_tokens"))
        for choice in data.get("choices") or ():
            index = choice.get("index", 0)
            delta = choice.get("delta") or {}
            text[index] = text.get(index, "") + (delta.get("content") or choice.get("text") or "")
            for call in delta.get("tool_calls") or ():
                slot = calls.setdefault((index, call.get("index")), ["", "", ""])
                function = call.get("function") or {}
                slot[0] += call.get("id") or ""
                slot[1] += function.get("name") or ""
                slot[2] += function.get("arguments") or ""
    return text, calls, usage


def finish_reasons(chunks: list[dict[str, Any]]) -> dict[int, str]:
    return {c.get("index", 0): c["finish_reason"] for d in chunks for c in d.get("choices") or ()
            if c.get("finish_reason")}


# -- non-streamed answers of real servers ----------------------------------------------------


@pytest.mark.parametrize(("server", "case"), BODIES)
def test_recorded_bodies_conform(server: str, case: dict[str, Any], openai_schema: OpenAISchema,
                                 closed_schema: OpenAISchema) -> None:
    raw = (HERE / server / case["file"]).read_bytes()
    endpoint, request = case["endpoint"], case["request"]
    original = orjson.loads(raw)
    # The fixture really is what the case says: non-conforming ones fail the spec (or, for
    # embeddings, are not in the encoding the request asked for).
    wrong = bool(errors(openai_schema, endpoint, original, chunk=False))
    if request.get("encoding_format") == "base64":
        wrong |= any(isinstance(item["embedding"], list) for item in original["data"])
    assert wrong != case["conforming"]

    data = orjson.loads(raw)
    auto = conform_reply(endpoint, data, raw, mode="auto", request=request, model=request["model"])
    if case["conforming"]:
        assert auto is raw  # relayed as the upstream's own bytes
    else:
        assert auto != raw
    fixed = orjson.loads(auto)
    assert fixed == data  # ``data`` was fixed in place: hooks and the relay see what is sent
    assert not errors(openai_schema, endpoint, fixed, chunk=False)
    assert keys_with_values(original) <= keys_with_values(fixed)  # vendor extras kept, nothing lost

    strict = conform_reply(endpoint, orjson.loads(raw), raw, mode="strict", request=request,
                           model=request["model"])
    assert not errors(closed_schema, endpoint, orjson.loads(strict), chunk=False)  # no unknown field

    for out in (fixed, orjson.loads(strict)):
        assert_same_content(endpoint, original, out, request)


def assert_same_content(endpoint: str, original: dict[str, Any], out: dict[str, Any],
                        request: dict[str, Any]) -> None:
    if endpoint == "embeddings":
        for before, after in zip(original["data"], out["data"], strict=True):
            vector = after["embedding"]
            if request.get("encoding_format") == "base64":
                assert isinstance(vector, str) and _floats(vector) == _f32(before["embedding"])
            else:
                assert vector == before["embedding"]
        assert out["usage"]["prompt_tokens"] == original["usage"]["prompt_tokens"]
        return
    assert out["id"] == original["id"] and out["model"] == original["model"]
    for usage_key in ("prompt_tokens", "completion_tokens", "total_tokens"):
        assert out["usage"][usage_key] == original["usage"][usage_key]
    for before, after in zip(original["choices"], out["choices"], strict=True):
        assert after["finish_reason"] == before["finish_reason"]
        if endpoint == "completions":
            assert after["text"] == before["text"]
            continue
        message, old = after["message"], before["message"]
        assert message.get("content") == old.get("content")
        assert [(c["id"], c["function"]["name"], c["function"]["arguments"]) for c in message.get("tool_calls") or ()] \
            == [(c["id"], c["function"]["name"], c["function"]["arguments"]) for c in old.get("tool_calls") or ()]
        if before.get("logprobs"):
            tokens = [(t["token"], t["logprob"]) for t in before["logprobs"]["content"]]
            assert [(t["token"], t["logprob"]) for t in after["logprobs"]["content"]] == tokens


# -- streams of real servers -----------------------------------------------------------------


@pytest.mark.parametrize(("server", "case"), STREAMS)
@pytest.mark.parametrize("mode", ["auto", "strict"])
def test_recorded_streams_conform(server: str, case: dict[str, Any], mode: str, openai_schema: OpenAISchema,
                                  closed_schema: OpenAISchema) -> None:
    content = (HERE / server / case["file"]).read_bytes()
    endpoint, request = case["endpoint"], case["request"]
    kind = "chat" if endpoint == "chat.completions" else "completion"
    originals = [orjson.loads(p) for p in payloads(content)]
    if case["conforming"]:  # the fixture really is what the case says
        assert not [d for d in originals if errors(openai_schema, endpoint, d, chunk=True)]

    if case.get("error"):
        with pytest.raises(ConformError, match=case["error"]) as raised:
            relay(content, kind, mode, request)
        assert raised.value.status_code == 502 and case["error"] in raised.value.to_json().decode()
        return
    chunks, upstream = relay(content, kind, mode, request)
    assert upstream.closed
    if mode == "auto":
        same = len(chunks) == len(upstream.sent) and all(
            chunk.raw is raw for chunk, raw in zip(chunks, upstream.sent, strict=False))
        assert same == case["conforming"]  # the upstream's own bytes, unless something was wrong
    out = [orjson.loads(chunk.raw) for chunk in chunks]  # type: ignore[arg-type]
    assert [chunk.data for chunk in chunks] == out  # what the relay reads is what the client gets
    schema = closed_schema if mode == "strict" else openai_schema
    for data in out:
        assert not errors(schema, endpoint, data, chunk=True), data
    assert len({d["id"] for d in out}) == 1  # one stream, one id
    assert stream_content(out) == stream_content(originals)
    reasons = finish_reasons(out)
    assert set(reasons) == set(stream_content(out)[0])  # every choice says why it ended
    for index, reason in finish_reasons(originals).items():
        assert reasons[index] == reason
    if mode == "auto":  # vendor extras kept, nothing with a value lost
        kept = set().union(*(keys_with_values(d) for d in originals))
        assert kept <= set().union(*(keys_with_values(d) for d in out))


def test_a_stream_that_never_said_why_it_ended_gets_its_finish_chunk() -> None:
    """vLLM's tool-call stream (vllm#27572) ended with [DONE] and no finish_reason: the finish
    chunk the stream lacked comes before the usage chunk, with ``tool_calls``."""
    content = (HERE / "vllm" / "chat_stream_tools_no_finish.sse").read_bytes()
    request = {"model": "ibm/granite-3-8b-instruct", "stream": True}
    chunks, _ = relay(content, "chat", "auto", request)
    last, usage = orjson.loads(chunks[-2].raw), orjson.loads(chunks[-1].raw)  # type: ignore[arg-type]
    assert last["choices"] == [{"index": 0, "delta": {}, "logprobs": None, "finish_reason": "tool_calls"}]
    assert last["id"] == "chatcmpl-6ca98c2f19c13c19f39013dfb78bcece" and last["created"] == 1761566772
    assert usage["choices"] == [] and usage["usage"]["total_tokens"] == 266
    assert [c.more for c in chunks[-2:]] == [True, False]
    # Truncated (no [DONE]): nothing is invented; the relay's own check ends it as an error.
    cut = content.replace(b"data: [DONE]\n\n", b"")
    chunks, _ = relay(cut, "chat", "auto", request)
    assert not finish_reasons([orjson.loads(c.raw) for c in chunks])  # type: ignore[arg-type]
    assert orjson.loads(chunks[-1].raw)["usage"]["total_tokens"] == 266  # type: ignore[arg-type]
    # Without a way to know whether [DONE] came, nothing is invented either.
    chunks, _ = relay(content, "chat", "auto", request, done=False)
    assert not finish_reasons([orjson.loads(c.raw) for c in chunks])  # type: ignore[arg-type]


def test_a_missing_finish_reason_is_length_when_the_token_limit_was_reached() -> None:
    head = b'{"id":"c1","object":"chat.completion.chunk","created":1,"model":"m",'
    content = (b"data: " + head + b'"choices":[{"index":0,"delta":{"content":"a b c"},"finish_reason":null}]}\n\n'
               + b"data: " + head + b'"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":3,"total_tokens":6}}\n\n'
               + b"data: [DONE]\n\n")
    for request, reason in (({"model": "m", "max_tokens": 3}, "length"), ({"model": "m", "max_completion_tokens": 3}, "length")):
        chunks, _ = relay(content, "chat", "auto", request)
        assert finish_reasons([orjson.loads(c.raw) for c in chunks]) == {0: reason}  # type: ignore[arg-type]
    # Below the limit nothing says why it ended: not invented (the relay ends it as truncated).
    chunks, _ = relay(content, "chat", "auto", {"model": "m", "max_tokens": 9})
    assert finish_reasons([orjson.loads(c.raw) for c in chunks]) == {}  # type: ignore[arg-type]
    completion = content.replace(b"chat.completion.chunk", b"text_completion").replace(
        b'"delta":{"content":"a b c"}', b'"text":"a b c","logprobs":null')
    chunks, _ = relay(completion, "completion", "strict", {"model": "m", "max_tokens": 3})
    ends = [orjson.loads(c.raw) for c in chunks]  # type: ignore[arg-type]
    assert ends[-2]["choices"] == [{"text": "", "index": 0, "logprobs": None, "finish_reason": "length"}]


def test_an_upstream_error_event_passes_untouched() -> None:
    error = b'{"error":{"message":"overloaded","type":"server_error","code":null}}'
    content = b"data: " + error + b"\n\n"
    for mode in ("auto", "strict"):
        chunks, _ = relay(content, "chat", mode, {"model": "m"})
        assert [c.raw for c in chunks] == [error]


# -- OpenAI's own streams --------------------------------------------------------------------


@pytest.mark.parametrize("recording", RECORDINGS, ids=[r.name[:12] for r in RECORDINGS])
def test_openai_streams_come_back_byte_identical(recording: Path) -> None:
    content = recording.read_bytes()
    request = {"model": "gpt-4o", "n": 3 if b'"index":2' in content else 1}
    sent = payloads(content)
    chunks, upstream = relay(content, "chat", "auto", request)
    assert [c.raw for c in chunks] == sent
    assert all(c.raw is raw for c, raw in zip(chunks, upstream.sent, strict=True))  # not even copied
    # strict writes OpenAI's canonical form: OpenAI's own bytes, re-serialised, are the same.
    chunks, _ = relay(content, "chat", "strict", request)
    assert [c.raw for c in chunks] == sent


def test_auto_relays_conforming_bytes_themselves() -> None:
    raw = payloads(RECORDINGS[0].read_bytes())[0]
    conformer = StreamConformer("chat", request={"model": "gpt-4o"})
    assert conformer.payload(orjson.loads(raw), raw) is raw
    body = (b'{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"gpt-4o","choices":[{"index":0,'
            b'"message":{"role":"assistant","content":"hi","refusal":null},"logprobs":null,"finish_reason":"stop"}],'
            b'"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}')
    assert conform_reply("chat.completions", orjson.loads(body), body) is body
    assert conform_reply("chat.completions", orjson.loads(body), body, mode="strict") == body


# -- single repairs, on OpenAI's own objects with a field broken -----------------------------

OPENAI_BODY = {
    "id": "chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG", "object": "chat.completion", "created": 1741570283,
    "model": "gpt-4o-2024-08-06",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "A boardwalk.", "refusal": None,
                                         "annotations": []},
                 "logprobs": None, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 1117, "completion_tokens": 46, "total_tokens": 1163,
              "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0}},
    "service_tier": "default", "system_fingerprint": "fp_fc9f1d7035",
}


@pytest.mark.parametrize(("break_it", "check"), [
    (lambda d: d.pop("created"), lambda d: isinstance(d["created"], int) and d["created"] > 1_700_000_000),
    (lambda d: d.pop("object"), lambda d: d["object"] == "chat.completion"),
    (lambda d: d.pop("id"), lambda d: d["id"].startswith("chatcmpl-") and len(d["id"]) == 33),
    (lambda d: d.pop("model"), lambda d: d["model"] == "gpt-4o"),
    (lambda d: d.update(created=1741570283.0), lambda d: d["created"] == 1741570283),
    (lambda d: d["choices"][0].pop("index"), lambda d: d["choices"][0]["index"] == 0),
    (lambda d: d["choices"][0]["message"].pop("role"), lambda d: d["choices"][0]["message"]["role"] == "assistant"),
    (lambda d: d["choices"][0]["message"].update(content=[{"type": "text", "text": "A "}, {"type": "text", "text": "boardwalk."}]),
     lambda d: d["choices"][0]["message"]["content"] == "A boardwalk."),
    (lambda d: d["choices"][0]["message"].update(tool_calls=[{"function": {"name": "f", "arguments": {"a": 1}}}]),
     lambda d: d["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"] == '{"a":1}'
     and d["choices"][0]["message"]["tool_calls"][0]["id"].startswith("call_")
     and d["choices"][0]["finish_reason"] == "stop"),
    (lambda d: d["choices"][0].update(finish_reason=None), lambda d: d["choices"][0]["finish_reason"] == "stop"),
    (lambda d: d["choices"][0].update(finish_reason="eos"), lambda d: d["choices"][0]["finish_reason"] == "stop"),
    (lambda d: d["choices"][0].update(finish_reason="max_tokens"), lambda d: d["choices"][0]["finish_reason"] == "length"),
    (lambda d: d["choices"][0].update(finish_reason="repetition"), lambda d: d["choices"][0]["finish_reason"] == "length"),
    (lambda d: d["choices"][0].update(finish_reason="tool_use"), lambda d: d["choices"][0]["finish_reason"] == "tool_calls"),
    (lambda d: d["usage"].update(completion_tokens=None), lambda d: d["usage"]["completion_tokens"] == 46),
    (lambda d: d["usage"].update(total_tokens=None), lambda d: d["usage"]["total_tokens"] == 1163),
    (lambda d: d["usage"]["prompt_tokens_details"].update(cached_tokens=None),
     lambda d: d["usage"]["prompt_tokens_details"] == {"audio_tokens": 0}),
    (lambda d: d.update(usage=None), lambda d: "usage" not in d),
    (lambda d: d.update(service_tier="on_demand"), lambda d: "service_tier" not in d),
    (lambda d: d["choices"][0].update(logprobs={"content": [{"token": "A", "logprob": -0.1}]}),
     lambda d: d["choices"][0]["logprobs"] == {"content": [{"token": "A", "logprob": -0.1, "bytes": None,
                                                            "top_logprobs": []}], "refusal": None}),
])
def test_each_repair(break_it: Any, check: Any, openai_schema: OpenAISchema) -> None:
    data = copy.deepcopy(OPENAI_BODY)
    break_it(data)
    raw = orjson.dumps(data)
    out = orjson.loads(conform_reply("chat.completions", data, raw, request={"model": "gpt-4o"}, model="gpt-4o"))
    assert check(out), out
    openai_schema.validate("CreateChatCompletionResponse", out)


@pytest.mark.parametrize(("reason", "words"), [("abort", "incomplete"), ("error", "incomplete"), ("cancelled", "incomplete")])
def test_a_broken_answer_never_looks_complete(reason: str, words: str) -> None:
    data = copy.deepcopy(OPENAI_BODY)
    data["choices"][0]["finish_reason"] = reason
    with pytest.raises(ConformError, match=words) as raised:
        conform_reply("chat.completions", data, None)
    assert raised.value.status_code == 502
    assert orjson.loads(raised.value.to_json())["error"]["code"] == "upstream_nonconforming"


@pytest.mark.parametrize(("endpoint", "body", "words"), [
    ("chat.completions", {"id": "x", "object": "chat.completion"}, "no choices"),
    ("chat.completions", {"choices": [{"index": 0, "finish_reason": "stop"}]}, "message is not an object"),
    ("chat.completions", {"choices": [{"message": {"tool_calls": [{"function": {"arguments": "{}"}}]}}]}, "has no name"),
    ("completions", {"choices": [{"text": 7}]}, "text is not text"),
    ("embeddings", {"data": [{"embedding": [[0.1, 0.2], [0.3, 0.4]]}]}, "flat list"),
    ("embeddings", {"data": [{"embedding": "not base64!"}]}, "base64"),
    ("embeddings", {"object": "list"}, "no data list"),
])
def test_what_cannot_be_repaired_is_a_clear_error(endpoint: str, body: dict[str, Any], words: str) -> None:
    with pytest.raises(ConformError, match=words):
        conform_reply(endpoint, body, orjson.dumps(body))


def test_an_error_object_answered_with_200_stays_an_error() -> None:
    body = orjson.dumps({"error": {"message": "model not loaded", "type": "invalid_request_error", "code": "no_model"}})
    with pytest.raises(UpstreamError) as raised:
        conform_reply("chat.completions", orjson.loads(body), body)
    assert raised.value.message == "model not loaded" and raised.value.code == "no_model"


def test_off_relays_anything_untouched() -> None:
    raw = (HERE / "vllm" / "chat.json").read_bytes()
    assert conform_reply("chat.completions", orjson.loads(raw), raw, mode="off") is raw
    assert conform_reply("images.generations", {"data": []}, b'{"data":[]}') == b'{"data":[]}'


def test_conform_mode_setting() -> None:
    assert conform_mode(None, "providers.up") == "auto"
    assert [conform_mode(m, "providers.up") for m in ("auto", "strict", "off")] == ["auto", "strict", "off"]
    with pytest.raises(ConfigError, match=r"providers\.up\.conform must be one of"):
        conform_mode("lenient", "providers.up")


# -- embeddings ------------------------------------------------------------------------------


def test_base64_is_little_endian_float32_as_openai_sends_it() -> None:
    vector = [0.0123, -0.98, 0.5, 1e-05, -0.3333, 0.25, 0.77, -0.0625, 3.4e38, -1.5e-39]
    encoded = encode_embedding(vector)
    assert encoded == base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
    assert decode_embedding(encoded) == _f32(vector)
    assert encode_embedding([0.0]) == "AAAAAA==" and encode_embedding([1.0]) == "AACAPw=="
    with pytest.raises(ConformError):
        decode_embedding(base64.b64encode(b"\x00\x00\x80").decode())  # not whole float32 values


def test_floats_asked_base64_sent_are_decoded() -> None:
    vector = _f32([0.1, -0.2, 0.3])
    raw = orjson.dumps({"object": "list", "model": "m", "usage": {"prompt_tokens": 2, "total_tokens": 2},
                        "data": [{"object": "embedding", "index": 0, "embedding": encode_embedding(vector)}]})
    out = orjson.loads(conform_reply("embeddings", orjson.loads(raw), raw, request={"encoding_format": "float"}))
    assert out["data"][0]["embedding"] == vector
    # asked base64, got base64: untouched
    assert conform_reply("embeddings", orjson.loads(raw), raw, request={"encoding_format": "base64"}) is raw
