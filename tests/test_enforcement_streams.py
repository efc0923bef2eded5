"""Issue 14, the answer side: aborted streams are charged, upstream secrets never leave, the
total timeout holds on every reply kind.

Each test names the defect it guards against and what the gateway did before the operation
table (commit 1ba4be6).
"""

from __future__ import annotations

import asyncio
import logging
import time

import httpx2
import orjson
import pytest
from enforcement_support import (
    AUTH,
    MESSAGES,
    chat_chunk,
    error_shape,
    post_form,
    post_json,
    response_event,
)
from support import UPSTREAM_KEY, Served, gateway_config

from compatgate.testing import FakeUpstream, fake_upstream, serve_gateway

NATIVE_KEY = "sk-native-upstream-SECRET-987654"
LIMIT = 1.0  # total_timeout of the slow provider, seconds


def config(url: str, tmp: str) -> dict:
    base = gateway_config(url, response_store_path=f"{tmp}/responses.sqlite3")
    base["providers"]["native"] = {"type": "openai", "base_url": f"{url}/v1", "api_key": NATIVE_KEY,
                                   "native_responses": True, "read_timeout": 5.0}
    base["providers"]["slow"] = {"type": "openai", "base_url": f"{url}/v1", "api_key": UPSTREAM_KEY,
                                 "native_responses": True, "read_timeout": 5.0, "total_timeout": LIMIT}
    base["models"] += [{"name": "gpt-native", "provider": "native", "upstream_model": "gpt-4o"},
                       {"name": "gpt-slow", "provider": "slow", "upstream_model": "gpt-4o"}]
    return base


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("streams")
    with fake_upstream() as (fake, url), serve_gateway(config(url, str(tmp)), served=Served) as gw:
        yield gw, fake


@pytest.fixture
def fake(shared) -> FakeUpstream:
    gw, fake = shared
    fake.handler = None
    fake.received.clear()
    fake.disconnects = 0
    fake.hung_up.clear()
    gw.usage.records.clear()
    return fake


@pytest.fixture
def gw(shared, fake) -> Served:
    return shared[0]


