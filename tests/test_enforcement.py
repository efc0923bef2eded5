"""Issue 14, the request side: what the gateway checks and meters before anything goes upstream.

Each test names the defect it guards against (the numbers of issue 14) and what the gateway did
before the operation table (commit 1ba4be6). Stream-side defects are in
test_enforcement_streams.py, the response store in test_enforcement_store.py.
"""

from __future__ import annotations

import logging
import re

import httpx2
import orjson
import pytest
from enforcement_support import (
    AUTH,
    MESSAGES,
    Admissions,
    chat_answer,
    error_shape,
    post_form,
    post_json,
)
from support import CLIENT_KEY, Served, gateway_config

from compatgate.testing import fake_upstream, serve_gateway

WAV = b"RIFF" + bytes(range(256)) * 64  # 16 KiB of "audio"
TRANSCRIPT = {"text": "hello", "duration": 2.0}


def config(url: str, **gateway: object) -> dict:
    base = gateway_config(url, **gateway)
    base["models"] += [
        {"name": "whisper-cheap", "provider": "up", "upstream_model": "whisper-1"},
        {"name": "whisper-expensive", "provider": "up", "upstream_model": "gpt-4o-transcribe"},
        {"name": "capped", "provider": "up", "upstream_model": "capped-up", "max_output_tokens": 64},
        {"name": "dall-e", "provider": "up", "upstream_model": "dall-e-2"},
    ]
    return base


@pytest.fixture(scope="module")
def shared():
    """One upstream and one gateway for the module (starting servers is most of a test's time)."""
    with fake_upstream() as (fake, url), serve_gateway(config(url), (Admissions,), served=Served) as gw:
        yield gw, fake, url


@pytest.fixture
def upstream(shared):
    _, fake, url = shared
    fake.handler = None
    fake.received.clear()
    fake.disconnects = 0
    fake.hung_up.clear()
    return fake, url


@pytest.fixture
def gw(shared, upstream):
    gw = shared[0]
    gw.usage.records.clear()
    Admissions.of(gw).seen.clear()
    return gw


# -- 2. duplicate multipart fields --------------------------------------------------------


@pytest.mark.parametrize("order", ["model-file-model", "model-model-file"])
def test_duplicate_model_field_is_refused_and_never_forwarded(gw, upstream, order):
    """Defect 2. Before: ``model=whisper-cheap``, the file, ``model=whisper-expensive`` was
    authorised and billed as the cheap model while the upstream got both fields (and used the
    last); now the repeated checked field is a 400 ``duplicate_parameter`` and no complete
    request reaches the upstream, the expensive model never at all."""
    fake, _ = upstream
    fake.handler = fake.json_reply(TRANSCRIPT)
    audio = WAV + order.encode()  # this request's own upload (an earlier test's cut upload may arrive late)
    parts = {"model-file-model": [("model", "whisper-cheap", None), ("file", audio, "a.wav"),
                                  ("model", "whisper-expensive", None)],
             "model-model-file": [("model", "whisper-cheap", None), ("model", "whisper-expensive", None),
                                  ("file", audio, "a.wav")]}[order]
    response = post_form(f"{gw.url}/audio/transcriptions", *parts)
    error = error_shape(response, 400, "model")
    assert error["code"] == "duplicate_parameter"
    for received in fake.received:  # at most the start of an upload that was then cut off
        assert b"gpt-4o-transcribe" not in received.body and b"whisper-expensive" not in received.body
        assert not received.body.rstrip().endswith(b"--"), "a complete form reached the upstream"
    if order == "model-model-file":  # refused before the file: nothing of it went upstream
        assert not any(order.encode() in received.body for received in fake.received)
    (record,) = gw.records(1)
    assert (record.status_code, record.outcome) == (400, "error")


