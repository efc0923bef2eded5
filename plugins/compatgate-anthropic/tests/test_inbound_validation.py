"""Validation of ``/messages`` and ``/messages/count_tokens`` bodies: a table of bad requests,
each refused with the exact Anthropic error (status, type, message) the client gets from
`error_body`, never a crash; and the requests real clients send accepted."""

from __future__ import annotations

import copy
from typing import Any

import orjson
import pytest
from compatgate_anthropic.inbound import (
    error_body,
    validate,
    validate_count_tokens,
    validate_native,
)

from compatgate import InvalidRequestError

USER = {"role": "user", "content": "Hello"}
BASE = {"model": "m", "max_tokens": 100, "messages": [USER]}
TOOL = {"name": "get_weather", "description": "Weather.", "input_schema": {"type": "object", "properties": {}}}
CALL = {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}}
RESULT = {"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny"}


def body(**changes: Any) -> dict[str, Any]:
    new = copy.deepcopy(BASE)
    for key, value in changes.items():
        if value is ...:
            new.pop(key, None)
        else:
            new[key] = value
    return new


def msgs(*messages: dict[str, Any]) -> list[dict[str, Any]]:
    return list(messages)


BAD: list[tuple[dict[str, Any], str]] = [
    (body(model=...), "model: Field required."),
    (body(model=""), "model: String should have at least 1 character."),
    (body(model=7), "model: Input should be a valid string."),
    (body(max_tokens=...), "max_tokens: Field required."),
    (body(max_tokens=0), "max_tokens: Input should be an integer from 1 to 16777216."),
    (body(max_tokens=10**30), "max_tokens: Input should be an integer from 1 to 16777216."),
    (body(max_tokens=True), "max_tokens: Input should be a valid integer."),
    (body(max_tokens="100"), "max_tokens: Input should be a valid integer."),
    (body(messages=...), "messages: Field required."),
    (body(messages={}), "messages: Input should be a valid list."),
    (body(messages=[]), "messages: At least one message is required."),
    (body(messages=["hi"]), "messages.0: Input should be an object."),
    (body(messages=[{"role": "tool", "content": "x"}]),
     "messages.0.role: Input should be 'user', 'assistant' or 'system' (got 'tool')."),
    (body(messages=[{"role": "user"}]), "messages.0.content: Field required."),
    (body(messages=[{"role": "user", "content": "x", "name": "bob"}]), "messages.0.name: Extra inputs are not permitted."),
    (body(messages=[{"role": "user", "content": 5}]),
     "messages.0.content: Input should be a valid string or a list of content blocks."),
    (body(messages=[{"role": "user", "content": ""}]),
     "messages.0.content: All messages must have non-empty content except for the optional final assistant message."),
    (body(messages=[{"role": "user", "content": [{"type": "text", "text": ""}]}]),
     "messages.0.content.0.text: Text content blocks must be non-empty."),
    (body(messages=[{"role": "user", "content": [{"type": "video"}]}]),
     "messages.0.content.0.type: Input tag 'video' found using 'type' does not match any of the expected tags: "),
    (body(messages=[{"role": "user", "content": [{"type": "text", "text": "x", "bold": True}]}]),
     "messages.0.content.0.bold: Extra inputs are not permitted."),
    (body(messages=[{"role": "user", "content": [{"type": "image", "source": {"type": "base64", "media_type": "image/bmp", "data": "AA=="}}]}]),
     "messages.0.content.0.source.media_type: Input should be image/jpeg, image/png, image/gif, image/webp."),
    (body(messages=[{"role": "user", "content": [{"type": "image", "source": {"type": "url", "url": "ftp://x"}}]}]),
     "messages.0.content.0.source.url: Input should be an http(s) URL."),
    (body(messages=[{"role": "user", "content": [{"type": "document", "source": {"type": "base64", "media_type": "text/html", "data": "AA=="}}]}]),
     "messages.0.content.0.source.media_type: Input should be 'application/pdf'."),
    (body(messages=[{"role": "user", "content": [{"type": "text", "text": "x", "cache_control": {"type": "permanent"}}]}]),
     "messages.0.content.0.cache_control.type: Input should be 'ephemeral'."),
    (body(messages=[{"role": "user", "content": [CALL]}]),
     "messages.0.content.0.type: 'tool_use' blocks may only appear in assistant messages."),
    (body(messages=[USER, {"role": "assistant", "content": [RESULT]}]),
     "messages.1.content.0.type: 'tool_result' blocks may only appear in user messages."),
    (body(messages=[USER, {"role": "assistant", "content": [{**CALL, "id": "bad id"}]}, {"role": "user", "content": [RESULT]}]),
     "messages.1.content.0.id: String should match pattern '^[a-zA-Z0-9_-]+$'."),
    (body(messages=[USER, {"role": "assistant", "content": [{**CALL, "input": "{}"}]}, {"role": "user", "content": [RESULT]}]),
     "messages.1.content.0.input: Input should be an object."),
    (body(messages=[USER, {"role": "assistant", "content": [CALL]}, USER]),
     ("messages.1: `tool_use` ids were found without `tool_result` blocks immediately after: toolu_1. Each "
      "`tool_use` block must have a corresponding `tool_result` block in the next message.")),
    (body(messages=[{"role": "user", "content": [RESULT]}]),
     ("messages.0.content: unexpected `tool_use_id` found in `tool_result` blocks: toolu_1. Each `tool_result` "
      "block must have a corresponding `tool_use` block in the previous message.")),
    (body(messages=[USER, {"role": "assistant", "content": [CALL, CALL]}, {"role": "user", "content": [RESULT]}]),
     "messages.1: tool_use ids must be unique: 'toolu_1' appears twice."),
    (body(messages=[USER, {"role": "assistant", "content": [CALL]}, {"role": "user", "content": [{**RESULT, "is_error": "yes"}]}]),
     "messages.2.content.0.is_error: Input should be a valid boolean."),
    (body(messages=[USER, {"role": "assistant", "content": [{"type": "thinking", "thinking": "x"}]}]),
     "messages.1.content.0.signature: Input should be a valid string."),
    (body(messages=[{"role": "system", "content": [{"type": "image", "source": {}}]}, USER]),
     "messages.0.content.0.type: Input should be 'text'."),
    (body(system=5), "system: Input should be a valid string or a list of text blocks."),
    (body(system=[{"type": "text", "text": "a", "extra": 1}]), "system.0.extra: Extra inputs are not permitted."),
    (body(temperature=1.5), "temperature: Input should be a number from 0 to 1."),
    (body(temperature=float("nan")), "temperature: Input should be a valid number."),
    (body(top_p="high"), "top_p: Input should be a valid number."),
    (body(top_k=-1), "top_k: Input should be an integer from 0 to 16777216."),
    (body(stream="yes"), "stream: Input should be a valid boolean."),
    (body(stop_sequences="END"), "stop_sequences: Input should be a valid list."),
    (body(stop_sequences=["END", ""]), "stop_sequences.1: String should have at least 1 character."),
    (body(metadata={"user_id": "u", "team": "t"}), "metadata.team: Extra inputs are not permitted."),
    (body(metadata={"user_id": "u" * 513}), "metadata.user_id: String should have at most 512 characters."),
    (body(service_tier="priority"), "service_tier: Input should be 'auto' or 'standard_only'."),
    (body(tools={}), "tools: Input should be a valid list."),
    (body(tools=[{**TOOL, "name": "get weather"}]), "tools.0.name: String should match pattern '^[a-zA-Z0-9_-]{1,128}$'."),
    (body(tools=[{**TOOL, "input_schema": {"type": "array"}}]), "tools.0.input_schema.type: Input should be 'object'."),
    (body(tools=[{k: v for k, v in TOOL.items() if k != "input_schema"}]), "tools.0.input_schema: Input should be an object."),
    (body(tools=[TOOL, TOOL]), "tools: Tool names must be unique: 'get_weather' appears twice."),
    (body(tools=[{**TOOL, "parameters": {}}]), "tools.0.parameters: Extra inputs are not permitted."),
    (body(tools=[{"type": "web_search_20250305"}]), "tools.0.name: Input should be a valid string."),
    (body(tool_choice={"type": "required"}), "tool_choice.type: Input should be 'auto', 'any', 'tool' or 'none'."),
    (body(tools=[TOOL], tool_choice={"type": "tool", "name": "other"}), "tool_choice.name: Tool 'other' not found in 'tools'."),
    (body(tool_choice={"type": "any"}), "tool_choice: tool_choice 'any' requires 'tools'."),
    (body(tools=[TOOL], tool_choice={"type": "none", "disable_parallel_tool_use": True}),
     "tool_choice.disable_parallel_tool_use: Extra inputs are not permitted."),
    (body(tools=[TOOL], tool_choice={"type": "auto", "disable_parallel_tool_use": 1}),
     "tool_choice.disable_parallel_tool_use: Input should be a valid boolean."),
    (body(thinking={"type": "enabled"}), "thinking.budget_tokens: Field required."),
    (body(thinking={"type": "enabled", "budget_tokens": 100}), "thinking.budget_tokens: Input should be an integer from 1024 to 16777216."),
    (body(thinking={"type": "enabled", "budget_tokens": 2**63}), "thinking.budget_tokens: Input should be an integer from 1024 to 16777216."),
    (body(thinking={"type": "on"}), "thinking.type: Input should be 'enabled', 'disabled' or 'adaptive'."),
    (body(thinking={"type": "disabled", "budget_tokens": 2048}), "thinking.budget_tokens: Extra inputs are not permitted."),
    (body(thinking={"type": "adaptive", "display": "full"}), "thinking.display: Input should be 'summarized' or 'omitted'."),
    (body(output_config={"effort": "extreme"}), "output_config.effort: Input should be one of low, medium, high, xhigh, max."),
    (body(output_config={"format": {"type": "json_object"}}), "output_config.format.type: Input should be 'json_schema'."),
    (body(output_config={"format": {"type": "json_schema", "schema": {}}}, output_format={"type": "json_schema", "schema": {}}),
     "output_format: Give the output format in 'output_config.format' or in 'output_format', not both."),
    (body(n=2), "n: Extra inputs are not permitted."),
    (body(max_completion_tokens=5), "max_completion_tokens: Extra inputs are not permitted."),
]


