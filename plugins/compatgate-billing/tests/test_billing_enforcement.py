"""Issue 14's billing defects, on SQLite and PostgreSQL: reservations from the request as sent
(3), realtime sessions under the budget (4), one tenant's absurd numbers (5), the upstream's
key in the ledger (7), unit prices for images and audio (11).

Each test says what the gateway did before the operation table (commit 1ba4be6).
"""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

import httpx2
import orjson
import pytest
from billing_support import (
    ADMIN_KEY,
    MESSAGES,
    Database,
    Served,
    billing_config,
    chat_answer,
)
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from compatgate.testing import FakeUpstream, Received, serve
from compatgate.usage import estimate_prompt_tokens

# micro-units per million tokens of gpt-4o* (see billing_support.PRICES): input 1, output 2
NATURAL_LENGTH = 100_000  # what the fake model writes when nothing limits it


def honouring_limits(request: Received, send: Any) -> Any:
    """A chat upstream that writes as much as it is allowed (``NATURAL_LENGTH`` when nothing
    limits it), as a real model asked for a long text would; it keeps what each answer cost."""
    body = request.json
    limit = body.get("max_completion_tokens") or body.get("max_tokens") or NATURAL_LENGTH
    prompt = estimate_prompt_tokens(body)
    COSTS.append(prompt * 1 + limit * 2)
    return FakeUpstream.json_reply(chat_answer(prompt, limit))(request, send)


COSTS: list[int] = []


@pytest.mark.parametrize("model_cap", [None, 700])
def test_ten_responses_on_a_small_budget_cost_the_operator_at_most_the_budget(
    make_gateway, upstream, db: Database, model_cap
):
    """Defect 3. Before: the converted /responses path dropped ``max_tokens`` and sent no
    limit while billing reserved 1000 tokens: ten requests on a $0.05 key cost the operator
    ten unbounded answers upstream ($2 each here). Now the reservation is the limit that goes
    upstream (the model's ``max_output_tokens``, else the price's ``max_tokens``), so the
    upstream cost of everything admitted stays within the budget."""
    fake, url = upstream
    COSTS.clear()
    fake.handler = honouring_limits
    config = billing_config(url, db)
    if model_cap is not None:
        config["models"][0]["max_output_tokens"] = model_cap
    gw = make_gateway(config)
    key_id, key = gw.create_key(budget="0.05")
    statuses = []
    for index in range(10):
        body = {"model": "gpt-4o", "input": f"Write a long story, number {index}.", "max_tokens": 100000}
        statuses.append(httpx2.post(f"{gw.url}/responses", json=body, timeout=20,
                                    headers={"authorization": f"Bearer {key}"}).status_code)
    assert set(statuses) <= {200, 429}
    assert sum(COSTS) <= 50_000, f"the operator paid {sum(COSTS)} micro-units upstream for a 50000 budget"
    sent = [r.json for r in fake.received]
    assert all(s.get("max_completion_tokens") == (model_cap or 1000) and "max_tokens" not in s for s in sent)
    rows = db.wait_for_rows(10)
    record = db.key(key_id)
    assert record.balance_micro >= 0 and record.spent_micro == sum(r[5] for r in rows) == sum(COSTS)


# -- 4. realtime sessions -------------------------------------------------------------------


class RealtimeUpstream:
    """A realtime server: each ``response.create`` gets a delta and a ``response.done`` with
    20 input and ``OUTPUT`` output tokens; it keeps every event it received."""

    OUTPUT = 5000

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.closed = threading.Event()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "websocket":
            return
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "text": json.dumps({"type": "session.created"})})
        count = 0
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                self.closed.set()
                return
            event = json.loads(message["text"])
            self.received.append(event)
            if event["type"] == "response.create":
                count += 1
                rid = f"resp_{count}"
                for text in (
                    {"type": "response.created", "response": {"id": rid, "status": "in_progress"}},
                    {"type": "response.output_text.delta", "response_id": rid, "delta": "Hello"},
                    {"type": "response.done", "response": {"id": rid, "status": "completed", "usage": {
                        "input_tokens": 20, "output_tokens": self.OUTPUT, "total_tokens": 20 + self.OUTPUT}}},
                ):
                    await send({"type": "websocket.send", "text": json.dumps(text)})


