"""Embeddings, legacy completions, /models and the demo provider, through the official SDK."""

from __future__ import annotations

import base64
import math
import struct
from collections.abc import Callable
from typing import Any

import httpx2
import openai
import orjson
import pytest
from starlette.types import Send

from support import CLIENT_KEY, Served, gateway_config

from compatgate import Principal, hookimpl
from compatgate.testing import FakeUpstream, OpenAISchema, Received

AUTH = {"authorization": f"Bearer {CLIENT_KEY}"}

# Float32-exact values, so that a float sent as JSON and one sent as base64 float32 are equal.
_RAW = [0.0123, -0.98, 0.5, 1e-05, -0.3333, 0.25, 0.77, -0.0625]
VECTORS = [
    list(struct.unpack(f"<{len(_RAW)}f", struct.pack(f"<{len(_RAW)}f", *[v * (i + 1) / 2 for v in _RAW])))
    for i in range(2)
]


def sse_payloads(url: str, path: str, body: dict[str, Any], key: str = CLIENT_KEY) -> list[bytes]:
    """POST a streaming request; the ``data:`` payloads the client received, in order."""
    with httpx2.stream("POST", f"{url}{path}", json=body, timeout=10,
                       headers={"authorization": f"Bearer {key}"}) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        return [line[6:].encode() for line in response.iter_lines() if line.startswith("data: ")]


def validate_completion_chunk(schema: OpenAISchema, chunk: dict[str, Any]) -> None:
    """A streamed legacy completion is a CreateCompletionResponse ("both the streamed and
    non-streamed response objects share the same shape"), except that OpenAI sends
    ``"finish_reason": null`` on every chunk before the last, which the spec's non-nullable enum
    refuses. That one documented deviation of the real wire is tolerated; nothing else is."""
    nulls = {f"choices/{i}/finish_reason:" for i, c in enumerate(chunk["choices"]) if c["finish_reason"] is None}
    errors = [e for e in schema.errors("CreateCompletionResponse", chunk) if e.split(" ", 1)[0] not in nulls]
    assert not errors, f"not a valid CreateCompletionResponse chunk: {errors}"


# -- embeddings ------------------------------------------------------------------------------


def embeddings_upstream(fake: FakeUpstream) -> list[bytes]:
    """Answer embeddings like OpenAI: floats, or base64 little-endian float32 when asked.
    Returns the list of bodies sent, to compare with what the client got."""
    sent: list[bytes] = []

    async def handler(request: Received, send: Send) -> None:
        body = request.json
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        data = []
        for index, _ in enumerate(inputs):
            vector = VECTORS[index]
            embedding: Any = vector
            if body.get("encoding_format") == "base64":
                embedding = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
            data.append({"object": "embedding", "index": index, "embedding": embedding})
        content = orjson.dumps({"object": "list", "data": data, "model": "text-embedding-3-small",
                                "usage": {"prompt_tokens": 9, "total_tokens": 9}})
        sent.append(content)
        await FakeUpstream.json_reply(content)(request, send)

    fake.handler = handler
    return sent


def test_embeddings_float(gw: Served, upstream, openai_schema: OpenAISchema):
    fake, _ = upstream
    sent = embeddings_upstream(fake)
    result = gw.client().embeddings.create(
        model="text-embedding-3-small", input=["hello", "world"], encoding_format="float"
    )
    assert [e.embedding for e in result.data] == VECTORS
    assert fake.received[-1].path == "/v1/embeddings"
    assert fake.received[-1].json == {"model": "text-embedding-3-small", "input": ["hello", "world"],
                                      "encoding_format": "float"}
    raw = httpx2.post(f"{gw.url}/embeddings", headers=AUTH, timeout=10,
                      json={"model": "text-embedding-3-small", "input": "hello", "encoding_format": "float"})
    assert raw.status_code == 200
    openai_schema.validate("CreateEmbeddingResponse", raw.json())
    assert raw.content == sent[-1]  # relayed byte for byte
    first = gw.records(2)[0]
    assert (first.endpoint, first.outcome, first.streamed) == ("embeddings", "ok", False)
    assert (first.prompt_tokens, first.completion_tokens, first.total_tokens) == (9, 0, 9)
    assert first.model == "text-embedding-3-small" and first.provider == "up"


