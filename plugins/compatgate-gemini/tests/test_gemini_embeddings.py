"""``/embeddings`` through ``batchEmbedContents``: float and base64, dimensions, task type,
batches of 100, and what Gemini cannot embed."""

from __future__ import annotations

import base64
import struct
from typing import Any

import orjson
import pytest
from gemini_support import UPSTREAM_KEY, Served, gemini_config

from compatgate.testing import FakeUpstream, OpenAISchema, Received


def vector(seed: int, size: int = 4) -> list[float]:
    return [round(seed + i / 8, 3) for i in range(size)]


def embed_handler(upstream: FakeUpstream, size: int = 4, usage: bool = False):
    """Answer each batch with one vector per request, derived from the text."""

    async def handler(request: Received, send) -> None:
        texts = [r["content"]["parts"][0]["text"] for r in request.json["requests"]]
        answer: dict[str, Any] = {"embeddings": [{"values": vector(len(text), size)} for text in texts]}
        if usage:
            answer["usageMetadata"] = {"promptTokenCount": 3 * len(texts), "totalTokenCount": 3 * len(texts)}
        await upstream.json_reply(answer)(request, send)

    upstream.handler = handler


def test_float_embeddings(gw: Served, upstream: FakeUpstream, openai_schema: OpenAISchema):
    embed_handler(upstream)
    response = gw.post("/embeddings", {"model": "embed", "input": ["hello", "hi"], "encoding_format": "float"})
    assert response.status_code == 200, response.text
    body = response.json()
    openai_schema.validate("CreateEmbeddingResponse", body)
    assert body == {"object": "list", "model": "gemini-embedding-001",
                    "data": [{"object": "embedding", "index": 0, "embedding": vector(5)},
                             {"object": "embedding", "index": 1, "embedding": vector(2)}],
                    "usage": {"prompt_tokens": 3, "total_tokens": 3}}  # estimated: ceil(5/4) + ceil(2/4)
    sent = upstream.received[-1]
    assert sent.path == "/v1beta/models/gemini-embedding-001:batchEmbedContents" and sent.query == ""
    assert sent.headers["x-goog-api-key"] == UPSTREAM_KEY and "authorization" not in sent.headers
    assert sent.json == {"requests": [
        {"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "hello"}]}},
        {"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "hi"}]}}]}
    record = gw.records(1)[0]
    assert record.endpoint == "embeddings" and record.prompt_tokens == 3


def test_base64_as_the_sdk_asks_by_default(gw: Served, upstream: FakeUpstream, openai_schema: OpenAISchema):
    embed_handler(upstream, size=3)
    raw = gw.post("/embeddings", {"model": "embed", "input": "four", "encoding_format": "base64"}).json()
    # The OpenAPI document only describes float arrays: check the rest of the answer against it.
    openai_schema.validate("CreateEmbeddingResponse", {**raw, "data": [{**raw["data"][0], "embedding": [0.0]}]})
    packed = base64.b64decode(raw["data"][0]["embedding"])
    assert struct.unpack("<3f", packed) == tuple(struct.unpack("<3f", struct.pack("<3f", *vector(4, 3))))
    result = gw.client().embeddings.create(model="embed", input="four")  # the SDK asks for base64
    assert orjson.loads(upstream.received[-1].body)["requests"][0]["content"] == {"parts": [{"text": "four"}]}
    assert result.data[0].embedding == pytest.approx(vector(4, 3), abs=1e-6)


def test_dimensions_and_task_type(make_gateway, upstream_served, upstream: FakeUpstream):
    models = [{"name": "embed", "provider": "google", "upstream_model": "gemini-embedding-001",
               "task_type": "RETRIEVAL_DOCUMENT"}]
    gw = make_gateway(gemini_config(upstream_served[1], models=models))
    embed_handler(upstream, size=8)
    result = gw.client().embeddings.create(model="embed", input=["a"], dimensions=8, encoding_format="float")
    assert len(result.data[0].embedding) == 8
    assert upstream.received[-1].json["requests"] == [{
        "model": "models/gemini-embedding-001", "content": {"parts": [{"text": "a"}]},
        "outputDimensionality": 8, "taskType": "RETRIEVAL_DOCUMENT"}]


def test_more_than_a_batch(gw: Served, upstream: FakeUpstream):
    embed_handler(upstream, usage=True)
    texts = ["x" * (i % 7 + 1) for i in range(205)]
    body = gw.post("/embeddings", {"model": "embed", "input": texts, "encoding_format": "float"}).json()
    assert [len(r.json["requests"]) for r in upstream.received] == [100, 100, 5]
    assert [item["index"] for item in body["data"]] == list(range(205))
    assert [item["embedding"] for item in body["data"]] == [vector(len(t)) for t in texts]
    assert body["usage"] == {"prompt_tokens": 615, "total_tokens": 615}  # Gemini's counts, summed


@pytest.mark.parametrize(
    ("body", "param"),
    [({"input": [1, 2, 3]}, "input"), ({"input": [[1, 2], [3]]}, "input"), ({"input": ["a", 5]}, "input"),
     ({"input": "a", "dimensions": 0}, "dimensions"), ({"input": "a", "dimensions": "8"}, "dimensions")],
    ids=["tokens", "token-lists", "mixed", "zero-dimensions", "string-dimensions"],
)
def test_what_gemini_cannot_embed_is_400(gw: Served, upstream: FakeUpstream, body: dict, param: str):
    response = gw.post("/embeddings", {"model": "embed", **body})
    assert response.status_code == 400 and response.json()["error"]["param"] == param
    assert upstream.received == []


@pytest.mark.parametrize(
    "answer",
    [{"embeddings": [{"values": [0.1]}]}, {"embeddings": [{"values": [0.1]}, {}]}, {}, {"embeddings": [{"values": ["x"]}, {"values": [1]}]}],
    ids=["too-few", "no-values", "nothing", "not-numbers"],
)
def test_a_wrong_answer_is_a_502(gw: Served, upstream: FakeUpstream, answer: dict):
    upstream.handler = upstream.json_reply(answer)
    response = gw.post("/embeddings", {"model": "embed", "input": ["a", "b"]})
    assert response.status_code == 502 and "Gemini API returned" in response.json()["error"]["message"]


def test_embedding_errors_are_mapped(gw: Served, upstream: FakeUpstream):
    upstream.handler = upstream.json_reply(
        {"error": {"code": 429, "message": "Quota exceeded.", "status": "RESOURCE_EXHAUSTED"}}, status=429)
    response = gw.post("/embeddings", {"model": "embed", "input": "a"})
    assert response.status_code == 429
    assert response.json()["error"] == {"message": "Quota exceeded.", "type": "rate_limit_error", "param": None,
                                        "code": "resource_exhausted"}
