"""`from_chat`: a chat completion (the pivot) -> an Anthropic Message valid against the spec:
blocks in order, tool inputs parsed (never lost), stop reasons, usage, and the gateway's
thinking signature carrying the upstream's state to the next turn."""

from __future__ import annotations

from typing import Any

import pytest
from compatgate_anthropic.inbound import from_chat, message_usage, to_chat, unseal
from compatgate_anthropic.request import build_request
from compatgate_anthropic.response import openai_response
from compatgate_anthropic.settings import Settings
from anthropic_inbound_support import HmacSigner

SIGNER = HmacSigner()
MODEL = "alias-model"


def completion(message: dict[str, Any], finish: str | None = "stop", usage: dict[str, Any] | None = None,
               **choice: Any) -> dict[str, Any]:
    body = {"id": "chatcmpl-abc", "object": "chat.completion", "created": 1, "model": "upstream",
            "choices": [{"index": 0, "message": {"role": "assistant", **message}, "finish_reason": finish, **choice}]}
    if usage is not None:
        body["usage"] = usage
    return body


def convert(chat: dict[str, Any], schema, stops: list[str] | None = None, **options: Any) -> dict[str, Any]:
    message = from_chat(chat, model=MODEL, stop_sequences=stops, signer=SIGNER, **options)
    schema.validate("Message", message)
    return message


def test_text_and_usage(anthropic_schema):
    usage = {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120,
             "prompt_tokens_details": {"cached_tokens": 60, "cache_write_tokens": 15},
             "completion_tokens_details": {"reasoning_tokens": 4}}
    message = convert(completion({"content": "Hello!"}, usage=usage), anthropic_schema)
    assert message == {
        "id": "msg_chatcmpl-abc", "type": "message", "role": "assistant", "model": MODEL,
        "content": [{"type": "text", "text": "Hello!", "citations": None}],
        "stop_reason": "end_turn", "stop_sequence": None, "stop_details": None, "container": None,
        "usage": {"input_tokens": 25, "cache_creation_input_tokens": 15, "cache_read_input_tokens": 60,
                  "output_tokens": 20, "cache_creation": None, "inference_geo": None, "server_tool_use": None,
                  "service_tier": None},
    }
    # The gateway's own count of it: every input token in prompt_tokens, as the pivot said.
    counted = message_usage(message)
    assert counted is not None
    assert (counted.prompt_tokens, counted.cached_tokens, counted.cache_write_tokens) == (100, 60, 15)


def test_tool_calls_are_never_lost(anthropic_schema):
    calls = [{"id": "call_1", "type": "function", "function": {"name": "a", "arguments": '{"x": 1}'}},
             {"id": "call_2", "type": "function", "function": {"name": "b", "arguments": ""}},
             {"id": "functions.c:2", "type": "function", "function": {"name": "c", "arguments": '{"x": 1'}},
             {"id": "call_4", "type": "function", "function": {"name": "d", "arguments": "[1, 2]"}}]
    message = convert(completion({"content": None, "tool_calls": calls}, "tool_calls"), anthropic_schema)
    inputs = [(b["id"], b["name"], b["input"]) for b in message["content"]]
    assert inputs == [("call_1", "a", {"x": 1}), ("call_2", "b", {}),
                      (inputs[2][0], "c", {"_raw_arguments": '{"x": 1'}), ("call_4", "d", {"_raw_arguments": "[1, 2]"})]
    assert inputs[2][0].startswith("toolu_b64_") and message["stop_reason"] == "tool_use"


@pytest.mark.parametrize(("finish", "extra", "stops", "reason", "sequence"), [
    ("stop", {}, None, "end_turn", None),
    ("length", {}, None, "max_tokens", None),
    ("content_filter", {}, None, "refusal", None),
    ("stop", {"stop_reason": "###"}, ["###"], "stop_sequence", "###"),
    ("stop", {"stop_reason": 128001}, ["###"], "end_turn", None),  # vLLM: an EOS token id
    ("stop", {"stop_reason": "###"}, None, "end_turn", None),
    ("tool_calls", {}, None, "end_turn", None),  # no tool call in the message after all
    (None, {}, None, "end_turn", None),
])
def test_stop_reasons(finish, extra, stops, reason, sequence, anthropic_schema):
    message = convert(completion({"content": "x"}, finish, **extra), anthropic_schema, stops)
    assert (message["stop_reason"], message["stop_sequence"]) == (reason, sequence)