def test_embeddings_base64_decoded_by_the_sdk(gw: Served, upstream):
    fake, _ = upstream
    sent = embeddings_upstream(fake)
    # Without encoding_format the SDK asks for base64 and decodes the float32 vectors itself.
    result = gw.client().embeddings.create(model="text-embedding-3-small", input=["hello", "world"])
    assert fake.received[-1].json["encoding_format"] == "base64"
    assert [e.embedding for e in result.data] == VECTORS
    assert result.usage.prompt_tokens == 9 and result.usage.total_tokens == 9
    # Asked explicitly, the SDK hands the base64 string over untouched.
    explicit = gw.client().embeddings.create(model="text-embedding-3-small", input="hi", encoding_format="base64")
    assert fake.received[-1].json["encoding_format"] == "base64"
    encoded = explicit.data[0].embedding
    assert isinstance(encoded, str)
    assert list(struct.unpack(f"<{len(VECTORS[0])}f", base64.b64decode(encoded))) == VECTORS[0]
    raw = httpx2.post(f"{gw.url}/embeddings", headers=AUTH, timeout=10,
                      json={"model": "text-embedding-3-small", "input": "hi", "encoding_format": "base64"})
    assert raw.content == sent[-1]
    records = gw.records(3)
    assert all((r.prompt_tokens, r.total_tokens, r.outcome) == (9, 9, "ok") for r in records)


# -- legacy completions ----------------------------------------------------------------------

COMPLETION = {
    "id": "cmpl-uqkvlQyYK7bGYrRHQ0eXlWi7", "object": "text_completion", "created": 1589478378,
    "model": "gpt-3.5-turbo-instruct", "system_fingerprint": "fp_44709d6fcb",
    "choices": [{"text": "\n\nThis is indeed a test", "index": 0, "logprobs": None, "finish_reason": "length"}],
    "usage": {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12},
}

_PIECES = ["\n\n", "This", " is", " indeed", " a", " test", "."]
_HEAD = b'{"id":"cmpl-96c64EdfhOw8pjFFgVpLuT8k2MtdT","object":"text_completion","created":1711363440,'
# A legacy completions stream as OpenAI sends it (stream_options.include_usage set): one
# text_completion object per piece with finish_reason null, a last choice with the finish_reason,
# then the usage chunk with empty choices, then [DONE].
COMPLETION_STREAM = (
    b"".join(
        b"data: " + _HEAD + b'"choices":[{"text":' + orjson.dumps(p)
        + b',"index":0,"logprobs":null,"finish_reason":null}],"model":"gpt-3.5-turbo-instruct"}\n\n'
        for p in _PIECES
    )
    + b"data: " + _HEAD
    + b'"choices":[{"text":"","index":0,"logprobs":null,"finish_reason":"stop"}],"model":"gpt-3.5-turbo-instruct"}\n\n'
    + b"data: " + _HEAD + b'"model":"gpt-3.5-turbo-instruct",'
    + b'"usage":{"prompt_tokens":5,"completion_tokens":7,"total_tokens":12},"choices":[]}\n\n'
    + b"data: [DONE]\n\n"
)


def test_completions_non_streamed(gw: Served, upstream, openai_schema: OpenAISchema):
    fake, _ = upstream
    fake.handler = fake.json_reply(COMPLETION)
    result = gw.client().completions.create(
        model="gpt-3.5-turbo-instruct", prompt="Say this is a test", max_tokens=7, temperature=0, echo=False
    )
    assert result.choices[0].text == "\n\nThis is indeed a test" and result.choices[0].finish_reason == "length"
    sent = fake.received[-1]
    assert sent.path == "/v1/completions"
    assert sent.json == {"model": "gpt-3.5-turbo-instruct", "prompt": "Say this is a test", "max_tokens": 7,
                         "temperature": 0, "echo": False}
    raw = httpx2.post(f"{gw.url}/completions", headers=AUTH, timeout=10,
                      json={"model": "gpt-3.5-turbo-instruct", "prompt": ["a", "b"]})
    openai_schema.validate("CreateCompletionResponse", raw.json())
    record = gw.records(2)[0]
    assert (record.endpoint, record.outcome) == ("completions", "ok")
    assert (record.prompt_tokens, record.completion_tokens, record.total_tokens) == (5, 7, 12)


