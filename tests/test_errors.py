"""The error table: every refusal and failure answers in the OpenAI error format, keeps secrets
out of the body and is recorded exactly once."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx2
import openai
import orjson
import pytest
from starlette.types import Send

from support import CLIENT_KEY, UPSTREAM_KEY, Served, gateway_config

from compatgate import Principal, RateLimitError, RequestContext, UsageRecord, hookimpl
from compatgate.testing import FakeUpstream, OpenAISchema, Received

MESSAGES = [{"role": "user", "content": "Hello"}]
CHAT = {"model": "gpt-4o", "messages": MESSAGES}
AUTH = {"authorization": f"Bearer {CLIENT_KEY}"}
COMPLETION = {
    "id": "chatcmpl-1", "object": "chat.completion", "created": 1727346172, "model": "gpt-4o-2024-08-06",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi.", "refusal": None},
                 "logprobs": None, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
}


def post(gw: Served, path: str, body: Any = None, *, content: Any = None,
         headers: dict[str, str] | None = None) -> httpx2.Response:
    headers = AUTH if headers is None else headers
    if content is None:
        content = orjson.dumps(body)
        headers = {"content-type": "application/json", **headers}
    return httpx2.post(f"{gw.url}{path}", content=content, headers=headers, timeout=10)


def check_error(
    response: httpx2.Response,
    schema: OpenAISchema,
    status: int,
    *,
    code: str | None = None,
    param: str | None = None,
    type: str | None = None,
) -> dict[str, Any]:
    """The error object of an OpenAI-format error response with ``status``."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    schema.validate("ErrorResponse", body)
    assert list(body) == ["error"]
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["message"]
    assert error["code"] == code and error["param"] == param
    if type is not None:
        assert error["type"] == type
    return error


def check_sdk_error(error: openai.APIStatusError, schema: OpenAISchema, status: int) -> dict[str, Any]:
    assert error.status_code == status
    body = error.response.json()
    schema.validate("ErrorResponse", body)
    assert error.code == body["error"]["code"] and error.param == body["error"]["param"]
    return body["error"]


def one_record(gw: Served, status: int) -> UsageRecord:
    """The single usage record of the one API request the test made."""
    records = gw.records(1)
    time.sleep(0.05)  # a second record would come right after the first
    assert len(records) == 1, records
    record = records[0]
    assert (record.outcome, record.status_code) == ("error", status)
    assert record.usage is None or status == 500
    assert record.error
    return record


def no_record(gw: Served) -> None:
    time.sleep(0.05)
    assert gw.usage.records == []


# -- 400 ----------------------------------------------------------------------------------


