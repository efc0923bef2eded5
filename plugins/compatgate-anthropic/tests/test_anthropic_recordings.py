"""Every real Claude stream in ../shared/fixtures/anthropic-sse/, replayed byte for byte through
the gateway: the exact OpenAI chunks a client receives, what the official SDK assembles from
them, and the usage the gateway records."""

from __future__ import annotations

from typing import Any, NamedTuple

import openai
import pytest
from anthropic_support import (
    MESSAGES,
    MODEL,
    RECORDINGS,
    Served,
    chunks,
    exact_reply,
    recorded_events,
    recording,
)

from compatgate.testing import OpenAISchema

ROLE = {"role": "assistant"}


def text(value: str) -> dict[str, Any]:
    return {"content": value}


def reasoning(value: str) -> dict[str, Any]:
    return {"reasoning_content": value}


def call(index: int, call_id: str, name: str) -> dict[str, Any]:
    return {"tool_calls": [{"index": index, "id": call_id, "type": "function",
                            "function": {"name": name, "arguments": ""}}]}


def args(index: int, fragment: str) -> dict[str, Any]:
    return {"tool_calls": [{"index": index, "function": {"arguments": fragment}}]}


def thinking_block(index: int, thinking: str, signature: str) -> dict[str, Any]:
    return {"thinking_blocks": [{"index": index, "type": "thinking", "thinking": thinking, "signature": signature}]}


def usage(prompt: int, completion: int, *, cached: int = 0, written: int = 0,
          reasoning_tokens: int | None = None) -> dict[str, Any]:
    expected: dict[str, Any] = {
        "prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached, "cache_write_tokens": written},
    }
    if reasoning_tokens is not None:
        expected["completion_tokens_details"] = {"reasoning_tokens": reasoning_tokens}
    return expected


def recorded_texts(name: str) -> list[dict[str, Any]]:
    """The text deltas of a long recording, read from it (to avoid copying long prose here)."""
    return [text(e["delta"]["text"]) for e in recorded_events(recording(name))
            if e["type"] == "content_block_delta" and e["delta"]["type"] == "text_delta"]


class Expected(NamedTuple):
    id: str
    model: str
    deltas: list[dict[str, Any]]
    finish: str
    usage: dict[str, Any]


HELLO = [ROLE, text("Hello there!")]
WEATHER = [ROLE, text("I"), text("'ll check the current weather in Paris for you."),
           call(0, "toolu_01NRLabsLyVHZPKxbKvkfSMn", "get_weather"), args(0, '{"locati'), args(0, 'on": "P')]
THOUGHT = [
    "Simple educ",
    (
        "ational question about what a solar eclipse is. This is benign general knowledge — "
        "definitions are fine. Also the user called"
    ),
    ' me "claudius" — I\'m Claude. Minor correction or just roll with it politely.',
]
SIGNATURE = "c3ludGhldGljLXNpZ25hdHVyZS1maXh0dXJlLWEtbm90LWEtcmVhbC1zaWduYXR1cmU="