@pytest.mark.parametrize("include_usage", [False, True])
def test_completions_streamed(gw: Served, upstream, openai_schema: OpenAISchema, include_usage: bool):
    fake, _ = upstream
    fake.handler = fake.sse_reply(COMPLETION_STREAM)
    options = {"stream_options": {"include_usage": True}} if include_usage else {}
    stream = gw.client().completions.create(model="gpt-3.5-turbo-instruct", prompt="Say this is a test",
                                            stream=True, **options)
    chunks = list(stream)
    assert "".join(c.choices[0].text for c in chunks if c.choices) == "".join(_PIECES)
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert fake.received[-1].json["stream_options"] == {"include_usage": True}
    assert fake.received[-1].path == "/v1/completions"
    if include_usage:
        assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens == 12
    else:
        assert all(c.usage is None for c in chunks)

    fake.handler = fake.sse_reply(COMPLETION_STREAM)
    payloads = sse_payloads(gw.url, "/completions", {"model": "gpt-3.5-turbo-instruct", "prompt": "x",
                                                     "stream": True, **options})
    assert payloads[-1] == b"[DONE]"
    expected = [b[6:] for b in COMPLETION_STREAM.split(b"\n\n") if b.startswith(b"data: {")]
    if not include_usage:
        expected = expected[:-1]
    assert payloads[:-1] == expected  # relayed byte for byte
    for payload in payloads[:-1]:
        validate_completion_chunk(openai_schema, orjson.loads(payload))
    for record in gw.records(2):
        assert (record.endpoint, record.outcome, record.streamed) == ("completions", "ok", True)
        assert (record.prompt_tokens, record.completion_tokens, record.total_tokens) == (5, 7, 12)


def test_completion_chunk_validation_is_not_blind(openai_schema: OpenAISchema):
    chunk = orjson.loads(COMPLETION_STREAM.split(b"\n\n")[0][6:])
    validate_completion_chunk(openai_schema, chunk)
    with pytest.raises(AssertionError):
        validate_completion_chunk(openai_schema, {**chunk, "object": "chat.completion.chunk"})
    with pytest.raises(AssertionError):
        validate_completion_chunk(openai_schema, {**chunk, "choices": [{"index": 0, "text": "x", "logprobs": None,
                                                                       "finish_reason": "maybe"}]})


# -- /models -------------------------------------------------------------------------------


def models_config(url: str) -> dict[str, Any]:
    config = gateway_config(url, load_entrypoints=False)
    config["providers"]["vllm"] = {"type": "openai", "base_url": f"{url}/vllm/v1", "owned_by": "my-lab"}
    config["models"] += [
        {"name": "meta-llama/Llama-3-8B", "provider": "vllm", "upstream_model": "llama3"},
        {"name": "org/team/model:v2", "provider": "vllm", "owned_by": "meta", "created": 1713398400},
    ]
    return config


OWNERS = {
    "gpt-4o": "up", "text-embedding-3-small": "up", "gpt-3.5-turbo-instruct": "up",
    "meta-llama/Llama-3-8B": "my-lab", "org/team/model:v2": "meta",
}


def test_models_list_and_retrieve(make_gateway: Callable[..., Served], upstream, openai_schema: OpenAISchema):
    gw = make_gateway(models_config(upstream[1]))
    client = gw.client()
    listed = client.models.list()
    assert {m.id: m.owned_by for m in listed.data} == OWNERS
    raw = httpx2.get(f"{gw.url}/models", headers=AUTH, timeout=10)
    body = raw.json()
    openai_schema.validate("ListModelsResponse", body)
    for entry in body["data"]:
        openai_schema.validate("Model", entry)
    assert next(m for m in body["data"] if m["id"] == "org/team/model:v2")["created"] == 1713398400
    assert raw.headers["x-request-id"]

    for model_id, owner in OWNERS.items():
        # The SDK percent-encodes the slash (/models/meta-llama%2FLlama-3-8B)...
        model = client.models.retrieve(model_id)
        assert (model.id, model.owned_by, model.object) == (model_id, owner, "model")
        # ...and a plain client sends it as is: both reach the same model.
        raw = httpx2.get(f"{gw.url}/models/{model_id}", headers=AUTH, timeout=10)
        assert raw.status_code == 200, raw.text
        openai_schema.validate("Model", raw.json())
        assert raw.json()["id"] == model_id

    with pytest.raises(openai.NotFoundError) as info:
        client.models.retrieve("meta-llama/Llama-3-70B")
    assert info.value.status_code == 404 and info.value.code == "model_not_found"
    missing = httpx2.get(f"{gw.url}/models/meta-llama/Llama-3-70B", headers=AUTH, timeout=10)
    openai_schema.validate("ErrorResponse", missing.json())
    assert "meta-llama/Llama-3-70B" in missing.json()["error"]["message"]
    with pytest.raises(openai.AuthenticationError):
        gw.client(key="sk-wrong").models.list()
    # The model with a slash in its name is served, under its upstream name.
    fake, _ = upstream
    fake.handler = fake.json_reply(COMPLETION)
    client.completions.create(model="meta-llama/Llama-3-8B", prompt="hi")
    assert fake.received[-1].path == "/vllm/v1/completions" and fake.received[-1].json["model"] == "llama3"