def slow_events(pieces: list[bytes], delay: float, media_type: bytes = b"text/event-stream",
                fake: FakeUpstream | None = None):
    """Send ``pieces`` ``delay`` apart (stopping when the gateway hangs up)."""

    async def handler(request, send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", media_type)]})
        for piece in pieces:
            await send({"type": "http.response.body", "body": piece, "more_body": True})
            for _ in range(int(delay / 0.01)):
                if fake is not None and fake.hung_up.is_set():
                    return
                await asyncio.sleep(0.01)
        await send({"type": "http.response.body", "body": b""})

    return handler


def read_then_leave(url: str, body: dict, events: int) -> list[bytes]:
    """Open a stream, read ``events`` SSE events, then hang up."""
    seen: list[bytes] = []
    with httpx2.stream("POST", url, json=body, headers=AUTH, timeout=10) as response:
        assert response.status_code == 200, response.read()
        for line in response.iter_lines():
            if line.startswith("data: "):
                seen.append(line.encode())
                if len(seen) >= events:
                    break
    return seen


# -- 6. aborted /responses streams are charged an estimate --------------------------------


def test_aborted_converted_responses_stream_is_estimated(gw, fake):
    """Defect 6. Before: a converted /responses stream learnt its usage only from the final
    chunk, so a client leaving early was recorded with no usage (charged 0); now the relayed
    text and the prompt are estimated, flagged ``estimated``."""
    words = [chat_chunk("word " * 20) for _ in range(40)]
    fake.handler = slow_events(words, 0.05, fake=fake)
    read_then_leave(f"{gw.url}/responses", {"model": "gpt-4o", "input": "Tell me a story " * 50,
                                            "stream": True}, events=8)
    assert fake.hung_up.wait(3)
    (record,) = gw.records(1)
    assert record.outcome == "aborted" and record.usage is not None and record.usage.estimated
    assert record.usage.prompt_tokens > 100 and record.usage.completion_tokens > 0


def test_aborted_native_responses_stream_is_estimated(gw, fake):
    """Defect 6, native (``native_responses = true``): the upstream's own event stream only
    states its usage in ``response.completed``; a client leaving before is charged the
    estimate of the deltas relayed. Before: charged 0."""
    events = [response_event("response.created", response={"id": "resp_1", "status": "in_progress"})]
    events += [response_event("response.output_text.delta", delta="word " * 20, item_id="m", output_index=0,
                              content_index=0) for _ in range(40)]
    fake.handler = slow_events(events, 0.05, fake=fake)
    read_then_leave(f"{gw.url}/responses", {"model": "gpt-native", "input": "Tell me a story " * 50,
                                            "stream": True}, events=6)
    assert fake.hung_up.wait(3)
    (record,) = gw.records(1)
    assert record.outcome == "aborted" and record.usage is not None and record.usage.estimated
    assert record.usage.prompt_tokens > 100 and record.usage.completion_tokens > 0


# -- 7. upstream secrets never leave ------------------------------------------------------


def _no_secret(*texts: object) -> None:
    for text in texts:
        shown = text if isinstance(text, str) else repr(text)
        assert UPSTREAM_KEY not in shown and NATIVE_KEY not in shown, shown


def test_secret_in_an_http_error_body(gw, fake, caplog):
    """Defect 7. The upstream echoes its key in an error body (as some do for a 401)."""
    caplog.set_level(logging.DEBUG)
    fake.handler = fake.json_reply({"error": {"message": f"Incorrect API key provided: {UPSTREAM_KEY}.",
                                              "type": "invalid_request_error", "code": "invalid_api_key"}},
                                   status=401)
    response = post_json(f"{gw.url}/chat/completions", {"model": "gpt-4o", "messages": MESSAGES})
    error = error_shape(response, 401)
    assert "***" in error["message"]
    (record,) = gw.records(1)
    _no_secret(response.text, dict(response.headers), record, caplog.text)


def test_secret_in_a_mid_stream_openai_error_event(gw, fake, caplog):
    """Defect 7. Before: an error event inside a chat stream went to the client and the usage
    record with the upstream's text as it was, key included."""
    caplog.set_level(logging.DEBUG)
    error = b'data: {"error": {"message": "upstream broke, key ' + UPSTREAM_KEY.encode() + b'", "type": "server_error"}}\n\n'
    fake.handler = fake.sse_reply(chat_chunk("Hi") + error)
    with httpx2.stream("POST", f"{gw.url}/chat/completions", headers=AUTH, timeout=10,
                       json={"model": "gpt-4o", "messages": MESSAGES, "stream": True}) as response:
        body = response.read().decode()
    assert '"error"' in body and "***" in body and "[DONE]" not in body
    (record,) = gw.records(1)
    assert record.outcome == "error"
    _no_secret(body, record, caplog.text)


def test_secret_in_a_converted_responses_stream_error(gw, fake, caplog):
    """Defect 7, the converted /responses stream: the upstream's chat error event becomes a
    ``response.failed`` whose message is scrubbed."""
    caplog.set_level(logging.DEBUG)
    error = b'data: {"error": {"message": "bad key ' + UPSTREAM_KEY.encode() + b'"}}\n\n'
    fake.handler = fake.sse_reply(chat_chunk("Hi") + error)
    with httpx2.stream("POST", f"{gw.url}/responses", headers=AUTH, timeout=10,
                       json={"model": "gpt-4o", "input": "hi", "stream": True}) as response:
        body = response.read().decode()
    assert "response.failed" in body and "***" in body
    _no_secret(body, gw.records(1), caplog.text)


def test_secret_in_a_native_response_failed_event(gw, fake, caplog):
    """Defect 7, native /responses: the upstream's own ``response.failed`` event carrying its
    key is relayed scrubbed. Before: relayed byte for byte."""
    caplog.set_level(logging.DEBUG)
    failed = response_event("response.failed", response={
        "id": "resp_1", "status": "failed", "error": {"code": "server_error", "message": f"key {NATIVE_KEY} refused"}})
    fake.handler = fake.sse_reply(response_event("response.created", response={"id": "resp_1"}) + failed)
    with httpx2.stream("POST", f"{gw.url}/responses", headers=AUTH, timeout=10,
                       json={"model": "gpt-native", "input": "hi", "stream": True}) as response:
        body = response.read().decode()
    assert "response.failed" in body and "***" in body
    _no_secret(body, gw.records(1), caplog.text)


def test_secret_in_a_native_responses_json_error_and_text_reply(gw, fake, caplog):
    """Defect 7: a non-streamed native /responses error, and a transcription's text reply."""
    caplog.set_level(logging.DEBUG)
    fake.handler = fake.json_reply({"error": {"message": f"nope {NATIVE_KEY}"}}, status=400)
    response = post_json(f"{gw.url}/responses", {"model": "gpt-native", "input": "hi"})
    error_shape(response, 400)
    text = f"transcribed: {UPSTREAM_KEY}\n".encode()

    async def plain(request, send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": text})

    fake.handler = plain
    transcript = post_form(f"{gw.url}/audio/transcriptions", ("model", "gpt-4o", None),
                           ("response_format", "text", None), ("file", b"RIFF" * 100, "a.wav"))
    assert transcript.status_code == 200 and "transcribed: ***" in transcript.text
    _no_secret(response.text, transcript.text, gw.records(2), caplog.text)


def test_secret_split_across_network_reads_of_a_text_reply(gw, fake):
    """Defect 7. A text reply (a transcription's ``text`` format) arriving in small reads: the
    key split between two of them must still be scrubbed."""
    text = f"transcribed: {UPSTREAM_KEY}\n".encode()

    async def trickle(request, send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        for index in range(0, len(text), 5):
            await send({"type": "http.response.body", "body": text[index:index + 5], "more_body": True})
            await asyncio.sleep(0.02)
        await send({"type": "http.response.body", "body": b""})

    fake.handler = trickle
    transcript = post_form(f"{gw.url}/audio/transcriptions", ("model", "gpt-4o", None),
                           ("response_format", "text", None), ("file", b"RIFF" * 100, "a.wav"))
    assert transcript.status_code == 200
    _no_secret(transcript.text)


# -- 8. total_timeout on byte-relayed replies ---------------------------------------------

SLOW = {
    "native responses stream": ("/responses", {"model": "gpt-slow", "input": "hi", "stream": True},
                                [response_event("response.output_text.delta", delta="x")] * 40, b"text/event-stream"),
    "speech": ("/audio/speech", {"model": "gpt-slow", "input": "hello", "voice": "alloy"},
               [b"\xff\xfb" * 512] * 40, b"audio/mpeg"),
}


@pytest.mark.parametrize("kind", [*SLOW, "text transcription"])
def test_total_timeout_ends_byte_relayed_replies(gw, fake, kind):
    """Defect 8. Before: ``total_timeout`` watched only chunk streams, so a native /responses
    stream, /audio/speech or a text transcription ran as long as the upstream kept sending
    (a 6 s limit ran 20 s). Now the reply is cut at the limit and recorded as an error."""
    if kind == "text transcription":
        fake.handler = slow_events([b"word "] * 40, 0.1, b"text/plain", fake=fake)
        started = time.monotonic()
        response = post_form(f"{gw.url}/audio/transcriptions", ("model", "gpt-slow", None),
                             ("response_format", "text", None), ("file", b"RIFF" * 100, "a.wav"))
    else:
        path, body, pieces, media_type = SLOW[kind]
        fake.handler = slow_events(pieces, 0.1, media_type, fake=fake)
        started = time.monotonic()
        with httpx2.stream("POST", f"{gw.url}{path}", json=body, headers=AUTH, timeout=10) as response:
            try:
                response.read()
            except httpx2.RemoteProtocolError:
                pass  # an unfinished body may end the connection instead
    elapsed = time.monotonic() - started
    assert response.status_code == 200
    assert elapsed < 3 * LIMIT, f"the reply ran {elapsed:.1f} s past a total_timeout of {LIMIT} s"
    (record,) = gw.records(1)
    assert record.outcome == "error" and "total_timeout" in (record.error or "")
    assert fake.hung_up.wait(3), "the upstream kept sending after the limit"


def test_total_timeout_holds_for_a_native_responses_json_answer(gw, fake):
    """Defect 8: a non-streamed answer that takes longer than the limit is a 504."""

    async def late(request, send) -> None:
        await asyncio.sleep(3 * LIMIT)
        await FakeUpstream.json_reply({"id": "resp_1", "object": "response", "output": []})(request, send)

    fake.handler = late
    started = time.monotonic()
    response = post_json(f"{gw.url}/responses", {"model": "gpt-slow", "input": "hi"})
    assert time.monotonic() - started < 2.5 * LIMIT
    assert error_shape(response, 504)["type"] == "timeout_error"
    assert orjson.loads(response.content)["error"]["code"] == "upstream_timeout"