BAD_REQUESTS = {
    "invalid-json": ("/chat/completions", b'{"model": "gpt-4o", "messages": [', None, None),
    "empty-body": ("/chat/completions", b"", None, None),
    "whitespace-body": ("/chat/completions", b"  \n", None, None),
    "json-array": ("/chat/completions", b'[{"model": "gpt-4o"}]', None, None),
    "json-string": ("/embeddings", b'"text-embedding-3-small"', None, None),
    "missing-model": ("/chat/completions", {"messages": MESSAGES}, "model", "missing_required_parameter"),
    "null-model": ("/chat/completions", {"model": None, "messages": MESSAGES}, "model", "missing_required_parameter"),
    "model-not-string": ("/chat/completions", {"model": 4, "messages": MESSAGES}, "model", "invalid_type"),
    "model-empty": ("/chat/completions", {"model": "", "messages": MESSAGES}, "model", "invalid_value"),
    "missing-messages": ("/chat/completions", {"model": "gpt-4o"}, "messages", "missing_required_parameter"),
    "empty-messages": ("/chat/completions", {"model": "gpt-4o", "messages": []}, "messages", "empty_array"),
    "messages-not-array": ("/chat/completions", {"model": "gpt-4o", "messages": "hi"}, "messages", "invalid_type"),
    "message-not-object": ("/chat/completions", {"model": "gpt-4o", "messages": ["hi"]}, "messages[0]",
                           "invalid_type"),
    "message-without-role": ("/chat/completions", {"model": "gpt-4o", "messages": [*MESSAGES, {"content": "x"}]},
                             "messages[1].role", "missing_required_parameter"),
    "stream-not-boolean": ("/chat/completions", {**CHAT, "stream": "yes"}, "stream", "invalid_type"),
    "stream-number": ("/chat/completions", {**CHAT, "stream": 1}, "stream", "invalid_type"),
    "n-zero": ("/chat/completions", {**CHAT, "n": 0}, "n", "invalid_value"),
    "n-boolean": ("/chat/completions", {**CHAT, "n": True}, "n", "invalid_value"),
    "missing-prompt": ("/completions", {"model": "gpt-3.5-turbo-instruct"}, "prompt", "missing_required_parameter"),
    "embeddings-missing-input": ("/embeddings", {"model": "text-embedding-3-small"}, "input",
                                 "missing_required_parameter"),
    "embeddings-empty-input": ("/embeddings", {"model": "text-embedding-3-small", "input": []}, "input",
                               "invalid_value"),
    "embeddings-empty-string": ("/embeddings", {"model": "text-embedding-3-small", "input": ""}, "input",
                                "invalid_value"),
    "embeddings-bad-encoding": ("/embeddings", {"model": "text-embedding-3-small", "input": "x",
                                                "encoding_format": "hex"}, "encoding_format", "invalid_value"),
    "embeddings-streamed": ("/embeddings", {"model": "text-embedding-3-small", "input": "x", "stream": True},
                            "stream", "invalid_value"),
}


@pytest.mark.parametrize("case", list(BAD_REQUESTS))
def test_bad_request(gw: Served, upstream, openai_schema: OpenAISchema, case: str):
    path, body, param, code = BAD_REQUESTS[case]
    if isinstance(body, bytes):
        response = post(gw, path, content=body, headers={**AUTH, "content-type": "application/json"})
    else:
        response = post(gw, path, body)
    error = check_error(response, openai_schema, 400, code=code, param=param, type="invalid_request_error")
    if param is not None:
        assert param.split("[")[0] in error["message"]
    assert upstream[0].received == []
    record = one_record(gw, 400)
    assert record.key_id == "static:0" and record.provider is None


def test_bad_request_through_the_sdk(gw: Served, upstream, openai_schema: OpenAISchema):
    client = gw.client()
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="gpt-4o", messages=[])
    assert check_sdk_error(info.value, openai_schema, 400)["param"] == "messages"
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES, n=0)
    assert info.value.param == "n" and info.value.code == "invalid_value"
    with pytest.raises(openai.BadRequestError) as info:
        client.embeddings.create(model="text-embedding-3-small", input=[])
    assert info.value.param == "input"
    with pytest.raises(openai.BadRequestError) as info:
        client.embeddings.create(model="text-embedding-3-small", input="x", encoding_format="hex")  # type: ignore[arg-type]
    assert info.value.param == "encoding_format"
    assert upstream[0].received == []
    records = gw.records(4)
    assert [(r.outcome, r.status_code) for r in records] == [("error", 400)] * 4
    assert [r.endpoint for r in records] == ["chat.completions", "chat.completions", "embeddings", "embeddings"]


# -- 401 / 403 ------------------------------------------------------------------------------

WRONG_KEY = "sk-wrong-key-9f8e7d6c5b4a"


@pytest.mark.parametrize(
    "headers",
    [{}, {"authorization": ""}, {"authorization": "Bearer"}, {"authorization": f"Basic {WRONG_KEY}"}],
    ids=["none", "empty", "empty-bearer", "not-bearer"],
)
def test_no_key(gw: Served, upstream, openai_schema: OpenAISchema, headers: dict[str, str]):
    error = check_error(post(gw, "/chat/completions", CHAT, headers=headers), openai_schema, 401,
                        code="invalid_api_key")
    assert "API key" in error["message"] and WRONG_KEY not in error["message"]
    assert upstream[0].received == []
    assert one_record(gw, 401).key_id is None


