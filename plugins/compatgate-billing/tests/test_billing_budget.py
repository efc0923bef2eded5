"""Budgets: the worst case reserved at admission, the real cost settled, 429 insufficient_quota,
prices per token kind, unpriced models, top-ups, and aborted streams billed for what they used."""

from __future__ import annotations

import asyncio

import httpx2
import openai
import orjson
import pytest
from billing_support import MESSAGES, Served, chat_answer, worst_case_answer, worst_case_micro

from compatgate.testing import OpenAISchema
from compatgate.usage import estimate_prompt_tokens, estimate_tokens


def test_settles_the_real_cost_and_releases_the_rest(gw: Served, upstream, db):
    fake, _ = upstream
    # 40 prompt tokens of which 10 cached reads and 8 cache writes; 7 out.
    fake.handler = fake.json_reply(chat_answer(40, 7, cached_tokens=10, cache_write_tokens=8))
    key_id, key = gw.create_key(budget="0.01")  # 10000 micro-units
    answer = gw.client(key).chat.completions.create(
        model="gpt-4o", messages=MESSAGES, max_tokens=100
    )
    assert answer.usage.prompt_tokens == 40
    [row] = db.wait_for_rows(1)
    exact = 22 * 1 + 10 * 0.5 + 8 * 0.75 + 7 * 2  # micro-units: see PRICES
    assert row[3] == "ok" and row[2] == key_id and exact == 47
    assert (row[4], row[5], row[6]) == (47, 47, worst_case_micro(100))
    key_row = db.key(key_id)
    assert (key_row.balance_micro, key_row.reserved_micro, key_row.spent_micro) == (
        10000 - 47,
        0,
        47,
    )
    assert db.fetch("SELECT COUNT(*) FROM billing_reservations") == [(0,)]


def test_insufficient_quota(gw: Served, upstream, db, openai_schema: OpenAISchema):
    fake, _ = upstream
    fake.handler = worst_case_answer()
    cost = worst_case_micro(100)
    key_id, key = gw.create_key(budget=f"{cost * 2 - 1}e-6")  # room for one request, not two
    sdk = gw.client(key)
    sdk.chat.completions.create(model="gpt-4o", messages=MESSAGES, max_tokens=100)
    db.wait_for_rows(1)
    response = httpx2.post(
        f"{gw.url}/chat/completions",
        headers={"authorization": f"Bearer {key}"},
        timeout=10,
        json={"model": "gpt-4o", "messages": MESSAGES, "max_tokens": 100},
    )
    assert response.status_code == 429
    body = response.json()
    openai_schema.validate("ErrorResponse", body)
    assert (
        body["error"]["code"] == "insufficient_quota"
        and body["error"]["type"] == "insufficient_quota"
    )
    assert "quota" in body["error"]["message"]
    with pytest.raises(openai.RateLimitError) as caught:
        sdk.chat.completions.create(model="gpt-4o", messages=MESSAGES, max_tokens=100)
    assert caught.value.code == "insufficient_quota"
    assert len(fake.received) == 1  # refused requests never went upstream
    # A smaller request still fits in what is left.
    sdk.chat.completions.create(model="gpt-4o", messages=MESSAGES, max_tokens=10)
    rows = db.wait_for_rows(4)
    assert [(r[3], r[10]) for r in rows] == [
        ("ok", 200),
        ("error", 429),
        ("error", 429),
        ("ok", 200),
    ]
    assert sum(r[5] for r in rows) == cost + worst_case_micro(10) == db.key(key_id).spent_micro


def test_without_max_tokens_the_models_maximum_is_reserved(gw: Served, upstream, db):
    fake, _ = upstream
    fake.handler = fake.json_reply(chat_answer(5, 5))
    _, key = gw.create_key(budget=f"{worst_case_micro(1000) - 1}e-6")  # model max_tokens = 1000
    sdk = gw.client(key)
    with pytest.raises(openai.RateLimitError):
        sdk.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert sdk.chat.completions.create(model="gpt-4o", messages=MESSAGES, max_completion_tokens=999)
    with pytest.raises(openai.RateLimitError):  # two choices: twice the output
        sdk.chat.completions.create(model="gpt-4o", messages=MESSAGES, max_tokens=999, n=2)