def test_file_first_form_is_served_and_metered_for_its_model(gw, upstream):
    """Defect 2, the Node SDK's order (the file before ``model``): served, the model routed and
    replaced once, the request recorded for the model the client named."""
    fake, _ = upstream
    fake.handler = fake.json_reply(TRANSCRIPT)
    response = post_form(f"{gw.url}/audio/transcriptions", ("file", WAV, "a.wav"),
                         ("model", "whisper-expensive", None), ("language", "en", None))
    assert response.status_code == 200, response.text
    (sent,) = fake.received
    assert sent.body.count(b'name="model"') == 1 and b"gpt-4o-transcribe" in sent.body
    assert WAV in sent.body and b'name="language"' in sent.body
    record = gw.records(1)[0]
    assert (record.model, record.upstream_model, record.outcome) == ("whisper-expensive", "gpt-4o-transcribe", "ok")
    assert record.units is not None and record.units.audio_seconds == 2.0


def test_late_checked_field_is_read_before_the_upload_goes_upstream(gw, upstream):
    """Defect 2/11. ``n`` (a field the gateway meters on /images/edits) sent after the image is
    still the one measured: the request is admitted for 3 images, and the upstream gets
    ``n`` exactly once. Before: the fields after the file were never read."""
    fake, _ = upstream
    fake.handler = fake.json_reply({"created": 1, "data": [{"b64_json": "eA=="}] * 3})
    response = post_form(f"{gw.url}/images/edits", ("model", "dall-e", None), ("prompt", "a hat", None),
                         ("image", WAV, "cat.png"), ("n", "3", None))
    assert response.status_code == 200, response.text
    assert Admissions.of(gw).units.images == 3
    assert fake.received[0].body.count(b'name="n"') == 1
    assert gw.records(1)[0].units.images == 3


# -- 3. reservations from the request as sent upstream ------------------------------------


def test_responses_max_tokens_is_neither_sent_nor_counted(gw, upstream):
    """Defect 3. Before: the converted /responses path dropped ``max_tokens`` (not a Responses
    field) and sent no limit, while billing reserved for the ``max_tokens`` the client wrote.
    Now what is reserved is what goes upstream: the model's configured cap, sent explicitly."""
    fake, _ = upstream
    fake.handler = fake.json_reply(chat_answer())
    response = post_json(f"{gw.url}/responses", {"model": "capped", "input": "Hi", "max_tokens": 100000})
    assert response.status_code == 200, response.text
    sent = fake.received[0].json
    assert "max_tokens" not in sent and sent["max_completion_tokens"] == 64
    assert Admissions.of(gw).units.output_tokens == 64


def test_responses_max_output_tokens_is_sent_and_reserved(gw, upstream):
    """Defect 3. Before: billing never read ``max_output_tokens``; now it becomes the chat
    request's ``max_completion_tokens`` and the reservation's output cap."""
    fake, _ = upstream
    fake.handler = fake.json_reply(chat_answer())
    response = gw.client().responses.create(model="gpt-4o", input="Hi", max_output_tokens=300)
    assert response.status == "completed"
    assert fake.received[0].json["max_completion_tokens"] == 300
    units = Admissions.of(gw).units
    assert units.output_tokens == 300 and units.capped


def test_completions_reserve_the_cap_the_upstream_honours(gw, upstream):
    """Defect 3. Before: ``max_completion_tokens: 1, max_tokens: 100000`` on /completions
    reserved for 1 while the upstream produced up to 100000; now the reservation is for the
    limit /completions honours (``max_tokens``)."""
    fake, _ = upstream
    fake.handler = fake.json_reply({"id": "cmpl-1", "object": "text_completion", "created": 1, "model": "x",
                                    "choices": [{"index": 0, "text": "hi", "finish_reason": "stop", "logprobs": None}],
                                    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}})
    response = post_json(f"{gw.url}/completions", {"model": "gpt-3.5-turbo-instruct", "prompt": "Say",
                                                   "max_completion_tokens": 1, "max_tokens": 100000})
    assert response.status_code == 200, response.text
    assert fake.received[0].json["max_tokens"] == 100000
    assert Admissions.of(gw).units.output_tokens == 100000