@pytest.mark.parametrize("header", ["authorization", "x-api-key"])
def test_wrong_key(gw: Served, upstream, openai_schema: OpenAISchema, header: str):
    value = f"Bearer {WRONG_KEY}" if header == "authorization" else WRONG_KEY
    response = post(gw, "/chat/completions", CHAT, headers={header: value})
    check_error(response, openai_schema, 401, code="invalid_api_key", type="invalid_request_error")
    assert WRONG_KEY not in response.text and WRONG_KEY[-6:] not in response.text
    assert all(WRONG_KEY not in value for value in response.headers.values())
    assert upstream[0].received == []
    assert one_record(gw, 401).key_id is None


def test_wrong_key_through_the_sdk(gw: Served, openai_schema: OpenAISchema):
    with pytest.raises(openai.AuthenticationError) as info:
        gw.client(WRONG_KEY).chat.completions.create(model="gpt-4o", messages=MESSAGES)
    check_sdk_error(info.value, openai_schema, 401)
    assert WRONG_KEY not in info.value.response.text
    one_record(gw, 401)
    with pytest.raises(openai.AuthenticationError):
        gw.client(WRONG_KEY).models.list()


def test_the_right_key_works_in_either_header(gw: Served, upstream):
    upstream[0].handler = FakeUpstream.json_reply(COMPLETION)
    for headers in (AUTH, {"x-api-key": CLIENT_KEY}):
        assert post(gw, "/chat/completions", CHAT, headers=headers).status_code == 200
    assert [r.outcome for r in gw.records(2)] == ["ok", "ok"]


class Restricted:
    """Accepts "sk-limited" for the gpt-4o family only."""

    def __init__(self, gateway: object) -> None:
        pass

    @hookimpl
    def authenticate(self, api_key: str | None) -> Principal | None:
        return Principal("k1", allowed_models=("gpt-4o*",)) if api_key == "sk-limited" else None


def test_model_not_allowed(make_gateway: Callable[..., Served], upstream, openai_schema: OpenAISchema):
    gw = make_gateway(plugins=(Restricted,))
    client = gw.client("sk-limited")
    with pytest.raises(openai.PermissionDeniedError) as info:
        client.embeddings.create(model="text-embedding-3-small", input="hello")
    error = check_sdk_error(info.value, openai_schema, 403)
    assert (error["code"], error["param"]) == ("model_not_allowed", "model")
    assert "text-embedding-3-small" in error["message"]
    assert upstream[0].received == []
    record = one_record(gw, 403)
    assert (record.key_id, record.model, record.endpoint) == ("k1", "text-embedding-3-small", "embeddings")
    # The same key still sees and uses what it may; the static key is untouched.
    assert [m.id for m in client.models.list()] == ["gpt-4o"]
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("text-embedding-3-small")
    upstream[0].handler = FakeUpstream.json_reply(COMPLETION)
    assert client.chat.completions.create(model="gpt-4o", messages=MESSAGES).choices[0].message.content == "Hi."
    assert len(gw.client().models.list().data) == 3


# -- 404 / 405 ------------------------------------------------------------------------------


def test_unknown_model(gw: Served, upstream, openai_schema: OpenAISchema):
    with pytest.raises(openai.NotFoundError) as info:
        gw.client().chat.completions.create(model="gpt-9-ultra", messages=MESSAGES)
    error = check_sdk_error(info.value, openai_schema, 404)
    assert (error["code"], error["param"], error["type"]) == ("model_not_found", "model", "invalid_request_error")
    assert "gpt-9-ultra" in error["message"]
    assert upstream[0].received == []
    record = one_record(gw, 404)
    assert record.model == "gpt-9-ultra" and record.provider is None
    check_error(httpx2.get(f"{gw.url}/models/gpt-9-ultra", headers=AUTH, timeout=10), openai_schema, 404,
                code="model_not_found", param="model")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/files"),
        ("POST", "/files"),
        ("POST", "/fine_tuning/jobs"),
        ("GET", "/organization/usage/completions"),
        ("GET", "/organization/costs"),
        ("GET", "/billing/usage"),
        ("POST", "/assistants"),
    ],
)
def test_unsupported_route(gw: Served, openai_schema: OpenAISchema, method: str, path: str):
    response = httpx2.request(method, f"{gw.url}{path}", headers=AUTH, timeout=10)
    error = check_error(response, openai_schema, 404, code="unsupported_endpoint")
    assert "not supported" in error["message"] and path in error["message"]
    no_record(gw)