@pytest.mark.parametrize(("bad", "message"), BAD, ids=[m.split(":")[0] + f"-{i}" for i, (_, m) in enumerate(BAD)])
def test_bad_requests_get_anthropic_400s(bad: dict[str, Any], message: str, anthropic_schema):
    with pytest.raises(InvalidRequestError) as raised:
        validate(bad)
    error = raised.value
    assert error.message.startswith(message), error.message
    assert error.param == message.split(":")[0]
    status, content, headers = error_body(error)
    payload = orjson.loads(content)
    anthropic_schema.validate("ErrorResponse", payload)
    assert (status, payload["error"]["type"], payload["error"]["message"]) == (400, "invalid_request_error", error.message)
    assert headers["content-type"] == "application/json"


def test_a_body_that_is_not_an_object():
    for bad in ([], "x", None):
        with pytest.raises(InvalidRequestError, match="The request body must be a JSON object"):
            validate(bad)


CLAUDE_CODE = {
    "model": "gateway-alias",
    "max_tokens": 32000,
    "stream": True,
    "temperature": 1,
    "metadata": {"user_id": "user_abc_account__session_123"},
    "system": [{"type": "text", "text": "You are Claude Code.", "cache_control": {"type": "ephemeral"}}],
    "messages": [
        {"role": "system", "content": "Extra instructions for an unknown model."},
        {"role": "user", "content": [{"type": "text", "text": "Fix the bug.", "cache_control": {"type": "ephemeral", "ttl": "1h"}}]},
        {"role": "assistant", "content": [
            {"type": "thinking", "thinking": "Look at the file.", "signature": "EqQBCgIYAh..."},
            {"type": "text", "text": "Reading it.", "citations": None},
            {"type": "tool_use", "id": "toolu_01A", "name": "Read", "input": {"file_path": "/a.py"}, "caller": {"type": "direct"}}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_01A", "content": [{"type": "text", "text": "print(1)"}]},
            {"type": "text", "text": "Go on."}]},
    ],
    "tools": [{"name": "Read", "description": "Read a file.", "input_schema": {
        "type": "object", "properties": {"file_path": {"type": "string"}}, "required": ["file_path"],
        "additionalProperties": False, "$schema": "http://json-schema.org/draft-07/schema#"}},
        {"type": "web_search_20250305", "name": "web_search", "max_uses": 5}],
    "tool_choice": {"type": "auto"},
    "thinking": {"type": "enabled", "budget_tokens": 31999},
}