class Restricted:
    """Accepts ``sk-restricted`` as a key that may use only the gpt-4o family."""

    def __init__(self, gateway: object) -> None:
        pass

    @hookimpl
    def authenticate(self, api_key: str | None) -> Principal | None:
        return Principal("restricted", allowed_models=("gpt-4o*",)) if api_key == "sk-restricted" else None


def test_principal_sees_only_its_models(make_gateway: Callable[..., Served], upstream, openai_schema: OpenAISchema):
    config = models_config(upstream[1])
    config["models"].append({"name": "gpt-4o-mini", "provider": "up"})
    gw = make_gateway(config, plugins=(Restricted,))
    restricted = gw.client(key="sk-restricted")
    assert sorted(m.id for m in restricted.models.list().data) == ["gpt-4o", "gpt-4o-mini"]
    assert restricted.models.retrieve("gpt-4o-mini").id == "gpt-4o-mini"
    with pytest.raises(openai.NotFoundError):
        restricted.models.retrieve("text-embedding-3-small")
    with pytest.raises(openai.PermissionDeniedError) as info:
        restricted.embeddings.create(model="text-embedding-3-small", input="x")
    assert info.value.code == "model_not_allowed"
    openai_schema.validate("ErrorResponse", info.value.response.json())
    fake, _ = upstream
    assert fake.received == []  # refused before going upstream
    # The static key still sees everything.
    assert len(gw.client().models.list().data) == len(OWNERS) + 1


# -- the demo provider ---------------------------------------------------------------------

DEMO = {
    "gateway": {"api_keys": [CLIENT_KEY], "load_entrypoints": False},
    "providers": {"demo": {"type": "demo", "chunk_delay": 0.0}},
    "models": [{"name": "demo-chat", "provider": "demo"}, {"name": "demo-embedding", "provider": "demo"}],
}
HELLO = [{"role": "user", "content": "Hi there, how are you?"}]


@pytest.fixture
def demo(make_gateway: Callable[..., Served]) -> Served:
    return make_gateway(DEMO)


def test_demo_chat(demo: Served, openai_schema: OpenAISchema):
    raw = demo.client().chat.completions.with_raw_response.create(model="demo-chat", messages=HELLO)
    openai_schema.validate("CreateChatCompletionResponse", raw.http_response.json())
    result = raw.parse()
    assert result.object == "chat.completion" and result.model == "demo-chat"
    assert result.choices[0].message.content.endswith("You said: Hi there, how are you?")
    assert result.choices[0].finish_reason == "stop"
    assert result.usage.total_tokens == result.usage.prompt_tokens + result.usage.completion_tokens > 0
    record = demo.records(1)[0]
    assert (record.provider, record.outcome) == ("demo", "ok")
    assert record.usage.total_tokens == result.usage.total_tokens