def test_unsupported_route_through_the_sdk(gw: Served, openai_schema: OpenAISchema):
    with pytest.raises(openai.NotFoundError) as info:
        gw.client().files.list()
    assert "not supported" in check_sdk_error(info.value, openai_schema, 404)["message"]


@pytest.mark.parametrize("path", ["/", "/nothing/here", "/chat", "/v2/chat/completions", "/models-x"])
def test_unknown_url(gw: Served, openai_schema: OpenAISchema, path: str):
    response = httpx2.post(f"{gw.url}{path}", headers=AUTH, json=CHAT, timeout=10)
    error = check_error(response, openai_schema, 404, code="unknown_url")
    assert path in error["message"]
    no_record(gw)


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
def test_method_not_allowed(gw: Served, upstream, openai_schema: OpenAISchema, method: str):
    response = httpx2.request(method, f"{gw.url}/chat/completions", headers=AUTH, timeout=10)
    error = check_error(response, openai_schema, 405, code="method_not_allowed")
    assert response.headers["allow"] == "POST" and method in error["message"]
    assert upstream[0].received == []
    one_record(gw, 405)


def test_method_not_allowed_on_models(gw: Served, openai_schema: OpenAISchema):
    response = httpx2.post(f"{gw.url}/models", headers=AUTH, json={}, timeout=10)
    check_error(response, openai_schema, 405, code="method_not_allowed")
    assert response.headers["allow"] == "GET"


# -- 413 ------------------------------------------------------------------------------------

LIMIT = 2048


def big_body() -> bytes:
    body = orjson.dumps({"model": "gpt-4o", "messages": [{"role": "user", "content": "x" * (LIMIT * 2)}]})
    assert len(body) > LIMIT
    return body


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_body_too_large(make_gateway: Callable[..., Served], upstream, openai_schema: OpenAISchema, framing: str):
    gw = make_gateway(gateway_config(upstream[1], max_request_bytes=LIMIT))
    body = big_body()

    def pieces() -> Iterator[bytes]:
        for start in range(0, len(body), 512):
            yield body[start:start + 512]

    content = body if framing == "content-length" else pieces()
    headers = {**AUTH, "content-type": "application/json"}
    response = httpx2.post(f"{gw.url}/chat/completions", content=content, headers=headers, timeout=10)
    request_headers = response.request.headers
    assert ("content-length" in request_headers) == (framing == "content-length")
    error = check_error(response, openai_schema, 413, code="request_too_large", type="invalid_request_error")
    assert str(LIMIT) in error["message"]
    assert upstream[0].received == []
    one_record(gw, 413)


def test_body_at_the_limit_is_accepted(make_gateway: Callable[..., Served], upstream):
    fake, url = upstream
    fake.handler = fake.json_reply(COMPLETION)
    body = orjson.dumps(CHAT)
    gw = make_gateway(gateway_config(url, max_request_bytes=len(body)))
    assert post(gw, "/chat/completions", content=body, headers={**AUTH, "content-type": "application/json"}
                ).status_code == 200


def test_body_too_large_through_the_sdk(make_gateway: Callable[..., Served], upstream):
    gw = make_gateway(gateway_config(upstream[1], max_request_bytes=LIMIT))
    with pytest.raises(openai.APIStatusError) as info:
        gw.client().chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x" * LIMIT}])
    assert info.value.status_code == 413 and info.value.code == "request_too_large"


# -- upstream errors ------------------------------------------------------------------------


