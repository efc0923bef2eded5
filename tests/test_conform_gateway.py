"""Conformance through the gateway: the recorded answers of Ollama, vLLM, llama.cpp server and LM
Studio (tests/fixtures/nonconforming) relayed by an ``openai``-type provider, every byte the
client receives checked against the official schema; conforming bytes relayed untouched."""

from __future__ import annotations

import json
from typing import Any

import httpx2
import pytest
from support import CLIENT_KEY, gateway_config
from test_conform import HERE, errors

from compatgate.sse import SSEDecoder
from compatgate.testing import OpenAISchema

CASES = [
    pytest.param(server, case, id=f"{server}-{case['file']}")
    for server in ("ollama", "vllm", "llamacpp", "lmstudio")
    for case in json.loads((HERE / server / "cases.json").read_text())
]
PATHS = {"chat.completions": "/chat/completions", "completions": "/completions", "embeddings": "/embeddings"}
BROKEN = {"chat_stream_abort.sse"}  # the upstream itself says the answer broke: it must never look complete


def config(url: str, conform: str) -> dict[str, Any]:
    settings = gateway_config(url)
    settings["providers"]["up"]["conform"] = conform
    settings["models"].append({"name": "local", "provider": "up"})
    return settings


def post(gw: Any, case: dict[str, Any]) -> httpx2.Response:
    body = {**case["request"], "model": "local"}
    if case["stream"]:
        body["stream"] = True
    return httpx2.post(f"{gw.url}{PATHS[case['endpoint']]}", json=body, timeout=10,
                       headers={"authorization": f"Bearer {CLIENT_KEY}"})


def events(content: bytes) -> list[bytes]:
    return [event.data for event in SSEDecoder().feed(content)]


@pytest.mark.parametrize(("server", "case"), CASES)
def test_every_byte_the_client_gets_conforms(server: str, case: dict[str, Any], make_gateway, upstream,
                                             openai_schema: OpenAISchema) -> None:
    fake, url = upstream
    content = (HERE / server / case["file"]).read_bytes()
    fake.handler = fake.sse_reply(content) if case["stream"] else fake.json_reply(content)
    gw = make_gateway(config(url, "auto"))
    response = post(gw, case)
    endpoint = case["endpoint"]
    if case["file"] in BROKEN:
        data = events(response.content)
        assert b"[DONE]" not in data and json.loads(data[-1])["error"]["code"] is not None
        return
    assert response.status_code == 200, response.text
    if not case["stream"]:
        data = response.json()
        assert errors(openai_schema, endpoint, data, chunk=False) == []
        if case["conforming"]:
            assert response.content == content  # auto: conforming bytes go out untouched
        return
    data = events(response.content)
    assert data[-1] == b"[DONE]"
    chunks = [json.loads(event) for event in data[:-1]]
    for chunk in chunks:
        assert errors(openai_schema, endpoint, chunk, chunk=True) == [], chunk
    assert len({chunk["id"] for chunk in chunks}) == 1
    assert any(choice.get("finish_reason") for chunk in chunks for choice in chunk["choices"])


@pytest.mark.parametrize("conform", ["off", "strict"])
def test_off_relays_as_sent_and_strict_keeps_only_the_schema(conform: str, make_gateway, upstream,
                                                             openai_schema: OpenAISchema) -> None:
    fake, url = upstream
    case = json.loads((HERE / "ollama" / "cases.json").read_text())[0]
    content = (HERE / "ollama" / case["file"]).read_bytes()
    fake.handler = fake.json_reply(content)
    gw = make_gateway(config(url, conform))
    response = post(gw, case)
    if conform == "off":
        assert response.content == content
    else:
        data = response.json()
        assert errors(openai_schema, "chat.completions", data, chunk=False) == []
        assert set(data) <= {"id", "object", "created", "model", "choices", "usage", "system_fingerprint",
                             "service_tier"}
        assert data["choices"][0]["message"]["content"] == json.loads(content)["choices"][0]["message"]["content"]


def test_base64_asked_floats_answered_are_encoded_like_openai(make_gateway, upstream) -> None:
    import base64
    import struct

    fake, url = upstream
    content = (HERE / "ollama" / "embeddings_base64_ignored.json").read_bytes()
    fake.handler = fake.json_reply(content)
    gw = make_gateway(config(url, "auto"))
    floats = json.loads(content)["data"][0]["embedding"]
    raw = httpx2.post(f"{gw.url}/embeddings", json={"model": "local", "input": "hi", "encoding_format": "base64"},
                      headers={"authorization": f"Bearer {CLIENT_KEY}"}).json()
    packed = base64.b64decode(raw["data"][0]["embedding"])
    assert packed == struct.pack(f"<{len(floats)}f", *floats)  # little-endian float32, as OpenAI sends it
    # The SDK asks for base64 on its own and decodes it: the floats, as float32.
    decoded = gw.client().embeddings.create(model="local", input="hi")
    assert decoded.data[0].embedding == list(struct.unpack(f"<{len(floats)}f", packed))
