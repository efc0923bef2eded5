"""`to_chat`: Anthropic requests -> the chat pivot, field by field; the round trip back through
this plugin's own `build_request` gives the original request where the protocols agree (every
such body checked against Anthropic's request schema); thinking blocks restored only when the
gateway signed them for this model; the local token estimate."""

from __future__ import annotations

import base64
import copy
from typing import Any

import pytest
from compatgate_anthropic.inbound import (
    ThinkingState,
    count_tokens_answer,
    count_tokens_estimate,
    seal,
    strip_gateway_thinking,
    to_chat,
    tool_id,
    validate,
)
from compatgate_anthropic.request import build_request
from compatgate_anthropic.settings import Settings
from anthropic_inbound_support import HmacSigner
from test_inbound_validation import CLAUDE_CODE

from compatgate import InvalidRequestError

SIGNER = HmacSigner()
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * 16).decode()


def chat(body: dict[str, Any]) -> dict[str, Any]:
    validate(body)
    return to_chat(body, SIGNER).body


def request(*messages: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"model": "m", "max_tokens": 256, "messages": list(messages), **fields}


def test_what_claude_code_sends_becomes_this_chat_request():
    conversion = to_chat(CLAUDE_CODE, SIGNER)
    assert conversion.body == {
        "model": "gateway-alias",
        "messages": [
            {"role": "system", "content": [{"type": "text", "text": "You are Claude Code."}]},
            {"role": "system", "content": "Extra instructions for an unknown model."},
            {"role": "user", "content": [{"type": "text", "text": "Fix the bug."}]},
            {"role": "assistant", "content": "Reading it.", "tool_calls": [
                {"id": "toolu_01A", "type": "function", "function": {"name": "Read", "arguments": '{"file_path":"/a.py"}'}}]},
            {"role": "tool", "tool_call_id": "toolu_01A", "content": "print(1)"},
            {"role": "user", "content": [{"type": "text", "text": "Go on."}]},
        ],
        "max_completion_tokens": 32000,
        "stream": True,
        "stream_options": {"include_usage": True},
        "temperature": 1,
        "user": "user_abc_account__session_123",
        "reasoning_effort": "high",
        "tools": [{"type": "function", "function": {"name": "Read", "description": "Read a file.",
                                                    "parameters": CLAUDE_CODE["tools"][0]["input_schema"]}}],
        "tool_choice": "auto",
    }
    assert conversion.dropped_tools == ("web_search",)
    assert conversion.dropped_thinking == 1  # Anthropic's own signature: not the gateway's
    assert conversion.ignored == ()


ROUND_TRIP = request(
    {"role": "user", "content": [{"type": "text", "text": "What is in this image?"},
                                 {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
                                 {"type": "image", "source": {"type": "url", "url": "https://example.com/a.jpg"}}]},
    {"role": "assistant", "content": [{"type": "text", "text": "Let me look it up."},
                                      {"type": "tool_use", "id": "toolu_1", "name": "lookup", "input": {"q": "cat"}},
                                      {"type": "tool_use", "id": "toolu_2", "name": "lookup", "input": {}}]},
    {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "A cat."},
                                 {"type": "tool_result", "tool_use_id": "toolu_2", "content": "Nothing."},
                                 {"type": "text", "text": "So?"}]},
    system=[{"type": "text", "text": "Be brief."}, {"type": "text", "text": "Be kind."}],
    stop_sequences=["END", "STOP"], temperature=0.5, top_p=0.9, metadata={"user_id": "u-1"}, stream=True,
    tools=[{"name": "lookup", "description": "Look something up.",
            "input_schema": {"type": "object", "properties": {"q": {"type": "string"}}}}],
    tool_choice={"type": "any", "disable_parallel_tool_use": True},
)


@pytest.mark.parametrize("budget", [0, 2048, 8192, 16384])
def test_round_trip_through_the_anthropic_provider(budget: int, anthropic_schema):
    """Anthropic -> chat -> Anthropic (this plugin's build_request) gives the request back: every
    field, block and tool. (With thinking, Claude needs temperature 1, top_p >= 0.95 and no
    forced tool: the original says so.)"""
    original = copy.deepcopy(ROUND_TRIP)
    if budget:
        original.update(thinking={"type": "enabled", "budget_tokens": budget}, max_tokens=budget + 1000,
                        temperature=1, top_p=0.95, tool_choice={"type": "auto", "disable_parallel_tool_use": True})
    sent = build_request(chat(original), Settings()).body
    anthropic_schema.validate("CreateMessageParams", sent)
    assert sent == original


