"""Keep-alives while a stream's upstream is silent (a reasoning model thinking): before its
first byte (the answer is started early) and between two chunks; never inside an event, and a
later failure still ends the stream as an error, never as a complete answer."""

from __future__ import annotations

import asyncio

import httpx2
import pytest
from support import CLIENT_KEY, FIXTURES, gateway_config

from compatgate.sse import SSEDecoder

RECORDING = FIXTURES / "openai-sse" / "e2aad469b71d1d4894ff833ea147020a9d875eb7ce644a0ff355581690a4cbfd.bin"
BODY = {"model": "gpt-4o", "messages": [{"role": "user", "content": "think"}], "stream": True}


def slow(before_headers: float, content: bytes, status: int = 200, between: float = 0.0):
    """An upstream that thinks ``before_headers`` seconds before answering, then sends
    ``content`` (events ``between`` seconds apart)."""

    async def handler(request, send) -> None:
        await asyncio.sleep(before_headers)
        kind = b"text/event-stream" if status == 200 else b"application/json"
        await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", kind)]})
        for event in content.split(b"\n\n") if between else [content]:
            if between:
                await asyncio.sleep(between)
                event += b"\n\n"
            await send({"type": "http.response.body", "body": event, "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    return handler


def stream(gw) -> httpx2.Response:
    return httpx2.post(f"{gw.url}/chat/completions", json=BODY, timeout=20,
                       headers={"authorization": f"Bearer {CLIENT_KEY}"})


def test_a_silent_upstream_gets_keepalives_before_its_first_byte(make_gateway, upstream):
    fake, url = upstream
    fake.handler = slow(1.3, RECORDING.read_bytes())
    gw = make_gateway(gateway_config(url, keepalive_seconds=0.4))
    response = stream(gw)
    assert response.status_code == 200
    assert response.text.startswith(": keep-alive\n\n: keep-alive\n\n")
    events = SSEDecoder().feed(response.content)
    assert events[-1].data == b"[DONE]"
    # The SDK reads through the comments as if they were not there.
    text = "".join(chunk.choices[0].delta.content or "" for chunk in gw.client().chat.completions.create(
        **{**BODY, "stream": True}) if chunk.choices)
    assert text
    (record, _) = gw.records(2)
    assert (record.outcome, record.status_code) == ("ok", 200)


def test_an_error_after_the_early_start_is_an_error_event(make_gateway, upstream):
    fake, url = upstream
    fake.handler = slow(1.0, b'{"error": {"message": "overloaded", "type": "server_error"}}', status=503)
    gw = make_gateway(gateway_config(url, keepalive_seconds=0.3))
    response = stream(gw)
    assert response.status_code == 200  # already sent with the first keep-alive
    events = SSEDecoder().feed(response.content)
    assert [e.data for e in events if e.data == b"[DONE]"] == []
    assert b'"overloaded"' in events[-1].data and b'"error"' in events[-1].data
    (record,) = gw.records(1)
    assert (record.outcome, record.status_code) == ("error", 200)
    assert response.headers["content-type"].startswith("text/event-stream")


def test_keepalives_between_chunks_never_split_an_event(make_gateway, upstream):
    fake, url = upstream
    fake.handler = slow(0.0, RECORDING.read_bytes(), between=0.25)
    gw = make_gateway(gateway_config(url, keepalive_seconds=0.1))
    response = stream(gw)
    events = SSEDecoder().feed(response.content)
    assert events[-1].data == b"[DONE]" and b": keep-alive\n\n" in response.content
    for block in response.content.split(b"\n\n")[:-1]:  # every block is a whole event or a comment
        assert block.startswith((b"data: ", b": keep-alive")), block


@pytest.mark.parametrize("seconds", [0])
def test_keepalive_off(seconds, make_gateway, upstream):
    fake, url = upstream
    fake.handler = slow(0.6, RECORDING.read_bytes())
    gw = make_gateway(gateway_config(url, keepalive_seconds=seconds))
    assert b"keep-alive" not in stream(gw).content