def test_demo_stream(demo: Served, openai_schema: OpenAISchema):
    full = demo.client().chat.completions.create(model="demo-chat", messages=HELLO).choices[0].message.content
    stream = demo.client().chat.completions.create(
        model="demo-chat", messages=HELLO, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == full
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens > 0
    payloads = sse_payloads(demo.url, "/chat/completions", {"model": "demo-chat", "messages": HELLO, "stream": True})
    assert payloads[-1] == b"[DONE]"
    decoded = [orjson.loads(p) for p in payloads[:-1]]
    for chunk in decoded:
        openai_schema.validate("CreateChatCompletionStreamResponse", chunk)
    assert all(c["choices"] for c in decoded)  # no usage chunk when not asked
    assert decoded[-1]["choices"][0]["finish_reason"] == "stop"
    assert demo.records(3)[-1].streamed


def test_demo_n_choices(demo: Served, openai_schema: OpenAISchema):
    raw = demo.client().chat.completions.with_raw_response.create(model="demo-chat", messages=HELLO, n=2)
    openai_schema.validate("CreateChatCompletionResponse", raw.http_response.json())
    result = raw.parse()
    assert [c.index for c in result.choices] == [0, 1]
    assert result.choices[0].message.content == result.choices[1].message.content
    payloads = sse_payloads(demo.url, "/chat/completions",
                            {"model": "demo-chat", "messages": HELLO, "stream": True, "n": 2})
    decoded = [orjson.loads(p) for p in payloads[:-1]]
    for chunk in decoded:
        openai_schema.validate("CreateChatCompletionStreamResponse", chunk)
    texts = {0: "", 1: ""}
    finishes = {}
    for chunk in decoded:
        for choice in chunk["choices"]:
            texts[choice["index"]] += choice["delta"].get("content") or ""
            if choice["finish_reason"]:
                finishes[choice["index"]] = choice["finish_reason"]
    assert texts == {0: result.choices[0].message.content, 1: result.choices[1].message.content}
    assert finishes == {0: "stop", 1: "stop"} and payloads[-1] == b"[DONE]"


def test_demo_max_tokens_cuts_with_length(demo: Served, openai_schema: OpenAISchema):
    client = demo.client()
    raw = client.chat.completions.with_raw_response.create(model="demo-chat", messages=HELLO, max_tokens=3)
    openai_schema.validate("CreateChatCompletionResponse", raw.http_response.json())
    result = raw.parse()
    assert result.choices[0].finish_reason == "length"
    assert result.choices[0].message.content == "Hello from the"
    assert 0 < result.usage.completion_tokens <= 3
    stream = client.chat.completions.create(model="demo-chat", messages=HELLO, max_completion_tokens=3, stream=True)
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "Hello from the"
    assert chunks[-1].choices[0].finish_reason == "length"
    # Legacy completions from the demo provider too, streamed and not.
    legacy = client.completions.with_raw_response.create(model="demo-chat", prompt="Once upon", max_tokens=2)
    openai_schema.validate("CreateCompletionResponse", legacy.http_response.json())
    assert legacy.parse().choices[0].finish_reason == "length"
    payloads = sse_payloads(demo.url, "/completions", {"model": "demo-chat", "prompt": "Once upon", "stream": True})
    for payload in payloads[:-1]:
        validate_completion_chunk(openai_schema, orjson.loads(payload))
    assert orjson.loads(payloads[-2])["choices"][0]["finish_reason"] == "stop" and payloads[-1] == b"[DONE]"


def test_demo_embeddings_with_dimensions(demo: Served, openai_schema: OpenAISchema):
    client = demo.client()
    decoded = client.embeddings.create(model="demo-embedding", input=["alpha", "beta"], dimensions=64)
    assert [len(e.embedding) for e in decoded.data] == [64, 64]
    assert all(math.isclose(math.fsum(v * v for v in e.embedding), 1.0, rel_tol=1e-5) for e in decoded.data)
    assert decoded.data[0].embedding != decoded.data[1].embedding
    raw = httpx2.post(f"{demo.url}/embeddings", headers=AUTH, timeout=10,
                      json={"model": "demo-embedding", "input": ["alpha", "beta"], "dimensions": 64,
                            "encoding_format": "float"})
    openai_schema.validate("CreateEmbeddingResponse", raw.json())
    floats = [d["embedding"] for d in raw.json()["data"]]
    # The base64 float32 vectors the SDK decoded are the float vectors, rounded to float32.
    for got, want in zip(decoded.data, floats, strict=True):
        assert got.embedding == pytest.approx(want, rel=1e-6, abs=1e-7)
    assert raw.json()["usage"]["prompt_tokens"] == raw.json()["usage"]["total_tokens"] == 2
    with pytest.raises(openai.BadRequestError) as info:
        client.embeddings.create(model="demo-embedding", input="x", dimensions=0)
    assert info.value.param == "dimensions"