def test_round_trip_of_gateway_thinking_that_carries_anthropic_blocks(anthropic_schema):
    """Anthropic's signed thinking blocks, packed in the gateway's signature, go back upstream
    unchanged when the client returns the gateway's thinking block."""
    blocks = [{"type": "thinking", "thinking": "Hmm.", "signature": "EqQBanthropic"},
              {"type": "redacted_thinking", "data": "EmwKAhgBEgy"}]
    signature = seal(SIGNER, model="m", thinking="Hmm.", state=ThinkingState(blocks=blocks))
    body = request({"role": "user", "content": "Hi"},
                   {"role": "assistant", "content": [{"type": "thinking", "thinking": "Hmm.", "signature": signature},
                                                     {"type": "text", "text": "Hello."}]},
                   {"role": "user", "content": "Again"}, thinking={"type": "enabled", "budget_tokens": 2048},
                   max_tokens=4096)
    converted = chat(body)
    assert converted["messages"][1] == {"role": "assistant", "content": "Hello.", "reasoning_content": "Hmm.",
                                        "thinking_blocks": blocks}
    sent = build_request(converted, Settings()).body
    anthropic_schema.validate("CreateMessageParams", sent)
    assert sent["messages"][1]["content"] == [*blocks, {"type": "text", "text": "Hello."}]


@pytest.mark.parametrize(("change", "restored"), [
    ({}, True),
    ({"thinking": "Edited."}, False),                # the text no longer matches its digest
    ({"signature": "not-a-token"}, False),           # not signed by the gateway
    ({"signature": "x.y"}, False),                   # malformed token
    ({"model": "other"}, False),                     # made for another model
])
def test_thinking_is_restored_only_when_the_gateway_signed_it_for_this_model(change, restored):
    signature = seal(SIGNER, model="m", thinking="Plan.", state=ThinkingState(tools={"call 1": "g-sig"}))
    block = {"type": "thinking", "thinking": "Plan.", "signature": signature}
    block.update({k: v for k, v in change.items() if k != "model"})
    body = request({"role": "user", "content": "Hi"},
                   {"role": "assistant", "content": [block, {"type": "tool_use", "id": tool_id("call 1"),
                                                             "name": "f", "input": {}}]},
                   {"role": "user", "content": [{"type": "tool_result", "tool_use_id": tool_id("call 1"), "content": "ok"}]},
                   model=change.get("model", "m"))
    conversion = to_chat(body, SIGNER)
    assistant, tool = conversion.body["messages"][1:3]
    assert assistant["tool_calls"][0]["id"] == "call 1" and tool["tool_call_id"] == "call 1"  # the upstream's id
    assert ("reasoning_content" in assistant) is restored
    assert (assistant["tool_calls"][0].get("extra_content") == {"google": {"thought_signature": "g-sig"}}) is restored
    assert conversion.dropped_thinking == (0 if restored else 1)


def test_a_signer_that_raises_drops_the_thinking_instead_of_failing():
    class Broken(HmacSigner):
        def verify(self, token: str) -> bytes | None:
            raise ValueError("bad token")

    body = request({"role": "user", "content": "Hi"},
                   {"role": "assistant", "content": [{"type": "thinking", "thinking": "x", "signature": "s"},
                                                     {"type": "text", "text": "Hello"}]})
    conversion = to_chat(body, Broken())
    assert conversion.body["messages"][1] == {"role": "assistant", "content": "Hello"}
    assert conversion.dropped_thinking == 1


