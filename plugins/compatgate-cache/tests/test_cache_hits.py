"""Identical requests hit, through the official SDK and over raw HTTP, on both backends;
hits replay as valid answers and streams, each kind of entry serving both kinds of request."""

from __future__ import annotations

import orjson
from cache_support import COMPLETION, LOGPROBS, TEXT, THREE, answering, cache_status, chunks, events, text_of

QUESTION = {"messages": [{"role": "user", "content": "Say hello."}], "temperature": 0}


def test_identical_requests_hit_through_the_sdk(make_gateway, upstream, schema):
    gw = make_gateway()
    client = gw.client()
    first = client.chat.completions.with_raw_response.create(model="gpt-4o", **QUESTION)
    second = client.chat.completions.with_raw_response.create(model="gpt-4o", **QUESTION)
    assert first.headers["x-compatgate-cache"] == "miss"
    assert second.headers["x-compatgate-cache"] == "hit"
    assert len(upstream[0].received) == 1
    answer = second.parse()
    assert answer.choices[0].message.content == COMPLETION["choices"][0]["message"]["content"]
    assert answer.usage.total_tokens == 21
    schema.validate("CreateChatCompletionResponse", orjson.loads(second.content))
    miss, hit = gw.records(2)
    assert (miss.cache, miss.cached, hit.cache, hit.cached) == ("miss", False, "hit", True)
    assert hit.usage == miss.usage and hit.outcome == "ok" and hit.status_code == 200
    assert hit.attempts == () and len(miss.attempts) == 1


def test_a_streamed_hit_replays_the_recorded_stream(make_gateway, upstream, schema):
    gw = make_gateway()
    body = {**QUESTION, "stream": True, "stream_options": {"include_usage": True}}
    first, second = gw.chat(body), gw.chat(body)
    assert (cache_status(first), cache_status(second)) == ("miss", "hit")
    assert len(upstream[0].received) == 1
    recorded = [e for e in events(TEXT) if e != b"[DONE]"]
    assert events(second.content) == [*recorded, b"[DONE]"]  # the upstream's own bytes, in order
    assert second.content.endswith(b"data: [DONE]\n\n")
    for chunk in chunks(second.content):
        schema.validate("CreateChatCompletionStreamResponse", chunk)
    hit = gw.records(2)[1]
    assert hit.cached and hit.streamed and hit.usage is not None and not hit.usage.estimated
    assert hit.finish_reasons == ("stop",) and hit.time_to_first_token_ms is not None


def test_the_sdk_reads_a_replayed_stream(make_gateway, upstream):
    gw = make_gateway()
    client = gw.client()
    texts = []
    for _ in range(2):
        stream = client.chat.completions.create(model="gpt-4o", stream=True, **QUESTION)
        texts.append("".join(c.choices[0].delta.content or "" for c in stream if c.choices))
    assert texts[0] == texts[1] == text_of(chunks(TEXT))
    assert len(upstream[0].received) == 1


def test_the_usage_chunk_is_kept_and_stripped_when_not_asked_for(make_gateway, upstream):
    gw = make_gateway()
    gw.chat({**QUESTION, "stream": True})
    hit = gw.chat({**QUESTION, "stream": True, "stream_options": {"include_usage": True}})
    assert cache_status(hit) == "hit" and chunks(hit.content)[-1]["usage"]["total_tokens"] > 0
    plain = gw.chat({**QUESTION, "stream": True})
    assert cache_status(plain) == "hit"
    assert all(chunk["choices"] for chunk in chunks(plain.content))  # no usage chunk
    assert gw.records(3)[2].usage == gw.records(3)[1].usage  # still known for billing


def test_a_non_streamed_request_is_served_from_a_recorded_stream(make_gateway, upstream, schema):
    gw = make_gateway()
    gw.chat({**QUESTION, "stream": True})
    hit = gw.chat(QUESTION)
    assert cache_status(hit) == "hit" and len(upstream[0].received) == 1
    answer = orjson.loads(hit.content)
    schema.validate("CreateChatCompletionResponse", answer)
    assert answer["object"] == "chat.completion"
    assert answer["choices"][0]["message"]["content"] == text_of(chunks(TEXT))
    assert answer["choices"][0]["finish_reason"] == "stop" and answer["usage"]["total_tokens"] > 0


def test_a_streamed_request_is_served_from_a_complete_answer(make_gateway, upstream, schema):
    gw = make_gateway()
    gw.chat(QUESTION)
    hit = gw.chat({**QUESTION, "stream": True, "stream_options": {"include_usage": True}})
    assert cache_status(hit) == "hit" and len(upstream[0].received) == 1
    replayed = chunks(hit.content)
    for chunk in replayed:
        schema.validate("CreateChatCompletionStreamResponse", chunk)
    assert text_of(replayed) == COMPLETION["choices"][0]["message"]["content"]
    assert [c["choices"][0]["finish_reason"] for c in replayed if c["choices"]] == [None, "stop"]
    assert replayed[-1]["usage"] == COMPLETION["usage"]


def test_three_choices_and_logprobs_replay(make_gateway, upstream, schema):
    gw = make_gateway()
    answering(upstream[0], THREE)
    body = {**QUESTION, "n": 3, "stream": True}
    gw.chat(body)
    streamed, whole = gw.chat(body), gw.chat({**QUESTION, "n": 3})
    assert cache_status(streamed) == cache_status(whole) == "hit"
    recorded = chunks(THREE)
    assert [text_of(chunks(streamed.content), i) for i in range(3)] == [text_of(recorded, i) for i in range(3)]
    answer = orjson.loads(whole.content)
    schema.validate("CreateChatCompletionResponse", answer)
    assert [c["message"]["content"] for c in answer["choices"]] == [text_of(recorded, i) for i in range(3)]
    answering(upstream[0], LOGPROBS)
    body = {**QUESTION, "logprobs": True, "top_logprobs": 2}
    gw.chat({**body, "stream": True})
    answer = orjson.loads(gw.chat(body).content)
    schema.validate("CreateChatCompletionResponse", answer)
    tokens = [item["token"] for item in answer["choices"][0]["logprobs"]["content"]]
    assert "".join(tokens) == answer["choices"][0]["message"]["content"]


def test_completions_and_embeddings_hit(make_gateway, upstream, schema):
    gw = make_gateway()
    prompt = {"model": "gpt-3.5-turbo-instruct", "prompt": "It was", "temperature": 0}
    first, second = gw.post("/completions", prompt), gw.post("/completions", prompt)
    assert (cache_status(first), cache_status(second)) == ("miss", "hit")
    schema.validate("CreateCompletionResponse", orjson.loads(second.content))
    streamed = gw.post("/completions", {**prompt, "stream": True})
    assert cache_status(streamed) == "hit"
    replayed = chunks(streamed.content)
    assert "".join(c["choices"][0]["text"] for c in replayed if c["choices"]) == " a quiet morning."
    for chunk in replayed:
        schema.validate("CreateCompletionResponse", chunk)
    embed = {"model": "text-embedding-3-small", "input": "The quick brown fox."}  # no temperature
    first, second = gw.post("/embeddings", embed), gw.post("/embeddings", embed)
    assert (cache_status(first), cache_status(second)) == ("miss", "hit")
    assert second.content == first.content  # the upstream's bytes
    assert len(upstream[0].received) == 2
    schema.validate("CreateEmbeddingResponse", orjson.loads(second.content))
