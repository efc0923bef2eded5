"""The official ``anthropic`` SDK reads what the encoder and `from_chat` produce: its stream
accumulator (``client.messages.stream()``) builds the expected final ``Message`` from
`MessageStream`'s bytes, ``messages.create`` parses `from_chat`'s body, and `error_body` /
`MessageStream.error` raise the SDK's error classes with the right type. The bytes are served
over real HTTP on loopback by a tiny Starlette app."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

import anthropic
import orjson
import pytest
from compatgate_anthropic.inbound import MessageStream, error_body, from_chat
from anthropic_inbound_support import OPENAI_RECORDINGS, HmacSigner, check_events, openai_chunks, parse_events
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from compatgate import (
    AuthenticationError,
    GatewayError,
    InsufficientQuotaError,
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    RequestTooLargeError,
    UpstreamError,
    UpstreamStreamError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
)
from compatgate.testing import serve

SIGNER = HmacSigner()
MODEL = "alias-model"
REQUEST = {"model": MODEL, "max_tokens": 64, "messages": [{"role": "user", "content": "Hi"}]}


class Canned:
    """What the app answers next: status, body bytes, headers."""

    status: ClassVar[int] = 200
    content: ClassVar[bytes] = b""
    headers: ClassVar[dict[str, str]] = {}


async def messages(request: Request) -> Response:
    await request.body()
    return Response(Canned.content, status_code=Canned.status, headers=Canned.headers)


@pytest.fixture(scope="module")
def client() -> Iterator[anthropic.Anthropic]:
    app = Starlette(routes=[Route("/v1/messages", messages, methods=["POST"])])
    with serve(app) as url:
        yield anthropic.Anthropic(base_url=url, api_key="sk-test", max_retries=0, timeout=10)


def answer(content: bytes, *, status: int = 200, media: str = "text/event-stream; charset=utf-8",
           headers: dict[str, str] | None = None) -> None:
    Canned.status, Canned.content = status, content
    Canned.headers = {"content-type": media, **(headers or {})}


def encoded(chunks: list[dict[str, Any]]) -> bytes:
    stream = MessageStream(model=MODEL, input_tokens=9, stop_sequences=["END"], signer=SIGNER)
    return b"".join(stream.feed(chunk) for chunk in chunks) + stream.finish()


@pytest.mark.parametrize("name", OPENAI_RECORDINGS)
def test_the_sdk_stream_accumulator_builds_the_message(name: str, client: anthropic.Anthropic, anthropic_schema):
    content = encoded(openai_chunks(name))
    expected = check_events(parse_events(content), anthropic_schema)
    answer(content)
    with client.messages.stream(**REQUEST) as stream:
        texts = "".join(stream.text_stream)
        final = stream.get_final_message()
    got = final.model_dump(mode="json", exclude_none=True)
    assert texts == "".join(b["text"] for b in expected["content"] if b["type"] == "text")
    assert [{k: v for k, v in b.items() if v is not None and k != "citations"} for b in got["content"]] == [
        {k: v for k, v in b.items() if v is not None} for b in expected["content"]]
    assert (got["id"], got["model"], got["stop_reason"]) == (expected["id"], MODEL, expected["stop_reason"])
    assert got["usage"]["input_tokens"] == expected["usage"]["input_tokens"]
    assert got["usage"]["output_tokens"] == expected["usage"]["output_tokens"]


def test_thinking_text_and_tools_reach_the_sdk(client: anthropic.Anthropic):
    chunks = [
        {"choices": [{"index": 0, "delta": {"role": "assistant", "reasoning_content": "Weather, so a tool."}}]},
        {"choices": [{"index": 0, "delta": {"content": "Let me check."}}]},
        {"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                                                            "function": {"name": "get_weather", "arguments": "{\"ci"}}]}}]},
        {"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": "ty\": \"Paris\"}"}}]},
                      "finish_reason": "tool_calls"}]},
        {"choices": [], "usage": {"prompt_tokens": 21, "completion_tokens": 17, "total_tokens": 38}},
    ]
    answer(encoded(chunks))
    with client.messages.stream(**REQUEST) as stream:
        final = stream.get_final_message()
    thinking, text, tool = final.content
    assert thinking.type == "thinking" and thinking.thinking == "Weather, so a tool." and thinking.signature
    assert text.type == "text" and text.text == "Let me check."
    assert (tool.type, tool.id, tool.name, tool.input) == ("tool_use", "call_1", "get_weather", {"city": "Paris"})
    assert final.stop_reason == "tool_use"
    assert (final.usage.input_tokens, final.usage.output_tokens) == (21, 17)


def test_a_stop_sequence_reaches_the_sdk(client: anthropic.Anthropic):
    chunks = [{"choices": [{"index": 0, "delta": {"content": "1 2 3"}, "finish_reason": "stop", "stop_reason": "END"}]}]
    answer(encoded(chunks))
    with client.messages.stream(**REQUEST) as stream:
        final = stream.get_final_message()
    assert (final.stop_reason, final.stop_sequence) == ("stop_sequence", "END")


def test_a_broken_stream_raises_in_the_sdk(client: anthropic.Anthropic):
    stream = MessageStream(model=MODEL, input_tokens=9, stop_sequences=None, signer=SIGNER)
    content = stream.feed({"choices": [{"index": 0, "delta": {"content": "Half"}}]})
    answer(content + stream.error(UpstreamStreamError("The connection to the upstream provider 'x' broke.")))
    with pytest.raises(anthropic.APIStatusError) as raised, client.messages.stream(**REQUEST) as events:
        events.get_final_message()
    assert raised.value.type == "api_error" and "broke" in (raised.value.api_message or "")


def test_from_chat_parses_as_an_sdk_message(client: anthropic.Anthropic, anthropic_schema):
    chat = {"id": "chatcmpl-9", "object": "chat.completion", "created": 1, "model": "up",
            "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
                "role": "assistant", "content": "Checking.", "reasoning_content": "Need the weather.",
                "tool_calls": [{"id": "call_1", "type": "function",
                                "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}}]}}],
            "usage": {"prompt_tokens": 50, "completion_tokens": 20, "total_tokens": 70,
                      "prompt_tokens_details": {"cached_tokens": 30}}}
    body = from_chat(chat, model=MODEL, stop_sequences=None, signer=SIGNER)
    anthropic_schema.validate("Message", body)
    answer(orjson.dumps(body), media="application/json")
    message = client.messages.create(**REQUEST)
    assert [b.type for b in message.content] == ["thinking", "text", "tool_use"]
    assert message.content[2].input == {"city": "Paris"} and message.stop_reason == "tool_use"
    assert (message.usage.input_tokens, message.usage.cache_read_input_tokens, message.usage.output_tokens) == (20, 30, 20)


@pytest.mark.parametrize(("error", "status", "kind", "sdk_class"), [
    (InvalidRequestError("max_tokens: Field required.", param="max_tokens"), 400, "invalid_request_error",
     anthropic.BadRequestError),
    (AuthenticationError("Invalid API key."), 401, "authentication_error", anthropic.AuthenticationError),
    (InsufficientQuotaError("The budget is spent."), 402, "billing_error", anthropic.APIStatusError),
    (PermissionDeniedError("Not allowed."), 403, "permission_error", anthropic.PermissionDeniedError),
    (NotFoundError("No such model."), 404, "not_found_error", anthropic.NotFoundError),
    (RequestTooLargeError("Too large."), 413, "request_too_large", anthropic.APIStatusError),
    (RateLimitError("Slow down.", retry_after=7), 429, "rate_limit_error", anthropic.RateLimitError),
    (GatewayError("Oops."), 500, "api_error", anthropic.InternalServerError),
    (UpstreamUnavailableError("Unreachable."), 502, "api_error", anthropic.InternalServerError),
    (UpstreamError("Busy.", status_code=503), 529, "overloaded_error", anthropic.InternalServerError),
    (UpstreamTimeoutError("Too slow."), 504, "timeout_error", anthropic.InternalServerError),
    (UpstreamError("Overloaded", status_code=503, code="overloaded_error"), 529, "overloaded_error",
     anthropic.InternalServerError),
])
def test_errors_in_anthropic_format_raise_the_sdk_errors(error, status, kind, sdk_class, client, anthropic_schema):
    code, body, headers = error_body(error, request_id="req_42")
    assert code == status
    payload = orjson.loads(body)
    # The spec's error union lacks request_too_large, which Anthropic documents for 413 (an
    # erratum of the spec): the rest of the body is checked with a type the union has.
    checked = {**payload, "error": {**payload["error"], "type": "invalid_request_error"}} \
        if kind == "request_too_large" else payload
    anthropic_schema.validate("ErrorResponse", checked)
    assert payload == {"type": "error", "error": {"type": kind, "message": error.message}, "request_id": "req_42"}
    answer(body, status=code, media=headers.pop("content-type"), headers=headers)
    with pytest.raises(sdk_class) as raised:
        client.messages.create(**REQUEST)
    assert (raised.value.status_code, raised.value.type, raised.value.api_message) == (status, kind, error.message)
    if isinstance(error, RateLimitError) and not isinstance(error, InsufficientQuotaError):
        assert raised.value.response.headers["retry-after"] == "7"