def test_tool_results_with_errors_arrays_and_images():
    body = request(
        {"role": "user", "content": "Screenshot and run."},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_a", "name": "shot", "input": {}},
                                          {"type": "tool_use", "id": "toolu_b", "name": "run", "input": {"cmd": "ls"}}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_a", "content": [
                {"type": "text", "text": "Here it is."},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}]},
            {"type": "tool_result", "tool_use_id": "toolu_b", "is_error": True, "content": "command not found"}]},
        {"role": "user", "content": "And?"},  # merged into the same turn, as Anthropic does
    )
    messages = chat(body)["messages"]
    assert messages[2:] == [
        {"role": "tool", "tool_call_id": "toolu_a", "content": "Here it is."},
        {"role": "tool", "tool_call_id": "toolu_b", "content": "Error: command not found"},
        {"role": "user", "content": [
            {"type": "text", "text": "Images returned by the tool call toolu_a:"},
            {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
            {"type": "text", "text": "And?"}]},
    ]


def test_documents_and_search_results():
    pdf = base64.b64encode(b"%PDF-1.4 /Type /Page /Type /Page /Type /Pages").decode()
    body = request({"role": "user", "content": [
        {"type": "document", "title": "report.pdf", "source": {"type": "base64", "media_type": "application/pdf", "data": pdf}},
        {"type": "document", "title": "Notes", "context": "From the meeting", "source": {"type": "text", "media_type": "text/plain", "data": "Ship it."}},
        {"type": "document", "source": {"type": "content", "content": [{"type": "text", "text": "Part one."}]}},
        {"type": "search_result", "title": "Doc", "source": "https://x.test", "content": [{"type": "text", "text": "Found."}]},
    ]})
    assert chat(body)["messages"][0]["content"] == [
        {"type": "file", "file": {"filename": "report.pdf", "file_data": f"data:application/pdf;base64,{pdf}"}},
        {"type": "text", "text": "Notes\n\nFrom the meeting\n\nShip it."},
        {"type": "text", "text": "Part one."},
        {"type": "text", "text": "Doc\n\nhttps://x.test\n\nFound."},
    ]
    characters = 16 + len("report.pdf" "NotesFrom the meetingShip it." "Part one." "Dochttps://x.testFound.")
    assert count_tokens_estimate(body) == 2 * 2000 + (characters + 3) // 4  # two PDF pages


@pytest.mark.parametrize(("block", "message"), [
    ({"type": "image", "source": {"type": "file", "file_id": "file_1"}}, "Files API ids cannot be sent"),
    ({"type": "document", "source": {"type": "url", "url": "https://x.test/a.pdf"}}, "Only base64 and text documents"),
])
def test_what_chat_cannot_carry_is_refused(block: dict[str, Any], message: str):
    body = request({"role": "user", "content": [block]})
    validate(body)
    with pytest.raises(InvalidRequestError, match=message):
        to_chat(body, SIGNER)


@pytest.mark.parametrize(("fields", "effort"), [
    ({}, None),
    ({"thinking": {"type": "enabled", "budget_tokens": 1024}}, "low"),
    ({"thinking": {"type": "enabled", "budget_tokens": 8191}}, "low"),
    ({"thinking": {"type": "enabled", "budget_tokens": 8192}}, "medium"),
    ({"thinking": {"type": "enabled", "budget_tokens": 16383}}, "medium"),
    ({"thinking": {"type": "enabled", "budget_tokens": 31999}}, "high"),
    ({"thinking": {"type": "disabled"}, "output_config": {"effort": "high"}}, None),
    ({"thinking": {"type": "adaptive"}}, None),
    ({"thinking": {"type": "adaptive"}, "output_config": {"effort": "low"}}, "low"),
    ({"output_config": {"effort": "medium"}}, "medium"),
    ({"output_config": {"effort": "max"}}, "high"),
])
def test_thinking_and_effort_become_reasoning_effort(fields: dict[str, Any], effort: str | None):
    assert chat(request({"role": "user", "content": "Hi"}, **fields)).get("reasoning_effort") == effort


@pytest.mark.parametrize(("choice", "expected"), [
    ({"type": "auto"}, {"tool_choice": "auto"}),
    ({"type": "any"}, {"tool_choice": "required"}),
    ({"type": "none"}, {"tool_choice": "none"}),
    ({"type": "tool", "name": "f"}, {"tool_choice": {"type": "function", "function": {"name": "f"}}}),
    ({"type": "any", "disable_parallel_tool_use": True}, {"tool_choice": "required", "parallel_tool_calls": False}),
])
def test_tool_choice(choice: dict[str, Any], expected: dict[str, Any]):
    tools = [{"name": "f", "input_schema": {"type": "object"}}]
    converted = chat(request({"role": "user", "content": "Hi"}, tools=tools, tool_choice=choice))
    assert {k: converted[k] for k in ("tool_choice", "parallel_tool_calls") if k in converted} == expected


def test_server_tools_are_dropped_and_cannot_be_forced():
    tools = [{"type": "web_search_20250305", "name": "web_search"}, {"type": "bash_20250124", "name": "bash"}]
    conversion = to_chat(request({"role": "user", "content": "Hi"}, tools=tools, top_k=5, cache_control={"type": "ephemeral"}), SIGNER)
    assert "tools" not in conversion.body and conversion.dropped_tools == ("web_search", "bash")
    assert conversion.ignored == ("top_k", "cache_control")
    for choice in ({"type": "tool", "name": "web_search"}, {"type": "any"}):
        body = request({"role": "user", "content": "Hi"}, tools=tools, tool_choice=choice)
        validate(body)
        with pytest.raises(InvalidRequestError, match="not available"):
            to_chat(body, SIGNER)


def test_server_blocks_in_the_history_are_dropped_and_named():
    body = request({"role": "user", "content": "Search."},
                   {"role": "assistant", "content": [
                       {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {"query": "x"}},
                       {"type": "web_search_tool_result", "tool_use_id": "srvtoolu_1", "content": []},
                       {"type": "text", "text": "Found it."}]})
    conversion = to_chat(body, SIGNER)
    assert conversion.body["messages"][1] == {"role": "assistant", "content": "Found it."}
    assert conversion.ignored == ("messages.1.content.0 (server_tool_use)", "messages.1.content.1 (web_search_tool_result)")


def test_structured_output_and_other_fields():
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"], "additionalProperties": False}
    converted = chat(request({"role": "user", "content": "Hi"}, output_config={"format": {"type": "json_schema", "schema": schema}},
                             stop_sequences=["X"], metadata={"user_id": None}))
    assert converted["response_format"] == {"type": "json_schema", "json_schema": {"name": "response", "schema": schema}}
    assert converted["stop"] == ["X"] and "user" not in converted and "stream" not in converted
    assert chat(request({"role": "user", "content": "Hi"}, output_format={"type": "json_schema", "schema": schema}))[
        "response_format"]["json_schema"]["schema"] == schema


def test_a_system_message_between_tool_calls_and_results_follows_the_results():
    body = request({"role": "user", "content": "Run it."},
                   {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "run", "input": {}}]},
                   {"role": "system", "content": "Reminder: be careful."},
                   {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "done"},
                                                {"type": "text", "text": "Next?"}]})
    assert [m["role"] for m in chat(body)["messages"]] == ["user", "assistant", "tool", "system", "user"]