def test_configured_cap_is_sent_when_the_request_has_none(gw, upstream):
    """Defect 3. A model with ``max_output_tokens`` and a request without a limit: the cap is
    sent upstream and reserved, so what is reserved and what can be produced never diverge.
    Before: nothing was sent and billing reserved its own default."""
    fake, _ = upstream
    fake.handler = fake.json_reply(chat_answer())
    gw.client().chat.completions.create(model="capped", messages=MESSAGES)
    assert fake.received[0].json["max_completion_tokens"] == 64
    units = Admissions.of(gw).units
    assert units.output_tokens == 64 and not units.capped


def test_choices_multiply_the_reserved_output(gw, upstream):
    """Defect 3. ``n`` choices of ``max_tokens`` each: the worst case is their product."""
    fake, _ = upstream
    fake.handler = fake.json_reply(chat_answer())
    post_json(f"{gw.url}/chat/completions", {"model": "gpt-4o", "messages": MESSAGES, "max_tokens": 50, "n": 4})
    assert Admissions.of(gw).units.output_tokens == 200


# -- 5. absurd numbers --------------------------------------------------------------------

ABSURD = [
    ("/chat/completions", "max_tokens", b"9223372036854775807"),
    ("/chat/completions", "max_tokens", b"18446744073709551616"),
    ("/chat/completions", "max_completion_tokens", b"1e308"),
    ("/chat/completions", "max_tokens", b"-1"),
    ("/chat/completions", "max_tokens", b"0"),
    ("/chat/completions", "max_tokens", b"true"),
    ("/chat/completions", "max_tokens", b'"100"'),
    ("/chat/completions", "max_tokens", b"12.5"),
    ("/chat/completions", "n", b"100000000000"),
    ("/chat/completions", "n", b"-3"),
    ("/completions", "best_of", b"1e10"),
    ("/responses", "max_output_tokens", b"9223372036854775807"),
    ("/responses", "max_output_tokens", b"false"),
    ("/images/generations", "n", b"1e308"),
    ("/audio/speech", "n", b"-5"),
    ("/embeddings", "n", b"[1]"),
]
BODIES = {
    "/chat/completions": b'"messages": [{"role": "user", "content": "hi"}]',
    "/completions": b'"prompt": "hi"',
    "/responses": b'"input": "hi"',
    "/images/generations": b'"prompt": "a cat"',
    "/audio/speech": b'"input": "hi", "voice": "alloy"',
    "/embeddings": b'"input": "hi"',
}


@pytest.mark.parametrize(("path", "name", "value"), ABSURD)
def test_absurd_numbers_are_refused_with_their_param(gw, upstream, path, name, value):
    """Defect 5. Before: ``max_tokens: 9223372036854775807`` reached billing (an
    ``OverflowError``, 500, on SQLite) and the upstream; now every metering number is bounded
    at validation: 400 naming the parameter, nothing sent upstream."""
    fake, _ = upstream
    raw = b'{"model": "gpt-4o", ' + BODIES[path] + b', "' + name.encode() + b'": ' + value + b"}"
    error = error_shape(post_json(f"{gw.url}{path}", None, raw=raw), 400, name)
    assert error["type"] == "invalid_request_error"
    assert fake.received == [] and Admissions.of(gw).seen == []


@pytest.mark.parametrize("depth", [100, 300, 1100])
def test_deeply_nested_bodies_are_refused_not_a_500(gw, upstream, depth):
    """Found by the fuzz (issue 14): orjson reads 1024 levels of nesting but writes only 254,
    so a body nested 255 to 1024 levels deep was read, then failed to go upstream (500). Now
    more than 128 levels is a 400; a body within the bound is served."""
    fake, _ = upstream
    fake.handler = fake.json_reply(chat_answer())
    raw = b'{"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "metadata": ' + \
        b'{"a": ' * depth + b"1" + b"}" * depth + b"}"
    response = post_json(f"{gw.url}/chat/completions", None, raw=raw)
    if depth < 128:
        assert response.status_code == 200, response.text
    else:  # (past 1024 levels orjson itself refuses to read it)
        assert "nested" in error_shape(response, 400)["message"] or depth > 1024
        assert fake.received == []


