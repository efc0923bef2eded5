"""Issue 14, defect 9: the response store keeps each turn once, expires turns, bounds what a
key holds, and never lets another key read or continue a conversation.

Before the operation table (commit 1ba4be6) each stored response kept the whole conversation
(eight chained 500 KB turns grew the store by 18 MB), nothing expired and nothing bounded a key.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import httpx2
import pytest
from enforcement_support import chat_answer, error_shape, post_json
from support import CLIENT_KEY, gateway_config

OTHER_KEY = "sk-client-2"
TURN_BYTES = 500_000


def store_config(url: str, path: Path, **gateway: object) -> dict:
    config = gateway_config(url, response_store_path=str(path), **gateway)
    config["gateway"]["api_keys"] = [CLIENT_KEY, OTHER_KEY]
    return config


def answer_echoing_length(request, send):
    """A chat answer whose text says how many messages the upstream received."""
    count = len(request.json["messages"])
    return chat_answer(f"I saw {count} messages.")


async def counting(request, send) -> None:
    from compatgate.testing import FakeUpstream

    await FakeUpstream.json_reply(answer_echoing_length(request, send))(request, send)


def test_chained_turns_grow_the_store_linearly(make_gateway, upstream, tmp_path):
    """Eight chained turns of ~500 KB input each: the conversation reaches the upstream whole
    every time, and the store holds each turn once (about 8 × 500 KB, not 36 × 500 KB)."""
    fake, url = upstream
    fake.handler = counting
    path = tmp_path / "responses.sqlite3"
    gw = make_gateway(store_config(url, path))
    client = gw.client()
    previous = None
    sent = 0
    for turn in range(8):
        text = f"turn {turn} " + "x" * TURN_BYTES
        response = client.responses.create(model="gpt-4o", input=text, previous_response_id=previous)
        sent += len(text) + len(response.output_text)
        assert response.output_text == f"I saw {2 * turn + 1} messages."
        previous = response.id
    assert len(fake.received[-1].json["messages"]) == 15
    with sqlite3.connect(path) as db:
        (rows, stored) = db.execute("SELECT COUNT(*), SUM(LENGTH(items)) FROM compatgate_response_turns").fetchone()
    assert rows == 8
    assert stored <= 1.5 * sent, f"the items of 8 turns take {stored} bytes for {sent} bytes of conversation"
    assert path.stat().st_size <= 1.5 * sent + 256 * 1024


def test_expired_turns_are_not_found(make_gateway, upstream, tmp_path):
    """``response_store_ttl_days``: past it, a turn can neither be read nor continued."""
    fake, url = upstream
    fake.handler = counting
    gw = make_gateway(store_config(url, tmp_path / "r.sqlite3", response_store_ttl_days=0.000005))  # 0.43 s
    first = gw.client().responses.create(model="gpt-4o", input="remember me")
    assert httpx2.get(f"{gw.url}/responses/{first.id}", headers=_auth(CLIENT_KEY)).status_code == 200
    time.sleep(0.6)
    error_shape(httpx2.get(f"{gw.url}/responses/{first.id}", headers=_auth(CLIENT_KEY)), 404, "response_id")
    response = post_json(f"{gw.url}/responses", {"model": "gpt-4o", "input": "and now?",
                                                 "previous_response_id": first.id})
    assert error_shape(response, 400, "previous_response_id")["code"] == "previous_response_not_found"


def test_per_key_bound_drops_the_oldest_turns(make_gateway, upstream, tmp_path):
    """``response_store_max_bytes``: a key storing more drops its oldest turns first; another
    key's turns are untouched."""
    fake, url = upstream
    fake.handler = counting
    gw = make_gateway(store_config(url, tmp_path / "r.sqlite3", response_store_max_bytes=3 * 120_000))
    other = gw.client(OTHER_KEY).responses.create(model="gpt-4o", input="y" * 100_000)
    ids = [gw.client().responses.create(model="gpt-4o", input=f"{i}" + "x" * 100_000).id for i in range(5)]
    found = [httpx2.get(f"{gw.url}/responses/{i}", headers=_auth(CLIENT_KEY)).status_code for i in ids]
    assert found == [404, 404, 200, 200, 200]
    assert httpx2.get(f"{gw.url}/responses/{other.id}", headers=_auth(OTHER_KEY)).status_code == 200


@pytest.mark.parametrize("action", ["get", "delete", "continue"])
def test_another_key_cannot_read_or_continue(make_gateway, upstream, tmp_path, action):
    """A stored turn belongs to the key that created it: for another key it does not exist."""
    fake, url = upstream
    fake.handler = counting
    gw = make_gateway(store_config(url, tmp_path / "r.sqlite3"))
    mine = gw.client().responses.create(model="gpt-4o", input="my secret plan")
    target = f"{gw.url}/responses/{mine.id}"
    if action == "get":
        error_shape(httpx2.get(target, headers=_auth(OTHER_KEY)), 404, "response_id")
    elif action == "delete":
        error_shape(httpx2.delete(target, headers=_auth(OTHER_KEY)), 404, "response_id")
    else:
        response = post_json(f"{gw.url}/responses", {"model": "gpt-4o", "input": "go on",
                                                     "previous_response_id": mine.id},
                             headers=_auth(OTHER_KEY))
        error_shape(response, 400, "previous_response_id")
        assert all(b"my secret plan" not in r.body for r in fake.received[1:])
    assert httpx2.get(target, headers=_auth(CLIENT_KEY)).json()["id"] == mine.id


def _auth(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}
