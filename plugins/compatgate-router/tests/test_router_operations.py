"""Operations beyond chat, completions and embeddings through a group: served by the planned
deployment like a ``[[models]]`` entry would be, with retries and fallbacks where the body can
be sent again (each deployment gets it under its own model, as metered), a single try for an
upload relayed as it arrives, no try of a deployment that cannot serve the operation, and a
realtime session opened on the first deployment that connects."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import json

import httpx2
import openai
import pytest
from websockets.sync.client import connect

from router_support import CLIENT_KEY, Served, closed_port, completion, error_reply, gateway_config, group

from compatgate.testing import FakeUpstream, OpenAISchema, serve
from compatgate_router import Router

Upstreams = dict[str, tuple[FakeUpstream, str]]
FAST = {"backoff_base": 0.01, "backoff_max": 0.05}
AUTH = {"authorization": f"Bearer {CLIENT_KEY}"}
IMAGES = {"created": 1, "data": [{"b64_json": "aGVsbG8="}, {"b64_json": "d29ybGQ="}],
          "usage": {"input_tokens": 5, "output_tokens": 10, "total_tokens": 15,
                    "input_tokens_details": {"text_tokens": 5, "image_tokens": 0}}}


def router(**groups: Any) -> dict[str, Any]:
    return {"strategy": "ordered", "retry": dict(FAST), "groups": groups}


def test_images_fall_back_with_each_deployments_model(make_gateway: Callable[..., Served], upstreams: Upstreams,
                                                      openai_schema: OpenAISchema):
    primary, backup = upstreams["primary"][0], upstreams["backup"][0]
    primary.handler = error_reply(503, "primary is down")
    backup.handler = FakeUpstream.json_reply(IMAGES)
    gw = make_gateway(router(painter=group("primary", "backup")))
    response = gw.client().images.with_raw_response.generate(model="painter", prompt="a cat", n=2)
    assert response.parse().data[0].b64_json == "aGVsbG8="
    openai_schema.validate("ImagesResponse", IMAGES)
    assert (response.headers["x-compatgate-provider"], response.headers["x-compatgate-attempts"]) == ("backup", "2")
    assert [r.json for r in primary.received] == [{"model": "primary-model", "prompt": "a cat", "n": 2}]
    assert [r.json for r in backup.received] == [{"model": "backup-model", "prompt": "a cat", "n": 2}]
    record = gw.records(1)[0]
    assert (record.endpoint, record.provider, record.upstream_model) == ("images.generations", "backup", "backup-model")
    assert [(a.provider, a.status_code) for a in record.attempts] == [("primary", 503), ("backup", 200)]
    assert record.units is not None and record.units.images == 2


def test_responses_served_through_chat_fall_back(make_gateway: Callable[..., Served], upstreams: Upstreams):
    primary, backup = upstreams["primary"][0], upstreams["backup"][0]
    primary.handler = error_reply(500, "primary failed")
    backup.handler = FakeUpstream.json_reply(completion("From the backup."))
    gw = make_gateway(router(**{"gpt-4o": group("primary", "backup")}))
    answer = httpx2.post(f"{gw.url}/responses", headers=AUTH, timeout=10,
                         json={"model": "gpt-4o", "input": "Hello?", "store": False})
    assert answer.status_code == 200, answer.text
    assert answer.json()["output"][0]["content"][0]["text"] == "From the backup."
    assert answer.headers["x-compatgate-attempts"] == "2"
    assert [r.path for r in primary.received + backup.received] == ["/v1/chat/completions"] * 2
    assert [r.json["model"] for r in backup.received] == ["backup-model"]
    assert backup.received[0].json["messages"] == primary.received[0].json["messages"]
    assert gw.records(1)[0].provider == "backup"


def test_an_upload_relayed_as_it_arrives_gets_one_try(make_gateway: Callable[..., Served], upstreams: Upstreams):
    primary, backup = upstreams["primary"][0], upstreams["backup"][0]
    primary.handler = error_reply(500, "primary failed")
    backup.handler = FakeUpstream.json_reply({"text": "hello"})
    gw = make_gateway(router(whisper=group("primary", "backup")))
    with pytest.raises(openai.InternalServerError) as info:
        gw.client().audio.transcriptions.create(model="whisper", file=("a.wav", b"RIFF" + b"\x00" * 4000, "audio/wav"))
    assert info.value.response.headers["x-compatgate-attempts"] == "1"
    assert len(primary.received) == 1 and backup.received == []
    assert b'name="model"\r\n\r\nprimary-model' in primary.received[0].body
    primary.handler = FakeUpstream.json_reply({"text": "hello"})
    result = gw.client().audio.transcriptions.with_raw_response.create(
        model="whisper", file=("a.wav", b"RIFF" + b"\x00" * 4000, "audio/wav"))
    assert result.parse().text == "hello" and result.headers["x-compatgate-provider"] == "primary"


def test_a_deployment_that_cannot_serve_the_operation_is_not_tried(upstreams: Upstreams,
                                                                   gateways: Callable[..., Served]):
    primary = upstreams["primary"][0]
    primary.handler = error_reply(503, "primary is down")
    config = gateway_config({"primary": upstreams["primary"][1]},
                            router(painter={"deployments": [{"provider": "primary", "upstream_model": "p"},
                                                            {"provider": "offline", "upstream_model": "demo"}]}))
    config["providers"]["offline"] = {"type": "demo"}
    gw = gateways(config, (Router,), served=Served)
    with pytest.raises(openai.InternalServerError) as info:
        gw.client().images.generate(model="painter", prompt="a cat")
    assert info.value.status_code == 503 and info.value.response.headers["x-compatgate-attempts"] == "3"
    assert [a.provider for a in gw.records(1)[0].attempts] == ["primary"] * 3  # retried, never the demo
    chat = gw.chat("painter")  # the demo serves chat; the primary cools down after three failures
    assert chat.headers["x-compatgate-provider"] == "offline" and chat.headers["x-compatgate-attempts"] == "1"
    assert len(primary.received) == 3


async def realtime_upstream(scope: Any, receive: Any, send: Any) -> None:
    """A realtime upstream that greets the session and echoes each event's type."""
    if scope["type"] != "websocket":
        return
    await receive()
    await send({"type": "websocket.accept"})
    await send({"type": "websocket.send", "text": json.dumps({"type": "session.created"})})
    while (message := await receive())["type"] != "websocket.disconnect":
        kind = json.loads(message["text"])["type"]
        await send({"type": "websocket.send", "text": json.dumps({"type": f"{kind}.seen"})})


def test_a_realtime_session_opens_on_the_first_deployment_that_connects(gateways: Callable[..., Served]):
    with serve(realtime_upstream) as url:
        urls = {"primary": f"http://127.0.0.1:{closed_port()}", "backup": url}
        gw = gateways(gateway_config(urls, router(voice=group("primary", "backup"))), (Router,), served=Served)
        address = gw.url.replace("http://", "ws://") + "/realtime?model=voice"
        with connect(address, additional_headers={"Authorization": f"Bearer {CLIENT_KEY}"}) as socket:
            assert json.loads(socket.recv(timeout=5)) == {"type": "session.created"}
            socket.send(json.dumps({"type": "response.create"}))
            assert json.loads(socket.recv(timeout=5)) == {"type": "response.create.seen"}
        record = gw.records(1)[0]
    assert (record.endpoint, record.provider, record.upstream_model) == ("realtime", "backup", "backup-model")
