"""`MessageStream`: recorded OpenAI streams, and the conventions of this repository's providers
(reasoning, Gemini thought signatures, Anthropic thinking blocks), encoded chunk by chunk into
Anthropic events that the spec accepts, in a valid order, building the right message."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from anthropic_support import RECORDINGS, recording
from compatgate_anthropic.inbound import MessageStream, to_chat, unseal
from compatgate_anthropic.request import build_request
from compatgate_anthropic.settings import Settings
from compatgate_anthropic.stream import StreamConverter
from anthropic_inbound_support import OPENAI_RECORDINGS, HmacSigner, check_events, openai_chunks, parse_events

from compatgate import UpstreamStreamError, UpstreamTimeoutError

SIGNER = HmacSigner()
MODEL = "alias-model"


def encode(chunks: list[dict[str, Any]], *, stops: list[str] | None = None, one_by_one: bool = True,
           input_tokens: int = 7) -> tuple[MessageStream, bytes]:
    stream = MessageStream(model=MODEL, input_tokens=input_tokens, stop_sequences=stops, signer=SIGNER)
    out = b"".join(stream.feed(chunk) for chunk in chunks) + stream.finish()
    return stream, out


def expected_from_openai(chunks: list[dict[str, Any]]) -> dict[str, Any]:
    """What choice 0 of a chat stream says, read independently of the encoder."""
    text, calls, finish, usage = "", {}, None, None
    for chunk in chunks:
        usage = chunk.get("usage") or usage
        for choice in chunk["choices"]:
            if choice["index"] != 0:
                continue
            delta = choice["delta"]
            text += (delta.get("content") or "") + (delta.get("refusal") or "")
            for call in delta.get("tool_calls") or ():
                entry = calls.setdefault(call["index"], {"id": None, "name": None, "arguments": ""})
                entry["id"] = entry["id"] or call.get("id")
                entry["name"] = entry["name"] or call.get("function", {}).get("name")
                entry["arguments"] += call.get("function", {}).get("arguments") or ""
            finish = choice["finish_reason"] or finish
    refused = any(c["choices"] and c["choices"][0]["delta"].get("refusal") for c in chunks)
    return {"text": text, "calls": [calls[i] for i in sorted(calls)], "finish": finish, "usage": usage,
            "refused": refused}


@pytest.mark.parametrize("name", OPENAI_RECORDINGS)
def test_every_openai_recording_becomes_a_valid_anthropic_stream(name: str, anthropic_schema):
    chunks = openai_chunks(name)
    stream, out = encode(chunks)
    message = check_events(parse_events(out), anthropic_schema)
    expected = expected_from_openai(chunks)
    texts = [b["text"] for b in message["content"] if b["type"] == "text"]
    tools = [b for b in message["content"] if b["type"] == "tool_use"]
    assert "".join(texts) == expected["text"] and len(texts) <= 1
    assert [(t["id"], t["name"], t["input"]) for t in tools] == [
        (c["id"], c["name"], orjson.loads(c["arguments"])) for c in expected["calls"]]
    reasons = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use"}
    assert message["stop_reason"] == ("refusal" if expected["refused"] else reasons[expected["finish"]])
    usage = expected["usage"]
    assert message["usage"]["input_tokens"] == usage["prompt_tokens"]
    assert message["usage"]["output_tokens"] == usage["completion_tokens"]
    assert stream.usage is not None and stream.usage.total_tokens == usage["total_tokens"]
    assert stream.generated == len(expected["text"]) + sum(len(c["arguments"]) for c in expected["calls"])
    assert message["model"] == MODEL and message["id"].startswith("msg_")


def test_message_start_comes_first_with_the_estimate_and_pings_follow_it(anthropic_schema):
    stream = MessageStream(model=MODEL, input_tokens=0, stop_sequences=None, signer=SIGNER)
    first = parse_events(stream.ping())
    assert [name for name, _ in first] == ["message_start", "ping"]
    assert first[0][1]["message"]["usage"]["input_tokens"] == 1  # never 0, even from a 0 estimate
    assert parse_events(stream.ping()) == [("ping", {"type": "ping"})]
    rest = stream.feed({"choices": [{"index": 0, "delta": {"content": "Hi"}, "finish_reason": "stop"}]})
    message = check_events(first + [("ping", {"type": "ping"})] + parse_events(rest + stream.finish()),
                           anthropic_schema)
    assert message["content"][0]["text"] == "Hi"
    # Without a usage chunk, message_delta keeps the input estimate and estimates the output.
    assert (message["usage"]["input_tokens"], message["usage"]["output_tokens"]) == (1, 1)


def test_reasoning_then_text_then_tools_each_in_its_block(anthropic_schema):
    chunks = [
        _chunk({"role": "assistant", "reasoning_content": "Let me "}),
        _chunk({"reasoning_content": "think."}),
        _chunk({"content": "Calling two tools."}),
        _chunk({"tool_calls": [{"index": 0, "id": "call_a", "type": "function",
                                "function": {"name": "get_weather", "arguments": ""}}]}),
        _chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"city": '}}]}),
        _chunk({"tool_calls": [{"index": 0, "function": {"arguments": '"Paris"}'}}]}),
        _chunk({"tool_calls": [{"index": 1, "id": "functions.lookup:1", "type": "function",
                                "function": {"name": "lookup", "arguments": "{}"}}]}),
        _chunk({}, finish="tool_calls"),
        {"id": "x", "choices": [], "usage": {"prompt_tokens": 30, "completion_tokens": 12, "total_tokens": 42,
                                            "prompt_tokens_details": {"cached_tokens": 10}}},
    ]
    stream, out = encode(chunks)
    message = check_events(parse_events(out), anthropic_schema)
    kinds = [block["type"] for block in message["content"]]
    assert kinds == ["thinking", "text", "tool_use", "tool_use"]
    thinking = message["content"][0]
    assert thinking["thinking"] == "Let me think."
    assert unseal(SIGNER, thinking["signature"], model=MODEL, thinking="Let me think.") is not None
    assert message["content"][2]["input"] == {"city": "Paris"}
    assert message["content"][3]["id"].startswith("toolu_b64_")  # Kimi-style id made Anthropic-safe
    assert message["stop_reason"] == "tool_use"
    assert (message["usage"]["input_tokens"], message["usage"]["cache_read_input_tokens"],
            message["usage"]["output_tokens"]) == (20, 10, 12)
    assert stream.generated == len("Let me think.Calling two tools.") + len('{"city": "Paris"}{}')


def test_gemini_thought_signatures_ride_in_a_thinking_block_before_their_tool_call(anthropic_schema):
    """Gemini signs a function call (on the tool call) and text (on the delta): each signature
    reaches the client in a gateway-signed thinking block, and comes back on the next turn."""
    chunks = [
        _chunk({"role": "assistant", "content": "Checking.", "extra_content": {"google": {"thought_signature": "sig-text"}}}),
        _chunk({"tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                                "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                                "extra_content": {"google": {"thought_signature": "sig-call"}}},
                               {"index": 1, "id": "call_2", "type": "function",
                                "function": {"name": "get_weather", "arguments": '{"city":"Rome"}'}}]},
               finish="tool_calls"),
    ]
    _, out = encode(chunks)
    message = check_events(parse_events(out), anthropic_schema)
    assert [block["type"] for block in message["content"]] == ["text", "thinking", "tool_use", "tool_use"]
    thinking = message["content"][1]
    assert thinking["thinking"] == ""
    state = unseal(SIGNER, thinking["signature"], model=MODEL, thinking="")
    assert state is not None and state.tools == {"call_1": "sig-call"} and state.message == "sig-text"
    # The next turn: the assistant message goes back as the client received it.
    request = _next_turn(message)
    assistant = to_chat(request, SIGNER).body["messages"][1]
    assert assistant["extra_content"] == {"google": {"thought_signature": "sig-text"}}
    assert [c.get("extra_content") for c in assistant["tool_calls"]] == [
        {"google": {"thought_signature": "sig-call"}}, None]
    # Another model does not get them (nor would an edited thinking text).
    other = to_chat({**request, "model": "another-model"}, SIGNER)
    assert "extra_content" not in other.body["messages"][1] and other.dropped_thinking == 1


def _complete_recordings() -> list[str]:
    """The recorded Anthropic streams that end with ``message_stop`` (a cut one is no round trip)."""
    from anthropic_support import recorded_events

    names = []
    for name in RECORDINGS:
        if name == "tool_use_invalid_json_response.txt":
            continue
        converter = StreamConverter(None, "claude")
        for event in recorded_events(recording(name)):
            converter.feed(event)
        if converter.done:
            names.append(name)
    return names


@pytest.mark.parametrize("name", _complete_recordings())
def test_anthropic_streams_through_the_pivot_and_back(name: str, anthropic_schema):
    """An Anthropic upstream reached through chat (this plugin's StreamConverter) and served back
    as Anthropic events: text, tool inputs, stop reason and usage survive, and the thinking blocks
    with Anthropic's own signatures come back to the upstream exactly on the next turn."""
    from anthropic_support import recorded_events

    original = recorded_events(recording(name))
    converter = StreamConverter(None, "claude")
    chunks = [c for event in original for c in converter.feed(event)]
    assert converter.done
    _, out = encode(chunks)
    message = check_events(parse_events(out), anthropic_schema)
    deltas = [e for e in original if e["type"] == "content_block_delta"]
    assert "".join(b["text"] for b in message["content"] if b["type"] == "text") == "".join(
        d["delta"].get("text", "") for d in deltas if d["delta"]["type"] == "text_delta")
    starts = [e["content_block"] for e in original if e["type"] == "content_block_start"]
    assert [b["name"] for b in message["content"] if b["type"] == "tool_use"] == [
        b["name"] for b in starts if b["type"] == "tool_use"]
    stop = next(e for e in original if e["type"] == "message_delta")["delta"]["stop_reason"]
    assert message["stop_reason"] == {"pause_turn": "end_turn"}.get(stop, stop)
    thinking = [b for b in starts if b["type"] in ("thinking", "redacted_thinking")]
    if thinking:
        sent = build_request(to_chat(_next_turn(message), SIGNER).body, Settings()).body
        upstream_blocks = [b for b in sent["messages"][1]["content"] if b["type"] in ("thinking", "redacted_thinking")]
        signatures = [d["delta"]["signature"] for d in deltas if d["delta"]["type"] == "signature_delta"]
        assert signatures and all(signatures)
        assert [b.get("signature") for b in upstream_blocks] == signatures


def test_a_broken_stream_ends_with_an_error_event_and_never_message_stop(anthropic_schema):
    stream = MessageStream(model=MODEL, input_tokens=5, stop_sequences=None, signer=SIGNER, request_id="req_1")
    out = stream.feed(_chunk({"role": "assistant", "content": "Half an ans"}))
    out += stream.error(UpstreamTimeoutError("The upstream did not answer in time."))
    events = parse_events(out)
    check_events(events, anthropic_schema, complete=False)
    assert events[-1] == ("error", {"type": "error", "request_id": "req_1", "error": {
        "type": "timeout_error", "message": "The upstream did not answer in time."}})
    assert stream.finish() == b"" and stream.feed(_chunk({"content": "more"})) == b"" and stream.ping() == b""


def test_stop_sequences_use_vllm_stop_reason():
    chunks = [_chunk({"content": "one two"}), _chunk({}, finish="stop", stop_reason="THREE")]
    events = parse_events(encode(chunks, stops=["THREE", "FOUR"])[1])
    delta = next(e for n, e in events if n == "message_delta")["delta"]
    assert (delta["stop_reason"], delta["stop_sequence"]) == ("stop_sequence", "THREE")
    events = parse_events(encode(chunks, stops=["FOUR"])[1])  # not one of ours: a plain end of turn
    assert next(e for n, e in events if n == "message_delta")["delta"]["stop_reason"] == "end_turn"


def test_a_tool_call_whose_name_comes_later_is_started_with_its_arguments(anthropic_schema):
    chunks = [_chunk({"tool_calls": [{"index": 0, "id": "call_x", "function": {"arguments": '{"a"'}}]}),
              _chunk({"tool_calls": [{"index": 0, "function": {"name": "f", "arguments": ": 1}"}}]}, "tool_calls")]
    message = check_events(parse_events(encode(chunks)[1]), anthropic_schema)
    assert message["content"] == [{"type": "tool_use", "id": "call_x", "name": "f", "input": {"a": 1},
                                   "caller": {"type": "direct"}}]


def test_tool_calls_that_cannot_be_carried_fail_loudly():
    interleaved = [_chunk({"tool_calls": [{"index": 0, "id": "a", "function": {"name": "f", "arguments": "{"}}]}),
                   _chunk({"tool_calls": [{"index": 1, "id": "b", "function": {"name": "g", "arguments": "{}"}}]}),
                   _chunk({"tool_calls": [{"index": 0, "function": {"arguments": "}"}}]})]
    stream = MessageStream(model=MODEL, input_tokens=5, stop_sequences=None, signer=SIGNER)
    stream.feed(interleaved[0])
    stream.feed(interleaved[1])
    with pytest.raises(UpstreamStreamError, match="interleaved"):
        stream.feed(interleaved[2])
    nameless = MessageStream(model=MODEL, input_tokens=5, stop_sequences=None, signer=SIGNER)
    nameless.feed(_chunk({"tool_calls": [{"index": 0, "id": "a", "function": {"arguments": "{}"}}]}, "tool_calls"))
    with pytest.raises(UpstreamStreamError, match="without a name"):
        nameless.finish()


# -- helpers ------------------------------------------------------------------------------------


def _chunk(delta: dict[str, Any], finish: str | None = None, **choice: Any) -> dict[str, Any]:
    return {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "up",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish, **choice}]}


def _next_turn(message: dict[str, Any]) -> dict[str, Any]:
    """The request a client sends after ``message``: it, then the results of its tool calls."""
    results = [{"type": "tool_result", "tool_use_id": b["id"], "content": "ok"}
               for b in message["content"] if b["type"] == "tool_use"]
    messages = [{"role": "user", "content": "Go."}, {"role": "assistant", "content": message["content"]}]
    messages.append({"role": "user", "content": results or "Thanks."})
    return {"model": MODEL, "max_tokens": 100, "messages": messages}