def test_top_up_and_adjustments_are_credit_entries(gw: Served, upstream, db):
    fake, _ = upstream
    fake.handler = worst_case_answer()
    key_id, key = gw.create_key(budget=0)
    sdk = gw.client(key)
    with pytest.raises(openai.RateLimitError):
        sdk.chat.completions.create(model="gpt-4o", messages=MESSAGES, max_tokens=10)
    topped = gw.admin("POST", f"/keys/{key_id}/balance", {"amount": "0.001", "note": "invoice 7"})
    assert topped.status_code == 200 and topped.json()["key"]["available_micro"] == 1000
    sdk.chat.completions.create(model="gpt-4o", messages=MESSAGES, max_tokens=10)
    db.wait_for_rows(2)
    spent = worst_case_micro(10)
    assert (
        gw.admin(
            "POST", f"/keys/{key_id}/balance", {"amount": -2000, "adjustment": True}
        ).status_code
        == 400
    )
    adjusted = gw.admin(
        "POST", f"/keys/{key_id}/balance", {"amount": -0.0001, "adjustment": True}
    ).json()
    assert adjusted["key"]["balance_micro"] == 1000 - spent - 100
    assert (
        gw.admin("POST", f"/keys/{key_id}/balance", {"amount": -1}).status_code == 400
    )  # top-ups are positive
    credits = gw.admin("GET", f"/keys/{key_id}/credits").json()["data"]
    assert [(c["kind"], c["amount_micro"], c["note"]) for c in credits] == [
        ("adjustment", -100, None),
        ("topup", 1000, "invoice 7"),
    ]
    key_row = db.key(key_id)
    assert key_row.credited_micro - key_row.spent_micro == key_row.balance_micro == 900 - spent


def test_unpriced_models_free_or_refused(make_gateway, upstream, db):
    fake, _ = upstream
    fake.handler = fake.json_reply(chat_answer(5, 5))
    free = make_gateway()
    key_id, key = free.create_key(budget=0)
    assert free.client(key).chat.completions.create(model="other-model", messages=MESSAGES)
    [row] = db.wait_for_rows(1)
    assert (row[2], row[3], row[4], row[5]) == (key_id, "ok", 0, 0)
    refusing = make_gateway(unpriced="refuse")
    _, key = refusing.create_key(budget=1)
    response = httpx2.post(
        f"{refusing.url}/chat/completions",
        headers={"authorization": f"Bearer {key}"},
        timeout=10,
        json={"model": "other-model", "messages": MESSAGES},
    )
    assert response.status_code == 403 and response.json()["error"]["code"] == "model_not_priced"


def test_unlimited_keys_are_charged_without_limit(gw: Served, upstream, db):
    fake, _ = upstream
    fake.handler = fake.json_reply(chat_answer(1000, 1000))
    key_id, key = gw.create_key()  # no budget
    for _ in range(3):
        gw.client(key).chat.completions.create(model="gpt-4o", messages=MESSAGES, max_tokens=5000)
    db.wait_for_rows(3)
    key_row = db.key(key_id)
    assert key_row.unlimited and key_row.spent_micro == 9000 and key_row.balance_micro == -9000


def test_embeddings_are_billed_for_their_input(gw: Served, upstream, db):
    fake, _ = upstream
    fake.handler = fake.json_reply(
        {
            "object": "list",
            "model": "text-embedding-3-small",
            "data": [{"object": "embedding", "index": 0, "embedding": [0.1, 0.2]}],
            "usage": {"prompt_tokens": 12, "total_tokens": 12},
        }
    )
    _, key = gw.create_key(budget=1)
    gw.client(key).embeddings.create(
        model="gpt-4o-embedding", input="hello", encoding_format="float"
    )
    [row] = db.wait_for_rows(1)
    assert (row[4], row[5], row[8], row[9]) == (12, 12, 12, 0)