def echo_auth(status: int, body: Callable[[str], Any], content_type: str = "application/json") -> Callable:
    """An upstream answering ``status`` with a body that quotes the Authorization it received."""

    async def handler(request: Received, send: Send) -> None:
        made = body(request.headers.get("authorization", ""))
        content = made if isinstance(made, bytes) else orjson.dumps(made)
        headers = [(b"content-type", content_type.encode()), (b"content-length", str(len(content)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": content})

    return handler


UPSTREAM_ERRORS: dict[str, tuple[int, Callable[[str], Any], str, type[openai.APIStatusError]]] = {
    "400": (400, lambda auth: {"error": {
        "message": "Invalid value for 'temperature': must be at most 2.", "type": "invalid_request_error",
        "param": "temperature", "code": "invalid_value"}}, "application/json", openai.BadRequestError),
    "401": (401, lambda auth: {"error": {
        "message": f"Incorrect API key provided: {auth.removeprefix('Bearer ')}. Header was '{auth}'.",
        "type": "invalid_request_error", "param": None, "code": "invalid_api_key"}},
        "application/json", openai.AuthenticationError),
    "429": (429, lambda auth: {"error": {
        "message": "Rate limit reached for gpt-4o on tokens per min (TPM): Limit 30000, Used 30000.",
        "type": "tokens", "param": None, "code": "rate_limit_exceeded"}}, "application/json", openai.RateLimitError),
    "500": (500, lambda auth: {"error": {
        "message": f"The server had an error while processing your request ({auth}).", "type": "server_error",
        "param": None, "code": None}}, "application/json", openai.InternalServerError),
    "503": (503, lambda auth: f"Service Unavailable: overloaded, retry later. Got {auth}".encode(),
            "text/plain", openai.InternalServerError),
}


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize("case", list(UPSTREAM_ERRORS))
def test_upstream_error_keeps_its_status(gw: Served, upstream, openai_schema: OpenAISchema, case: str,
                                         stream: bool):
    fake, _ = upstream
    status, body, content_type, exception = UPSTREAM_ERRORS[case]
    fake.handler = echo_auth(status, body, content_type)
    with pytest.raises(exception) as info:
        result = gw.client().chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=stream)
        list(result) if stream else None  # type: ignore[call-overload]
    error = check_sdk_error(info.value, openai_schema, status)
    assert fake.received[-1].headers["authorization"] == f"Bearer {UPSTREAM_KEY}"
    text = info.value.response.text
    assert UPSTREAM_KEY not in text and UPSTREAM_KEY[-8:] not in text
    assert all(UPSTREAM_KEY not in value for value in info.value.response.headers.values())
    sent = body(f"Bearer {UPSTREAM_KEY}")
    if isinstance(sent, bytes):
        assert error["message"] == sent.decode().replace(UPSTREAM_KEY, "***")
        assert error["type"] == "api_error"
    else:
        expected = {**sent["error"], "message": sent["error"]["message"].replace(UPSTREAM_KEY, "***")}
        if expected["code"] is None:
            expected.pop("code")
        assert {k: v for k, v in error.items() if k in expected} == expected
    if case in ("401", "500", "503"):
        assert "***" in error["message"]
    record = one_record(gw, status)
    assert (record.provider, record.upstream_model, record.streamed) == ("up", "gpt-4o-2024-08-06", stream)
    assert UPSTREAM_KEY not in (record.error or "")


def test_upstream_error_without_body(gw: Served, upstream, openai_schema: OpenAISchema):
    upstream[0].handler = echo_auth(502, lambda auth: b"")
    response = post(gw, "/chat/completions", CHAT)
    error = check_error(response, openai_schema, 502, code="upstream_error")
    assert "502" in error["message"]
    one_record(gw, 502)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_unreachable_upstream(make_gateway: Callable[..., Served], openai_schema: OpenAISchema):
    gw = make_gateway(gateway_config(f"http://127.0.0.1:{closed_port()}"))
    started = time.monotonic()
    with pytest.raises(openai.InternalServerError) as info:
        gw.client().chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert time.monotonic() - started < 5
    error = check_sdk_error(info.value, openai_schema, 502)
    assert error["code"] == "upstream_unavailable" and "'up'" in error["message"]
    assert UPSTREAM_KEY not in info.value.response.text
    assert one_record(gw, 502).provider == "up"


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_upstream_that_never_answers(make_gateway: Callable[..., Served], upstream,
                                     openai_schema: OpenAISchema, stream: bool):
    fake, url = upstream
    config = gateway_config(url)
    config["providers"]["up"]["read_timeout"] = 0.5

    async def silent(request: Received, send: Send) -> None:
        deadline = time.monotonic() + 5
        while not fake.hung_up.is_set() and time.monotonic() < deadline:
            await asyncio.sleep(0.02)

    fake.handler = silent
    gw = make_gateway(config)
    started = time.monotonic()
    response = post(gw, "/chat/completions", {**CHAT, "stream": stream})
    elapsed = time.monotonic() - started
    error = check_error(response, openai_schema, 504, code="upstream_timeout", type="timeout_error")
    assert 0.4 < elapsed < 3, elapsed
    assert "'up'" in error["message"]
    assert fake.hung_up.wait(5), "the gateway never hung up on the silent upstream"
    one_record(gw, 504)


# -- plugins refusing or failing ------------------------------------------------------------


class SlowDown:
    def __init__(self, gateway: object) -> None:
        self.calls = 0

    @hookimpl
    async def admit_request(self, ctx: RequestContext) -> None:
        self.calls += 1
        raise RateLimitError("slow down", retry_after=3)


def test_plugin_rate_limit(make_gateway: Callable[..., Served], upstream, openai_schema: OpenAISchema):
    gw = make_gateway(plugins=(SlowDown,))
    response = post(gw, "/chat/completions", CHAT)
    error = check_error(response, openai_schema, 429, code="rate_limit_exceeded", type="rate_limit_error")
    assert error["message"] == "slow down"
    assert response.headers["retry-after"] == "3" and response.headers["x-request-id"]
    with pytest.raises(openai.RateLimitError) as info:
        gw.client().chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert info.value.response.headers["retry-after"] == "3"
    assert upstream[0].received == []
    records = gw.records(2)
    assert [(r.outcome, r.status_code, r.provider) for r in records] == [("error", 429, "up")] * 2
    assert records[0].error == "slow down"


def failing_plugin(hook: str) -> type:
    """A plugin class whose ``hook`` raises a plain exception."""

    def fail(self: object) -> None:
        raise RuntimeError("kaboom-internal-detail")

    return type(f"Failing_{hook}", (), {"__init__": lambda self, gateway: None, hook: hookimpl(fail)})


@pytest.mark.parametrize(
    "hook", ["authenticate", "route_model", "transform_request", "admit_request", "transform_response",
             "response_headers"],
)
def test_plugin_exception_is_a_500(make_gateway: Callable[..., Served], upstream, openai_schema: OpenAISchema,
                                   hook: str):
    upstream[0].handler = FakeUpstream.json_reply(COMPLETION)
    gw = make_gateway(plugins=(failing_plugin(hook),))
    response = post(gw, "/chat/completions", CHAT)
    error = check_error(response, openai_schema, 500, code="internal_error", type="api_error")
    for leak in ("kaboom", "RuntimeError", "Traceback", "File \"", ".py"):
        assert leak not in response.text
    assert response.headers["x-request-id"] and error["message"]
    one_record(gw, 500)


@pytest.mark.parametrize("hook", ["authenticate", "list_models", "response_headers"])
def test_plugin_exception_on_models_is_a_500(make_gateway: Callable[..., Served], openai_schema: OpenAISchema,
                                             hook: str):
    gw = make_gateway(plugins=(failing_plugin(hook),))
    response = httpx2.get(f"{gw.url}/models", headers=AUTH, timeout=10)
    check_error(response, openai_schema, 500, code="internal_error", type="api_error")
    assert "kaboom" not in response.text and "Traceback" not in response.text
    assert response.headers["x-request-id"]


def test_failing_record_usage_does_not_change_the_answer(make_gateway: Callable[..., Served], upstream):
    upstream[0].handler = FakeUpstream.json_reply(COMPLETION)
    gw = make_gateway(plugins=(failing_plugin("record_usage"),))
    assert gw.client().chat.completions.create(model="gpt-4o", messages=MESSAGES).choices[0].message.content == "Hi."
    assert gw.records(1)[0].outcome == "ok"