def test_a_final_assistant_message_is_kept_as_prefill():
    converted = chat(request({"role": "user", "content": "Count"}, {"role": "assistant", "content": "1, 2,"}))
    assert converted["messages"][-1] == {"role": "assistant", "content": "1, 2,"}


def test_strip_gateway_thinking_for_an_anthropic_upstream():
    ours = {"type": "thinking", "thinking": "x", "signature": seal(SIGNER, model="m", thinking="x", state=ThinkingState())}
    theirs = {"type": "thinking", "thinking": "y", "signature": "EqQBnative"}
    body = request({"role": "user", "content": "Hi"}, {"role": "assistant", "content": [ours, theirs, {"type": "text", "text": "Hello"}]})
    stripped = strip_gateway_thinking(body, SIGNER)
    assert stripped["messages"][1]["content"] == [theirs, {"type": "text", "text": "Hello"}]
    assert body["messages"][1]["content"][0] is ours  # the original is left alone


def test_the_token_estimate():
    body = request({"role": "user", "content": [{"type": "text", "text": "x" * 400},
                                                {"type": "image", "source": {"type": "url", "url": "https://x.test/a.png"}}]},
                   system="y" * 40, tools=[{"name": "f", "input_schema": {"type": "object"}}])
    tool_json = len('{"name":"f","input_schema":{"type":"object"}}')
    assert count_tokens_estimate(body) == (400 + 40 + 16 + tool_json + 3) // 4 + 1600
    assert count_tokens_estimate({"model": "m", "messages": []}) == 1
    assert count_tokens_answer(42) == {"input_tokens": 42}