EXPECTED: dict[str, Expected] = {
    "basic_response.txt": Expected(
        "msg_4QpJur2dWWDjF6C758FbBw5vm12BaVipnK", "claude-3-opus-latest",
        [ROLE, text("Hello"), text(" there"), text("!")], "stop", usage(11, 6)),
    "compaction_response.txt": Expected(
        "msg_01CompactionEncryptedContent01", "claude-opus-4-7", HELLO, "stop", usage(30, 8)),
    "context_management_response.txt": Expected(
        "msg_01ContextManagement000000001", "claude-sonnet-4-5", HELLO, "stop", usage(25, 8)),
    "fallback_credit_response.txt": Expected(
        "msg_01FallbackCreditUsage0000001", "claude-sonnet-4-5", HELLO, "stop", usage(25, 8)),
    "fallback_response.txt": Expected(
        "msg_01FallbackModelRelabel000001", "claude-opus-4-7", HELLO, "stop", usage(25, 8)),
    "incomplete_partial_json_response.txt": Expected(
        "msg_01UdjYBBipA9omjYhicnevgq", "claude-3-7-sonnet-20250219",
        [ROLE, text("I"), text("'ll create a comprehensive tax guide for"), text(" someone with multiple W2s an"),
         text("d save it in a file called taxes.txt. Let"), text(" me do that for you now."),
         call(0, "toolu_01EKqbqmZrGRXy18eN7m9kvY", "make_file"), args(0, '{"filename": "taxes.txt'),
         args(0, '", "lines_of_text": [\n"# COMPREHENSIVE TAX GUIDE FOR INDIVIDUALS WITH MULTIPLE W-2s",\n"",'
                 '\n"## INTRODUCTION",\n"",'),
         args(0, '\n"Filing taxes')],
        "length", usage(450, 124)),
    "input_transformations_delta_response.txt": Expected(
        "msg_01InputTransformations00001", "claude-sonnet-4-5", HELLO, "stop", usage(25, 8)),
    "input_transformations_empty_delta_response.txt": Expected(
        "msg_01InputTransformations00003", "claude-sonnet-4-5", HELLO, "stop", usage(25, 8)),
    "input_transformations_start_only_response.txt": Expected(
        "msg_01InputTransformations00002", "claude-sonnet-4-5", HELLO, "stop", usage(25, 8)),
    # message_delta repeats input and cache counts, updated: the later values win.
    "message_delta_fields_response.txt": Expected(
        "msg_01MessageDeltaFields00000001", "claude-sonnet-4-5", HELLO, "stop",
        usage(40 + 7 + 12, 8, cached=7, written=12, reasoning_tokens=3)),
    # message_delta has output_tokens only: input and cache counts stay message_start's.
    "message_delta_omitted_usage_response.txt": Expected(
        "msg_01MessageDeltaOmitted00000001", "claude-sonnet-4-5", HELLO, "stop",
        usage(25 + 5 + 10, 8, cached=5, written=10)),
    "refusal_response.txt": Expected(
        "msg_01RefusalTestMessage123456789", "claude-opus-4-7", [ROLE], "content_filter", usage(20, 0)),
    # The server-side web search is not a tool call of the client's: only the text comes out.
    "server_tool_use_response.txt": Expected(
        "msg_011CdnAF53d41LwwHrjS6qm7", "claude-sonnet-4-5-20250929",
        [ROLE, text("Claude Opus 4.7 is now generally available with"),
         text(" improvements in software engineering and vision capabilities.")],
        "stop", usage(9281, 97)),
    "stream-a-refusal.sse": Expected(
        "msg_fixture_a_0001", "claude-fable-5",
        [ROLE, *map(reasoning, THOUGHT), thinking_block(0, "".join(THOUGHT), SIGNATURE), text("Hi")],
        "content_filter", usage(28, 106, reasoning_tokens=67)),
    "stream-a-toolrefusal.sse": Expected(
        "msg_fixture_atool_0001", "claude-fable-5",
        [ROLE, text("Here's a summary of this year's solar eclipses and how")],
        "content_filter", usage(28, 106, reasoning_tokens=67)),
    "stream-b-fallback.sse": Expected(
        "msg_fixture_b_0001", "claude-opus-4-8", [ROLE, *recorded_texts("stream-b-fallback.sse")],
        "stop", usage(31, 547, reasoning_tokens=0)),
    "tool_use_invalid_json_response.txt": Expected(
        "msg_019Q1hrJbZG26Fb9BQhrkHEr", "claude-sonnet-4-20250514",
        [*WEATHER, args(0, 'aris", "unit": '), args(0, "celsius}")], "tool_calls", usage(377, 65)),
    "tool_use_response.txt": Expected(
        "msg_019Q1hrJbZG26Fb9BQhrkHEr", "claude-sonnet-4-20250514",
        [*WEATHER, args(0, "ar"), args(0, 'is"}')], "tool_calls", usage(377, 65)),
    # Unknown events (named "message"), a stray content_block_stop before message_start, and
    # events after message_stop are ignored.
    "unknown_events_response.txt": Expected(
        "msg_4QpJur2dWWDjF6C758FbBw5vm12BaVipnK", "claude-3-opus-latest",
        [ROLE, text("Hello"), text(" there"), text("!")], "stop", usage(11, 6)),
}


def test_every_recording_has_an_expectation():
    assert len(RECORDINGS) >= 19, f"the recordings are missing from {RECORDINGS}"
    assert sorted(EXPECTED) == RECORDINGS


