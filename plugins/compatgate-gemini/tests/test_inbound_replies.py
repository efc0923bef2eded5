"""from_chat, embeddings and countTokens of the Gemini inbound direction."""

from __future__ import annotations

import base64
import struct

import pytest
from compatgate_gemini.inbound import (
    count_tokens_estimate,
    embed_from_openai,
    embed_to_openai,
    from_chat,
    to_chat,
    unwrap_signatures,
)
from compatgate_gemini.inbound.envelope import State, seal, unseal
from google.genai import types
from gemini_inbound_support import HMACSigner

from compatgate import InvalidRequestError, UpstreamError

SIGNER = HMACSigner()


def completion(message: dict, finish: str = "stop", **extra) -> dict:
    return {"id": "chatcmpl-abc", "object": "chat.completion", "created": 1, "model": "gpt-x",
            "choices": [{"index": 0, "message": {"role": "assistant", **message}, "finish_reason": finish, **extra}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 7, "total_tokens": 17,
                      "prompt_tokens_details": {"cached_tokens": 4}, "completion_tokens_details": {"reasoning_tokens": 3}}}


def test_a_text_answer():
    response = from_chat(completion({"content": "Paris", "reasoning_content": "Capital of France."}), model="m", signer=SIGNER)
    assert response == {
        "candidates": [{"content": {"parts": [{"text": "Capital of France.", "thought": True}, {"text": "Paris"}], "role": "model"},
                        "finishReason": "STOP", "index": 0}],
        "usageMetadata": {"promptTokenCount": 10, "candidatesTokenCount": 4, "totalTokenCount": 17,
                          "thoughtsTokenCount": 3, "cachedContentTokenCount": 4},
        "modelVersion": "gpt-x", "responseId": "abc"}
    parsed = types.GenerateContentResponse.model_validate(response)
    assert parsed.text == "Paris"
    hidden = from_chat(completion({"content": "Paris", "reasoning_content": "x"}), model="m", signer=SIGNER, thoughts=False)
    assert hidden["candidates"][0]["content"]["parts"] == [{"text": "Paris"}]


def test_tool_calls_with_claude_thinking():
    blocks = [{"type": "thinking", "thinking": "Let me check.", "signature": "sig=="}]
    message = {"content": "Checking.", "thinking_blocks": blocks, "reasoning_content": "Let me check.", "tool_calls": [
        {"id": "toolu_1", "type": "function", "function": {"name": "weather", "arguments": '{"city":"Oslo"}'}},
        {"id": "toolu_2", "type": "function", "function": {"name": "time", "arguments": ""}}]}
    response = from_chat(completion(message, "tool_calls"), model="claude", signer=SIGNER, thoughts=False)
    parts = response["candidates"][0]["content"]["parts"]
    assert [{k: v for k, v in p.items() if k != "thoughtSignature"} for p in parts] == [
        {"text": "Checking."},
        {"functionCall": {"name": "weather", "args": {"city": "Oslo"}, "id": "toolu_1"}},
        {"functionCall": {"name": "time", "args": {}, "id": "toolu_2"}}]
    assert [("thoughtSignature" in p) for p in parts] == [False, True, False]
    assert unseal(parts[1]["thoughtSignature"], SIGNER, "claude").thinking_blocks == blocks
    parsed = types.GenerateContentResponse.model_validate(response)
    assert [c.name for c in parsed.function_calls] == ["weather", "time"]
    assert response["candidates"][0]["finishReason"] == "STOP"
    # the next turn restores the blocks for Claude
    history = [{"role": "user", "parts": [{"text": "Weather and time?"}]}, response["candidates"][0]["content"],
               {"role": "user", "parts": [{"functionResponse": {"name": "weather", "id": "toolu_1", "response": {"t": 3}}},
                                          {"functionResponse": {"name": "time", "id": "toolu_2", "response": {"t": "9:00"}}}]}]
    assistant = to_chat({"contents": history}, model="claude", stream=False, signer=SIGNER).body["messages"][1]
    assert assistant["thinking_blocks"] == blocks and assistant["content"] == "Checking."


@pytest.mark.parametrize(("finish", "native", "expected"), [
    ("stop", None, "STOP"), ("tool_calls", None, "STOP"), ("length", None, "MAX_TOKENS"),
    ("content_filter", None, "SAFETY"), ("something_else", None, "OTHER"), ("content_filter", "RECITATION", "RECITATION"),
    ("stop", "end_turn", "STOP")])
def test_finish_reasons(finish: str, native: str | None, expected: str):
    extra = {"native_finish_reason": native} if native else {}
    response = from_chat(completion({"content": "x"}, finish, **extra), model="m", signer=SIGNER)
    assert response["candidates"][0]["finishReason"] == expected