def sse(chunks: list[dict]) -> bytes:
    return b"".join(b"data: " + orjson.dumps(c) + b"\n\n" for c in chunks) + b"data: [DONE]\n\n"


def chunk(text: str, usage: dict | None = None, finish: str | None = None) -> dict:
    data = {
        "id": "c1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "gpt-4o",
        "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": finish}],
    }
    if usage is not None:
        data["usage"] = usage
    return data


def abort_after(gw: Served, key: str, chunks: int) -> str:
    """Stream a completion, read ``chunks`` chunks, then hang up; the text received."""
    stream = gw.client(key).chat.completions.create(
        model="gpt-4o", messages=MESSAGES, stream=True, max_tokens=500
    )
    received = []
    for event in stream:
        received.append(event.choices[0].delta.content or "")
        if len(received) == chunks:
            break
    stream.close()
    return "".join(received)


def test_aborted_stream_is_charged_the_flagged_estimate(gw: Served, upstream, db):
    fake, _ = upstream
    pieces = [chunk("word " * 10) for _ in range(6)] + [chunk("", finish="stop")]
    fake.handler = fake.sse_reply(sse(pieces), delay=0.2)
    key_id, key = gw.create_key(budget=1)
    text = abort_after(gw, key, 2)
    assert fake.hung_up.wait(5)
    [row] = db.wait_for_rows(1)
    status, cost, charged, estimated, prompt, completion = (
        row[3],
        row[4],
        row[5],
        row[7],
        row[8],
        row[9],
    )
    assert status == "aborted" and estimated
    assert prompt == estimate_prompt_tokens({"messages": MESSAGES})
    assert estimate_tokens(len(text)) <= completion < estimate_tokens(len("word " * 10) * 6)
    assert cost == charged == prompt * 1 + completion * 2 > 0
    assert db.key(key_id).spent_micro == charged


def test_aborted_stream_is_charged_the_upstreams_usage(gw: Served, upstream, db):
    fake, _ = upstream
    usage = {"prompt_tokens": 300, "completion_tokens": 40, "total_tokens": 340}
    pieces = [chunk("partial ", usage=usage) for _ in range(6)] + [chunk("", finish="stop")]
    fake.handler = fake.sse_reply(sse(pieces), delay=0.2)
    key_id, key = gw.create_key(budget=1)
    abort_after(gw, key, 2)
    [row] = db.wait_for_rows(1)
    assert (row[3], row[7], row[8], row[9]) == ("aborted", False, 300, 40)
    assert row[4] == row[5] == 300 + 80 == db.key(key_id).spent_micro


def test_concurrent_requests_in_one_process_never_overspend(gw: Served, upstream, db):
    fake, _ = upstream
    fake.handler = worst_case_answer(delay=0.02)
    cost = worst_case_micro(50)
    key_id, key = gw.create_key(budget=f"{cost * 15}e-6")

    async def main() -> list[object]:
        async with openai.AsyncOpenAI(
            api_key=key, base_url=gw.url, max_retries=0, timeout=30
        ) as sdk:
            calls = [
                sdk.chat.completions.create(model="gpt-4o", messages=MESSAGES, max_tokens=50)
                for _ in range(60)
            ]
            return await asyncio.gather(*calls, return_exceptions=True)

    results = asyncio.run(main())
    refused = [r for r in results if isinstance(r, openai.RateLimitError)]
    assert len(refused) == 45 and len(results) - len(refused) == 15, results
    rows = db.wait_for_rows(60)
    key_row = db.key(key_id)
    assert (
        key_row.spent_micro == sum(r[5] for r in rows) == cost * 15 and key_row.reserved_micro == 0
    )