@pytest.mark.parametrize("create", ['{"type": "response.create"}', '{"type": "response\\u002ecreate"}'])
def test_realtime_session_stops_when_the_budget_cannot_cover_the_next_response(
    make_gateway, db: Database, create
):
    """Defect 4. Before: a session ran twenty ``response.create`` worth $20 on a $0.05 key;
    the balance reached zero mid-session and nothing happened. Now each response is reserved
    before it goes upstream and settled when done; the one the key cannot cover gets an
    OpenAI-format ``error`` event, the session closes (1008), and the upstream never sees it
    (nor when its type is written with a JSON escape)."""
    fake = RealtimeUpstream()
    with serve(fake) as url:
        gw = make_gateway(billing_config(url, db))
        key_id, key = gw.create_key(budget="0.05")  # 50000 micro; a response costs 10020
        done = 0
        refusal: dict[str, Any] | None = None
        target = gw.url.replace("http://", "ws://") + "/realtime?model=gpt-4o"
        with connect(target, additional_headers={"Authorization": f"Bearer {key}"}) as socket:
            assert json.loads(socket.recv(timeout=5))["type"] == "session.created"
            socket.send(json.dumps({"type": "session.update", "session": {
                "max_response_output_tokens": RealtimeUpstream.OUTPUT}}))
            with pytest.raises(ConnectionClosed) as closed:
                for _ in range(20):
                    socket.send(create)
                    while True:
                        event = json.loads(socket.recv(timeout=5))
                        if event["type"] == "error":
                            refusal = event
                        if event["type"] in ("response.done", "error"):
                            break
                    if event["type"] == "error":
                        socket.recv(timeout=5)  # the close follows
                    done += 1
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
        assert refusal is not None and refusal["error"]["code"] == "insufficient_quota"
        assert refusal["error"]["type"] == "insufficient_quota" and refusal["error"]["message"]
        assert 1 <= done < 20
        assert fake.closed.wait(5)
        creates = [e for e in fake.received if e["type"] == "response.create"]
        assert len(creates) == done, "the refused response.create reached the upstream"
    rows = db.wait_for_rows(done + 2)  # each response, the refusal, the session itself
    settled = [r for r in rows if r[3] == "ok" and r[8] == 20]
    assert len(settled) == done and all(r[9] == RealtimeUpstream.OUTPUT for r in settled)
    assert [r[10] for r in rows if r[3] == "error"] == [429]
    record = db.key(key_id)
    assert record.balance_micro >= 0 and record.reserved_micro == 0
    assert record.spent_micro == sum(r[5] for r in rows) <= 50_000


def test_realtime_response_without_a_cap_goes_upstream_with_the_reserved_one(make_gateway, db: Database):
    """Defect 4: a ``response.create`` limited by nothing (no cap of its own, none for the
    session, none configured) is sent upstream with the price's ``max_tokens`` it was reserved
    for, so the response cannot cost more than its reservation. A cap of its own is kept."""
    fake = RealtimeUpstream()
    with serve(fake) as url:
        gw = make_gateway(billing_config(url, db))
        _, key = gw.create_key(budget="10")
        target = gw.url.replace("http://", "ws://") + "/realtime?model=gpt-4o"
        with connect(target, additional_headers={"Authorization": f"Bearer {key}"}) as socket:
            socket.recv(timeout=5)
            for create in ({"type": "response.create", "response": {"instructions": "Be brief."}},
                           {"type": "response.create", "response": {"max_output_tokens": 42}}):
                socket.send(json.dumps(create))
                while json.loads(socket.recv(timeout=5))["type"] != "response.done":
                    pass
        assert fake.closed.wait(5)
    first, second = (e["response"] for e in fake.received if e["type"] == "response.create")
    assert first == {"instructions": "Be brief.", "max_output_tokens": 1000}  # PRICES' max_tokens
    assert second == {"max_output_tokens": 42}