def test_malformed_arguments_and_empty_answers():
    bad = {"content": None, "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{oops"}}]}
    response = from_chat(completion(bad, "tool_calls"), model="m", signer=SIGNER)
    assert response["candidates"][0] == {"finishReason": "MALFORMED_FUNCTION_CALL", "index": 0}
    empty = from_chat(completion({"content": ""}), model="m", signer=SIGNER)
    assert empty["candidates"][0]["content"]["parts"] == [{"text": ""}]
    refusal = from_chat(completion({"content": None, "refusal": "I can't help with that."}), model="m", signer=SIGNER)
    assert refusal["candidates"][0]["content"]["parts"] == [{"text": "I can't help with that."}]


def test_several_candidates():
    chat = completion({"content": "a"})
    chat["choices"].append({"index": 1, "message": {"role": "assistant", "content": "b"}, "finish_reason": "length"})
    response = from_chat(chat, model="m", signer=SIGNER)
    assert [(c["index"], c["content"]["parts"][0]["text"], c["finishReason"]) for c in response["candidates"]] == [
        (0, "a", "STOP"), (1, "b", "MAX_TOKENS")]
    types.GenerateContentResponse.model_validate(response)


def test_unwrap_signatures_for_a_native_upstream():
    real = "CmIBvj72+4pAeKnG"
    with_real = seal(State(model="gemini-3", signature=real), SIGNER)
    claude_only = seal(State(model="gemini-3", thinking_blocks=[{"type": "thinking", "thinking": "x", "signature": "s"}]), SIGNER)
    other_model = seal(State(model="claude", signature=real), SIGNER)
    body = {"contents": [{"role": "model", "parts": [
        {"functionCall": {"name": "f"}, "thoughtSignature": with_real},
        {"functionCall": {"name": "g"}, "thoughtSignature": claude_only},
        {"text": "hi", "thoughtSignature": other_model},
        {"text": "ok", "thoughtSignature": real}]}]}
    parts = unwrap_signatures(body, model="gemini-3", signer=SIGNER)["contents"][0]["parts"]
    assert parts == [{"functionCall": {"name": "f"}, "thoughtSignature": real},
                     {"functionCall": {"name": "g"}, "thoughtSignature": "skip_thought_signature_validator"},
                     {"text": "hi"}, {"text": "ok", "thoughtSignature": real}]
    untouched = {"contents": [{"role": "user", "parts": [{"text": "x"}]}]}
    assert unwrap_signatures(untouched, model="gemini-3", signer=SIGNER) is untouched


def test_embeddings():
    single = embed_to_openai({"model": "models/e", "content": {"parts": [{"text": "a"}, {"text": "b"}]},
                              "taskType": "RETRIEVAL_QUERY", "output_dimensionality": 4}, model="emb", batch=False)
    assert single == {"model": "emb", "input": "a\nb", "encoding_format": "float", "dimensions": 4}
    batch = embed_to_openai({"requests": [{"content": {"parts": [{"text": "x"}]}}, {"content": {"parts": [{"text": "y"}]}}]},
                            model="emb", batch=True)
    assert batch == {"model": "emb", "input": ["x", "y"], "encoding_format": "float"}
    with pytest.raises(InvalidRequestError, match="same 'outputDimensionality'"):
        embed_to_openai({"requests": [{"content": {"parts": [{"text": "x"}]}, "outputDimensionality": 3},
                                      {"content": {"parts": [{"text": "y"}]}}]}, model="emb", batch=True)
    packed = base64.b64encode(struct.pack("<2f", 0.5, -1.0)).decode()
    reply = {"object": "list", "data": [{"index": 1, "embedding": packed}, {"index": 0, "embedding": [1, 2.5]}]}
    assert embed_from_openai(reply, batch=True, count=2) == {"embeddings": [{"values": [1.0, 2.5]}, {"values": [0.5, -1.0]}]}
    assert embed_from_openai({"data": [{"index": 0, "embedding": [0.1]}]}, batch=False) == {"embedding": {"values": [0.1]}}
    for embedding in embed_from_openai(reply, batch=True)["embeddings"]:
        types.ContentEmbedding.model_validate(embedding)
    with pytest.raises(UpstreamError):
        embed_from_openai(reply, batch=True, count=3)
    with pytest.raises(UpstreamError):
        embed_from_openai({"data": [{"index": 0, "embedding": "not base64!"}]}, batch=False)


def test_count_tokens_estimate():
    text = "x" * 400
    assert count_tokens_estimate({"contents": [{"parts": [{"text": text}]}]}) == 100 + 4
    with_media = {"contents": [{"parts": [{"text": text}, {"inline_data": {"mime_type": "image/png", "data": "AA=="}}]}]}
    assert count_tokens_estimate(with_media) == 100 + 258 + 4
    nested = {"generateContentRequest": {"model": "models/x", "contents": [{"parts": [{"text": text}]}],
                                         "systemInstruction": {"parts": [{"text": text}]}}}
    assert count_tokens_estimate(nested) == 200 + 8
    types.CountTokensResponse.model_validate({"totalTokens": count_tokens_estimate(nested)})