def test_a_refusal_is_text_with_a_refusal_stop(anthropic_schema):
    message = convert(completion({"content": None, "refusal": "I can't help with that."}), anthropic_schema)
    assert message["content"] == [{"type": "text", "text": "I can't help with that.", "citations": None}]
    assert message["stop_reason"] == "refusal" and message["stop_details"]["type"] == "refusal"


def test_without_usage_the_estimate_is_given(anthropic_schema):
    message = convert(completion({"content": "x"}), anthropic_schema, input_tokens=33)
    assert (message["usage"]["input_tokens"], message["usage"]["output_tokens"]) == (33, 0)


def test_reasoning_and_gemini_signatures_come_back_on_the_next_turn(anthropic_schema):
    chat = completion({"content": "Let me check.", "reasoning_content": "Use the tool.",
                       "extra_content": {"google": {"thought_signature": "sig-msg"}},
                       "tool_calls": [{"id": "call_9", "type": "function", "function": {"name": "w", "arguments": "{}"},
                                       "extra_content": {"google": {"thought_signature": "sig-call"}}}]}, "tool_calls")
    message = convert(chat, anthropic_schema)
    assert [b["type"] for b in message["content"]] == ["thinking", "text", "tool_use"]
    assert message["content"][0]["thinking"] == "Use the tool."
    state = unseal(SIGNER, message["content"][0]["signature"], model=MODEL, thinking="Use the tool.")
    assert state is not None and (state.tools, state.message) == ({"call_9": "sig-call"}, "sig-msg")
    follow_up = {"model": MODEL, "max_tokens": 10, "messages": [
        {"role": "user", "content": "Weather?"}, {"role": "assistant", "content": message["content"]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "call_9", "content": "Sunny"}]}]}
    assistant = to_chat(follow_up, SIGNER).body["messages"][1]
    assert assistant == {
        "role": "assistant", "content": "Let me check.", "reasoning_content": "Use the tool.",
        "extra_content": {"google": {"thought_signature": "sig-msg"}},
        "tool_calls": [{"id": "call_9", "type": "function", "function": {"name": "w", "arguments": "{}"},
                        "extra_content": {"google": {"thought_signature": "sig-call"}}}]}


def test_an_anthropic_answer_through_the_pivot_and_back(anthropic_schema):
    """Claude's answer, converted to chat by this plugin (openai_response) and back by
    from_chat: same blocks; its signed thinking blocks return upstream unchanged next turn."""
    original = {"id": "msg_01", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
                "content": [{"type": "thinking", "thinking": "Plan.", "signature": "EqQBsig"},
                            {"type": "redacted_thinking", "data": "EmwKredacted"},
                            {"type": "text", "text": "Calling."},
                            {"type": "tool_use", "id": "toolu_01X", "name": "w", "input": {"city": "Oslo"}}],
                "stop_reason": "tool_use", "stop_sequence": None,
                "usage": {"input_tokens": 12, "cache_read_input_tokens": 3, "cache_creation_input_tokens": 2,
                          "output_tokens": 30}}
    message = convert(openai_response(original, None, "claude"), anthropic_schema)
    assert message["id"] == "msg_01" and message["stop_reason"] == "tool_use"
    assert {k: message["usage"][k] for k in original["usage"]} == original["usage"]
    assert message["content"][1:] == [{"type": "text", "text": "Calling.", "citations": None},
                                      {**original["content"][3], "caller": {"type": "direct"}}]
    follow_up = {"model": MODEL, "max_tokens": 4096, "thinking": {"type": "enabled", "budget_tokens": 2048},
                 "messages": [{"role": "user", "content": "Weather?"}, {"role": "assistant", "content": message["content"]},
                              {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_01X", "content": "Sunny"}]}]}
    sent = build_request(to_chat(follow_up, SIGNER).body, Settings()).body
    anthropic_schema.validate("CreateMessageParams", sent)
    assert sent["messages"][1]["content"] == [original["content"][0], original["content"][1], original["content"][2],
                                              original["content"][3]]
