"""Budgets on the other protocols' routes: ``/messages`` (Anthropic) and Gemini's
``generateContent`` run the same admission and settlement as the OpenAI ones. A budget too
small and a model outside the key's list are refused before any upstream call, in the
client's error format (Anthropic: 402 ``billing_error``, which its clients do not retry; 403
``permission_error``; Gemini: 429 ``RESOURCE_EXHAUSTED``, 403 ``PERMISSION_DENIED``); a stream
the client leaves is charged what it used (estimated); Anthropic's cache reads and writes are
billed at their prices; a token count reserves and costs nothing."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx2
import orjson
import pytest
from billing_support import MESSAGES, Served, billing_config

from compatgate.testing import FakeUpstream, Received
from compatgate.usage import estimate_prompt_tokens, estimate_tokens

# micro-units per token (see billing_support.PRICES): input 1, cached 0.5, cache write 0.75, output 2
PRICE = {"input": 1, "output": 2, "cached_input": 0.5, "cache_write": 0.75, "max_tokens": 1000}
ANTHROPIC_BODY = {"max_tokens": 100, "messages": MESSAGES}
GEMINI_BODY = {"contents": [{"role": "user", "parts": [{"text": "Say something."}]}],
               "generationConfig": {"maxOutputTokens": 100}}


def config(url: str, db: Any) -> dict[str, Any]:
    cfg = billing_config(url, db)
    cfg["providers"]["claude"] = {"type": "anthropic", "base_url": url, "api_key": "sk-ant-upstream"}
    cfg["providers"]["gem"] = {"type": "gemini", "base_url": url, "api_key": "gemini-upstream"}
    cfg["models"] += [{"name": "claude-x", "provider": "claude", "upstream_model": "claude-sonnet-4-5"},
                      {"name": "gemini-x", "provider": "gem", "upstream_model": "gemini-2.5-flash"}]
    cfg["plugins"]["billing"]["prices"] = {"gpt-4o*": PRICE, "claude-*": PRICE, "gemini-*": PRICE}
    return cfg


@pytest.fixture
def pgw(make_gateway: Callable[..., Served], upstream: Any, db: Any) -> Served:
    return make_gateway(config(upstream[1], db))


def messages(gw: Served, key: str, body: dict[str, Any], path: str = "/messages") -> httpx2.Response:
    return httpx2.post(f"{gw.url}{path}", json=body, timeout=10,
                       headers={"x-api-key": key, "anthropic-version": "2023-06-01"})


def gemini(gw: Served, key: str, model: str, body: dict[str, Any]) -> httpx2.Response:
    return httpx2.post(f"{gw.url}/v1beta/models/{model}:generateContent", json=body, timeout=10,
                       headers={"x-goog-api-key": key})


def chat_chunks(texts: list[str]) -> bytes:
    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        data = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o",
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
        return b"data: " + orjson.dumps(data) + b"\n\n"

    return b"".join([*(chunk({"content": t}) for t in texts), chunk({}, "stop"), b"data: [DONE]\n\n"])


def anthropic_events(*events: dict[str, Any]) -> bytes:
    return b"".join(b"event: " + e["type"].encode() + b"\ndata: " + orjson.dumps(e) + b"\n\n" for e in events)


def message_start(usage: dict[str, Any]) -> dict[str, Any]:
    return {"type": "message_start", "message": {
        "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5", "content": [],
        "stop_reason": None, "stop_sequence": None, "usage": usage}}


def text_events(texts: list[str], output_tokens: int) -> list[dict[str, Any]]:
    return [{"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
            *({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": t}} for t in texts),
            {"type": "content_block_stop", "index": 0},
            {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
             "usage": {"output_tokens": output_tokens}},
            {"type": "message_stop"}]


def leave_after(gw: Served, key: str, body: dict[str, Any], deltas: int) -> str:
    """Stream ``/messages``, read ``deltas`` text deltas, then hang up; the text received."""
    received = []
    with httpx2.stream("POST", f"{gw.url}/messages", json={**body, "stream": True}, timeout=10,
                       headers={"x-api-key": key, "anthropic-version": "2023-06-01"}) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if line.startswith("data: ") and '"text_delta"' in line:
                received.append(orjson.loads(line[6:])["delta"]["text"])
                if len(received) == deltas:
                    break
    return "".join(received)


def test_a_converted_messages_stream_left_by_the_client_is_charged_its_estimate(pgw: Served, upstream, db):
    fake, _ = upstream
    fake.handler = fake.sse_reply(chat_chunks(["word " * 10] * 6), delay=0.2)
    key_id, key = pgw.create_key(budget=1)
    text = leave_after(pgw, key, {"model": "gpt-4o", **ANTHROPIC_BODY}, 2)
    assert fake.hung_up.wait(5)
    [row] = db.wait_for_rows(1)
    status, cost, charged, estimated, prompt, completion = row[3], row[4], row[5], row[7], row[8], row[9]
    assert status == "aborted" and estimated
    assert prompt == estimate_prompt_tokens({"messages": MESSAGES})  # the chat request sent upstream
    assert estimate_tokens(len(text)) <= completion < estimate_tokens(len("word " * 10) * 6)
    assert cost == charged == prompt * 1 + completion * 2 > 0
    assert db.key(key_id).spent_micro == charged and db.key(key_id).reserved_micro == 0


def test_a_native_messages_stream_left_by_the_client_is_charged_what_it_said(pgw: Served, upstream, db):
    fake, _ = upstream
    start = message_start({"input_tokens": 300, "cache_read_input_tokens": 0, "output_tokens": 1})
    fake.handler = fake.sse_reply(anthropic_events(start, *text_events(["word " * 10] * 6, 120)), delay=0.2)
    key_id, key = pgw.create_key(budget=1)
    text = leave_after(pgw, key, {"model": "claude-x", **ANTHROPIC_BODY}, 2)
    assert fake.hung_up.wait(5)
    [row] = db.wait_for_rows(1)
    assert (row[3], row[7], row[8]) == ("aborted", True, 300)  # message_start's input, not an estimate
    assert estimate_tokens(len(text)) <= row[9] < 120
    assert row[4] == row[5] == 300 + row[9] * 2 == db.key(key_id).spent_micro


def test_cache_reads_and_writes_are_billed_at_their_prices(pgw: Served, upstream, db):
    fake, _ = upstream
    usage = {"input_tokens": 40, "cache_read_input_tokens": 10, "cache_creation_input_tokens": 8, "output_tokens": 1}
    fake.handler = fake.sse_reply(anthropic_events(message_start(usage), *text_events(["Hello"], 7)))
    key_id, key = pgw.create_key(budget="0.01")
    with httpx2.stream("POST", f"{pgw.url}/messages", json={"model": "claude-x", **ANTHROPIC_BODY, "stream": True},
                       headers={"x-api-key": key}, timeout=10) as response:
        assert response.status_code == 200 and b"message_stop" in response.read()
    fake.handler = fake.json_reply({
        "id": "msg_2", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
        "content": [{"type": "text", "text": "Hi"}], "stop_reason": "end_turn", "stop_sequence": None,
        "usage": {**usage, "output_tokens": 7}})
    assert messages(pgw, key, {"model": "claude-x", **ANTHROPIC_BODY}).status_code == 200
    rows = db.wait_for_rows(2)
    exact = 40 * 1 + 10 * 0.5 + 8 * 0.75 + 7 * 2  # 65 micro-units, streamed or not
    assert [(r[3], r[4], r[5], r[7], r[8], r[9]) for r in rows] == [("ok", exact, exact, False, 58, 7)] * 2
    ledger = db.fetch("SELECT cached_tokens, cache_write_tokens FROM billing_usage")
    assert ledger == [(10, 8), (10, 8)]
    assert db.key(key_id).spent_micro == 2 * exact


@pytest.mark.parametrize("model", ["gpt-4o", "claude-x"])
def test_a_budget_too_small_is_refused_before_the_upstream_in_anthropics_format(pgw: Served, upstream, db, model):
    fake, _ = upstream
    _, key = pgw.create_key(budget="1e-6")
    response = messages(pgw, key, {"model": model, **ANTHROPIC_BODY})
    assert response.status_code == 402, response.text
    assert response.json()["type"] == "error" and response.json()["error"]["type"] == "billing_error"
    assert "quota" in response.json()["error"]["message"] and response.headers["request-id"]
    refused = gemini(pgw, key, "gemini-x", GEMINI_BODY)
    error = refused.json()["error"]
    assert refused.status_code == 429 and error["status"] == "RESOURCE_EXHAUSTED"
    assert {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "INSUFFICIENT_QUOTA",
            "domain": "compatgate"} in error["details"]
    assert fake.received == []
    rows = db.wait_for_rows(2)
    assert [(r[3], r[10]) for r in rows] == [("error", 402), ("error", 429)]


def test_a_model_outside_the_keys_list_is_refused_before_the_upstream(pgw: Served, upstream, db):
    fake, _ = upstream
    _, key = pgw.create_key(budget=1, allowed_models=["gpt-4o*"])
    refused = messages(pgw, key, {"model": "claude-x", **ANTHROPIC_BODY})
    assert refused.status_code == 403 and refused.json()["error"]["type"] == "permission_error"
    denied = gemini(pgw, key, "gemini-x", GEMINI_BODY)
    assert denied.status_code == 403 and denied.json()["error"]["status"] == "PERMISSION_DENIED"
    counted = messages(pgw, key, {"model": "claude-x", "messages": MESSAGES}, "/messages/count_tokens")
    assert counted.status_code == 403
    assert fake.received == []


def test_token_counts_reserve_and_cost_nothing(pgw: Served, upstream, db):
    fake, _ = upstream

    async def counts(request: Received, send: Any) -> None:
        answer = {"input_tokens": 12} if request.path.endswith("/count_tokens") else {"totalTokens": 12}
        await FakeUpstream.json_reply(answer)(request, send)

    fake.handler = counts
    key_id, key = pgw.create_key(budget="1e-6")  # one micro-unit: any generation would be refused
    long = [{"role": "user", "content": "word " * 5000}]
    assert messages(pgw, key, {"model": "claude-x", "messages": long}, "/messages/count_tokens").json() == {
        "input_tokens": 12}
    assert messages(pgw, key, {"model": "gpt-4o", "messages": long}, "/messages/count_tokens").status_code == 200
    counted = httpx2.post(f"{pgw.url}/v1beta/models/gemini-x:countTokens", headers={"x-goog-api-key": key},
                          json={"contents": [{"parts": [{"text": "word " * 5000}]}]}, timeout=10)
    assert counted.json() == {"totalTokens": 12}
    rows = db.wait_for_rows(3)
    assert [(r[3], r[4], r[5], r[6]) for r in rows] == [("ok", 0, 0, 0)] * 3
    assert db.key(key_id).spent_micro == 0


def test_gemini_usage_is_billed(pgw: Served, upstream, db):
    fake, _ = upstream
    fake.handler = fake.json_reply({
        "candidates": [{"content": {"parts": [{"text": "Hi"}], "role": "model"}, "finishReason": "STOP", "index": 0}],
        "usageMetadata": {"promptTokenCount": 30, "candidatesTokenCount": 5, "cachedContentTokenCount": 10,
                          "totalTokenCount": 35}})
    key_id, key = pgw.create_key(budget="0.01")
    assert gemini(pgw, key, "gemini-x", GEMINI_BODY).status_code == 200
    [row] = db.wait_for_rows(1)
    assert (row[3], row[8], row[9]) == ("ok", 30, 5)
    assert row[4] == 20 * 1 + 10 * 0.5 + 5 * 2 == db.key(key_id).spent_micro