# -- 10. malformed input ------------------------------------------------------------------

MALFORMED = [
    ({"tools": 5}, "tools"),
    ({"tools": True}, "tools"),
    ({"tools": {"type": "function"}}, "tools"),
    ({"tools": [5]}, "tools[0]"),
    ({"tools": [{"name": "x"}]}, "tools[0].type"),
    ({"input": 5}, "input"),
    ({"input": [5]}, "input[0]"),
    ({"input": [{"role": "user", "content": [{"type": "input_text", "text": 5}]}]}, "input[0].content[0].text"),
    ({"input": [{"role": "user", "content": [{"type": "input_text", "text": ["a"]}]}]}, "input[0].content[0].text"),
    ({"input": [{"role": "user", "content": [5]}]}, "input[0].content[0]"),
    ({"input": [{"role": 5, "content": "hi"}]}, "input[0].role"),
    ({"input": [{"role": "user", "content": 5}]}, "input[0].content"),
    ({"instructions": ["be nice"], "input": "hi"}, "instructions"),
    ({"previous_response_id": 7, "input": "hi"}, "previous_response_id"),
    ({"stream": "yes", "input": "hi"}, "stream"),
]


@pytest.mark.parametrize(("fields", "param"), MALFORMED)
def test_malformed_responses_requests_are_400_with_param(gw, upstream, fields, param):
    """Defect 10. Before: ``tools: 5``, ``tools: true`` or a non-string ``input_text`` made
    the conversion fail with a 500; now each is a 400 naming the parameter, before any
    upstream call."""
    fake, _ = upstream
    fake.handler = fake.json_reply(chat_answer())
    body = {"model": "gpt-4o", "input": "hi", **fields}
    error_shape(post_json(f"{gw.url}/responses", body), 400, param)
    assert fake.received == []


NONSENSE = [
    {"choices": {"a": 1}},
    {"choices": [5]},
    {"choices": [{"message": "hello"}]},
    {"choices": [{"message": {"content": 5}}]},
    {"choices": [{"message": {"content": "hi", "tool_calls": 5}}]},
    {"choices": [{"message": {"tool_calls": [5]}}]},
    {"choices": [{"message": {"tool_calls": [{"function": "f"}]}}]},
    {"choices": [{"message": {"reasoning_content": {"a": 1}}}]},
    {"choices": [{"message": {"content": "hi"}, "finish_reason": 5}], "usage": {"prompt_tokens": "x"}},
    {"choices": [{"message": {"content": "hi"}}], "usage": {"prompt_tokens_details": 5}},
    {"choices": "none"},
]


@pytest.mark.parametrize("answer", NONSENSE)
def test_upstream_nonsense_on_converted_responses_is_502(gw, upstream, answer):
    """Defect 10. Before: an upstream chat answer ``{"choices": {"a": 1}}`` on the converted
    /responses path was a 500 (a KeyError in the conversion); now it is a 502 saying the
    upstream's answer made no sense, and the request is recorded as an error."""
    fake, _ = upstream
    fake.handler = fake.json_reply(answer)
    response = post_json(f"{gw.url}/responses", {"model": "gpt-4o", "input": "hi"})
    assert response.status_code in (200, 502), response.text
    if response.status_code == 502:
        error_shape(response, 502)
    else:  # read as an answer that says little: still a valid, complete Response
        data = response.json()
        assert data["object"] == "response" and data["status"] in ("completed", "incomplete")
        assert all(isinstance(part["text"], str) for item in data["output"] if item["type"] == "message"
                   for part in item["content"] if part["type"] == "output_text")


# -- 11. model names, access log, aborts, the WebSocket subprotocol -----------------------

BAD_NAMES = ["gpt-4o\nrequest_id=forged outcome=ok", "gpt-4o\r", "gpt\x00-4o", "gpt-4o/../other", "../x",
             "./gpt-4o", "a//b", "gpt-4o\\..\\x", "x" * 257, ""]