def test_what_claude_code_sends_is_accepted():
    validate(CLAUDE_CODE)
    validate_native(CLAUDE_CODE)


def test_count_tokens_bodies():
    count = {k: v for k, v in CLAUDE_CODE.items() if k in ("model", "messages", "system", "tools", "thinking")}
    validate_count_tokens(count)
    with pytest.raises(InvalidRequestError, match="^max_tokens: Extra inputs are not permitted"):
        validate_count_tokens({**count, "max_tokens": 5})
    with pytest.raises(InvalidRequestError, match="^messages: Field required"):
        validate_count_tokens({"model": "m"})


def test_the_native_check_leaves_the_rest_to_anthropic():
    validate_native({"model": "m", "max_tokens": 5, "messages": [], "some_beta_field": {"x": 1}})
    validate_native({"model": "m", "messages": [{"role": "user", "content": "x"}]})  # count_tokens
    for bad, message in [({"messages": []}, "model: Field required."),
                         ({"model": "m", "max_tokens": 0, "messages": []}, "max_tokens: Input should be an integer"),
                         ({"model": "m", "max_tokens": 5, "messages": "x"}, "messages: Input should be a valid list."),
                         ({"model": "m", "max_tokens": 5, "messages": [], "stream": 1}, "stream: Input should be a valid boolean.")]:
        with pytest.raises(InvalidRequestError) as raised:
            validate_native(bad)
        assert raised.value.message.startswith(message)