# -- 5. absurd numbers ----------------------------------------------------------------------


def test_a_poisoned_request_does_not_fail_an_innocent_keys_concurrent_requests(
    make_gateway, upstream, db: Database
):
    """Defect 5. Before, on SQLite: ``max_tokens: 9223372036854775807`` raised OverflowError
    in the reservation, and because queued reservations shared one transaction, 92 of 100
    concurrent requests of another key failed with 500. Now the absurd number is a 400 at
    validation, the largest valid request is priced within bounds, and every innocent
    request succeeds."""
    fake, url = upstream
    fake.handler = fake.json_reply(chat_answer(5, 5))
    gw = make_gateway(billing_config(url, db))
    _, innocent = gw.create_key(budget="100")
    _, poisoned = gw.create_key(budget="100")

    async def run() -> list[tuple[str, int]]:
        async with httpx2.AsyncClient(timeout=30) as client:
            async def post(key: str, **extra: Any) -> int:
                body = {"model": "gpt-4o", "messages": MESSAGES, **extra}
                raw = orjson.dumps(body).replace(b'"MAX"', b"9223372036854775807")
                response = await client.post(f"{gw.url}/chat/completions", content=raw, headers={
                    "authorization": f"Bearer {key}", "content-type": "application/json"})
                return response.status_code

            kinds, calls = [], []
            for index in range(100):
                kinds.append("innocent")
                calls.append(post(innocent, max_tokens=10))
                if index % 10 == 0:
                    kinds += ["absurd", "largest"]
                    calls += [post(poisoned, max_tokens="MAX"), post(poisoned, max_tokens=100_000_000, n=128)]
            return list(zip(kinds, await asyncio.gather(*calls), strict=True))

    results = asyncio.run(run())
    by_kind: dict[str, set[int]] = {}
    for kind, status in results:
        by_kind.setdefault(kind, set()).add(status)
    assert by_kind == {"innocent": {200}, "absurd": {400}, "largest": {429}}
    assert len(fake.received) == 100


ABSURD_KEYS = [{"budget": "1e30"}, {"budget": 9223372036854775807}, {"budget": "-1e30"}, {"budget": "NaN"},
               {"budget": True}, {"expires_at": 1e300}, {"expires_at": "99999999999999999999d"},
               {"expires_at": -1e20}]
ABSURD_SINCE = ["1e300", "-1e300", "99999999999999999999d", "inf", "nan"]


def test_admin_api_refuses_absurd_numbers_in_its_error_format(gw: Served):
    """Defect 5. Before: ``budget: 1e30``, ``expires_at: 1e300`` or ``GET /admin/usage?since=1e300``
    made the admin API fail with a plain-text 500; now each is a 400 in the API's (OpenAI)
    error format."""
    answers = [gw.admin("POST", "/keys", body) for body in ABSURD_KEYS]
    answers += [gw.http.get(f"{gw.url}/admin/usage", params={"since": since},
                            headers={"authorization": f"Bearer {ADMIN_KEY}"}) for since in ABSURD_SINCE]
    for response in answers:
        assert response.status_code == 400, (response.request.url, response.text)
        error = response.json()["error"]
        assert error["type"] == "invalid_request_error" and error["message"]


def test_a_failing_reservation_fails_alone_in_a_shared_transaction(db: Database):
    """Defect 5, in the store: a reservation the database refuses (an amount past 64 bits)
    shares its transaction with others on SQLite; they still succeed."""
    from compatgate_billing import KeyManager, KeySpec, Store

    async def work(store: Store) -> list[Any]:
        key, _ = await KeyManager(store, b"s" * 32).create(KeySpec.build(budget_micro=10_000))
        calls = [store.reserve(f"r{i}", key.id, 2**64 if i == 5 else 100, "me", 60_000) for i in range(20)]
        return await asyncio.gather(*calls, return_exceptions=True)

    results = db.run(work)
    assert isinstance(results[5], Exception)
    assert [r for i, r in enumerate(results) if i != 5] == [True] * 19