@pytest.mark.parametrize("piece", [0, 7, 1 << 20], ids=["by-event", "7-byte-slices", "one-write"])
@pytest.mark.parametrize("name", RECORDINGS)
def test_recording_gives_the_exact_chunks(gw: Served, upstream, openai_schema: OpenAISchema, name: str, piece: int):
    fake, _ = upstream
    expected = EXPECTED[name]
    fake.handler = exact_reply(recording(name), piece=piece)
    body = {"model": MODEL, "messages": MESSAGES, "stream_options": {"include_usage": True}}
    response, payloads = gw.stream(body)
    assert response.status_code == 200
    received = chunks(payloads, openai_schema)

    *choice_chunks, usage_chunk = received
    assert {c["id"] for c in received} == {expected.id}
    assert {c["model"] for c in received} == {expected.model}
    assert len({c["created"] for c in received}) == 1
    assert all(c["object"] == "chat.completion.chunk" for c in received)
    for chunk in choice_chunks:
        (choice,) = chunk["choices"]
        assert (choice["index"], choice["logprobs"]) == (0, None)
        assert "usage" not in chunk
    *deltas, finish = [c["choices"][0] for c in choice_chunks]
    assert [d["delta"] for d in deltas] == expected.deltas
    assert all(d["finish_reason"] is None for d in deltas)
    assert (finish["delta"], finish["finish_reason"]) == ({}, expected.finish)
    assert (usage_chunk["choices"], usage_chunk["usage"]) == ([], expected.usage)

    assert fake.received[-1].json["stream"] is True
    record = gw.records(1)[0]
    assert (record.outcome, record.status_code, record.streamed) == ("ok", 200, True)
    prompt, details = expected.usage["prompt_tokens"], expected.usage["prompt_tokens_details"]
    assert (record.prompt_tokens, record.completion_tokens) == (prompt, expected.usage["completion_tokens"])
    assert (record.usage.cached_tokens, record.usage.cache_write_tokens) == (
        details["cached_tokens"], details["cache_write_tokens"])
    assert not record.usage.estimated


@pytest.mark.parametrize("name", RECORDINGS)
def test_usage_chunk_only_when_asked(gw: Served, upstream, openai_schema: OpenAISchema, name: str):
    fake, _ = upstream
    fake.handler = exact_reply(recording(name))
    _, payloads = gw.stream({"model": MODEL, "messages": MESSAGES})
    received = chunks(payloads, openai_schema)
    assert all(c["choices"] for c in received)
    assert received[-1]["choices"][0]["finish_reason"] == EXPECTED[name].finish
    # The gateway still learns the exact usage from the stripped chunk.
    assert gw.records(1)[0].total_tokens == EXPECTED[name].usage["total_tokens"]


@pytest.mark.parametrize("name", RECORDINGS)
def test_sdk_assembles_the_final_message(gw: Served, upstream, name: str):
    fake, _ = upstream
    expected = EXPECTED[name]
    fake.handler = exact_reply(recording(name), delay=0.001)
    with gw.client().chat.completions.stream(
        model=MODEL, messages=MESSAGES, stream_options={"include_usage": True}
    ) as stream:
        try:
            final = stream.get_final_completion()
        except (openai.LengthFinishReasonError, openai.ContentFilterFinishReasonError) as exc:
            # The SDK's way to hand over a truncated or refused answer.
            assert expected.finish == ("length" if isinstance(exc, openai.LengthFinishReasonError) else "content_filter")
            assert exc.completion is not None
            final = exc.completion

    content = "".join(d.get("content", "") for d in expected.deltas)
    calls: dict[int, dict[str, str]] = {}
    for d in expected.deltas:
        for fragment in d.get("tool_calls", ()):
            entry = calls.setdefault(fragment["index"], {"arguments": ""})
            entry.update({k: v for k, v in fragment.items() if k in ("id",)})
            entry.update({k: v for k, v in fragment["function"].items() if k == "name"})
            entry["arguments"] += fragment["function"]["arguments"]
    (choice,) = final.choices
    assert final.id == expected.id and final.model == expected.model
    assert choice.finish_reason == expected.finish
    assert choice.message.content == (content or None)
    got = [{"id": c.id, "name": c.function.name, "arguments": c.function.arguments}
           for c in choice.message.tool_calls or ()]
    assert got == [calls[i] for i in sorted(calls)]
    thoughts = "".join(d.get("reasoning_content", "") for d in expected.deltas)
    extra = choice.message.model_extra or {}
    assert extra.get("reasoning_content") == (thoughts or None)
    blocks = [b for d in expected.deltas for b in d.get("thinking_blocks", ())]
    assert extra.get("thinking_blocks") == (blocks or None)
    assert final.usage is not None and final.usage.model_dump(exclude_none=True) == expected.usage