@pytest.mark.parametrize("model", BAD_NAMES)
def test_model_names_that_could_forge_a_line_or_a_path_are_refused(gw, upstream, model, caplog):
    """Defects 1 and 11. Before: a newline in a model name wrote a forged line into the text
    access log, and ``..`` segments reached provider URLs; now such names are 400 (param
    ``model``) before routing, and the log line of the refusal stays one line."""
    fake, _ = upstream
    caplog.set_level(logging.INFO, logger="compatgate.access")
    error_shape(post_json(f"{gw.url}/chat/completions", {"model": model, "messages": MESSAGES}), 400, "model")
    assert fake.received == []
    gw.records(1)
    lines = [r.getMessage() for r in caplog.records if r.name == "compatgate.access"]
    assert len(lines) == 1 and "\n" not in lines[0] and "\r" not in lines[0] and "forged" not in lines[0]


def test_text_access_log_quotes_control_characters(make_gateway, upstream, caplog):
    """Defect 11. An upstream's error text with a newline and ``key=value`` pairs cannot forge
    an access-log line nor a field: values holding control characters, spaces, quotes or ``=``
    are written as JSON strings. Before: written as they were."""
    fake, url = upstream
    fake.handler = fake.json_reply({"error": {"message": "bad\nrequest_id=forged status=200 \"x\"",
                                              "type": "invalid_request_error"}}, status=400)
    gw = make_gateway(config(url))
    caplog.set_level(logging.INFO, logger="compatgate.access")
    response = post_json(f"{gw.url}/chat/completions", {"model": "gpt-4o", "messages": MESSAGES})
    assert response.status_code == 400
    gw.records(1)
    (line,) = [r.getMessage() for r in caplog.records if r.name == "compatgate.access"]
    assert "\n" not in line
    fields = re.findall(r'(\w+)=("(?:\\.|[^"\\])*"|\S*)(?: |$)', line)
    assert " ".join(f"{k}={v}" for k, v in fields) == line  # the whole line is key=value fields
    names = [name for name, _ in fields]
    assert len(names) == len(set(names)) and names[0] == "request_id"
    values = dict(fields)
    assert orjson.loads(values["error"]) == 'bad\nrequest_id=forged status=200 "x"'
    assert (values["model"], values["status"]) == ("gpt-4o", "400")  # plain values stay plain


def test_client_leaving_a_non_streamed_request_cancels_the_upstream_call(gw, upstream):
    """Defect 11. Before: the gateway kept waiting for the upstream after the client left and
    recorded a 504 when it timed out; now the upstream call is cancelled at once (the upstream
    sees the hang-up) and the request is recorded as aborted."""
    fake, _ = upstream

    async def stall(request, send):
        import asyncio

        await asyncio.sleep(10)

    fake.handler = stall
    with pytest.raises(httpx2.ReadTimeout):
        post_json(f"{gw.url}/chat/completions", {"model": "gpt-4o", "messages": MESSAGES}, timeout=0.5)
    assert fake.hung_up.wait(3), "the upstream call outlived the client"
    (record,) = gw.records(1)
    assert record.outcome == "aborted" and record.usage is None


def test_websocket_subprotocol_key_does_not_authenticate_http(gw, upstream):
    """Defect 11. Before: ``Sec-WebSocket-Protocol: openai-insecure-api-key.<key>`` was read
    as a key on any request; it is a WebSocket handshake's only, so a plain HTTP request
    carrying just that is 401."""
    fake, _ = upstream
    fake.handler = fake.json_reply(chat_answer())
    response = httpx2.post(f"{gw.url}/chat/completions", json={"model": "gpt-4o", "messages": MESSAGES},
                           headers={"sec-websocket-protocol": f"realtime, openai-insecure-api-key.{CLIENT_KEY}"})
    assert error_shape(response, 401)["code"] == "invalid_api_key"
    assert fake.received == []
    ok = httpx2.post(f"{gw.url}/chat/completions", json={"model": "gpt-4o", "messages": MESSAGES}, headers=AUTH)
    assert ok.status_code == 200
