"""The admin API: its own key, every operation, errors in the OpenAI format, no secret shown
except once by create and rotate."""

from __future__ import annotations

import httpx2
from billing_support import ADMIN_KEY, MESSAGES, STATIC_KEY, Served, chat_answer

from compatgate.testing import OpenAISchema


def test_the_admin_key_is_required(gw: Served, openai_schema: OpenAISchema):
    _, api_key = gw.create_key()
    for key in (None, "wrong-admin-key-0000000000", api_key, STATIC_KEY, ADMIN_KEY + "x"):
        for method, path in (
            ("GET", "/keys"),
            ("POST", "/keys"),
            ("GET", "/usage"),
            ("DELETE", "/keys/x"),
        ):
            response = gw.admin(method, path, {} if method == "POST" else None, key=key)
            assert response.status_code == 401, (key, method, path)
            openai_schema.validate("ErrorResponse", response.json())
            assert response.json()["error"]["code"] == "invalid_admin_key"
    # ... and the admin key is no API key.
    response = httpx2.post(
        f"{gw.url}/chat/completions",
        headers={"authorization": f"Bearer {ADMIN_KEY}"},
        json={"model": "gpt-4o", "messages": MESSAGES},
        timeout=10,
    )
    assert response.status_code == 401


def test_every_operation(gw: Served, upstream, openai_schema: OpenAISchema):
    fake, _ = upstream
    fake.handler = fake.json_reply(chat_answer(10, 10))
    created = gw.admin(
        "POST",
        "/keys",
        {
            "name": "ci",
            "owner": "team-a",
            "expires_at": "2999-01-01",
            "allowed_models": ["gpt-4o*"],
            "budget": "2.5",
            "metadata": {"ratelimit": {"rpm": 10}},
        },
    )
    assert created.status_code == 201
    key = created.json()
    secret = key.pop("secret")
    assert key["object"] == "billing.key" and key["key_hint"] == f"sk-cg-{key['id']}-…"
    assert (key["name"], key["owner"], key["status"], key["unlimited"]) == (
        "ci",
        "team-a",
        "active",
        False,
    )
    assert key["expires_at"] == 32472144000 and key["allowed_models"] == ["gpt-4o*"]
    assert (key["credited_micro"], key["balance_micro"], key["available_micro"]) == (2_500_000,) * 3
    key_id = key["id"]
    gw.admin("POST", "/keys", {"owner": "team-b"})

    listed = gw.admin("GET", "/keys").json()
    assert listed["object"] == "list" and [k["owner"] for k in listed["data"]] == [
        "team-a",
        "team-b",
    ]
    assert [k["id"] for k in gw.admin("GET", "/keys?owner=team-a").json()["data"]] == [key_id]
    assert gw.admin("GET", f"/keys/{key_id}").json() == key

    gw.client(secret).chat.completions.create(model="gpt-4o", messages=MESSAGES, max_tokens=10)
    topped = gw.admin("POST", f"/keys/{key_id}/balance", {"amount": 1, "note": "march"}).json()
    assert topped["credit"]["kind"] == "topup" and topped["credit"]["amount_micro"] == 1_000_000

    rotated = gw.admin("POST", f"/keys/{key_id}/rotate").json()
    assert rotated["secret"] != secret and rotated["id"] == key_id
    assert gw.admin("POST", f"/keys/{key_id}/disable").json()["status"] == "disabled"
    assert gw.admin("POST", f"/keys/{key_id}/enable").json()["status"] == "active"
    assert gw.admin("DELETE", f"/keys/{key_id}").json()["status"] == "deleted"
    assert [k["owner"] for k in gw.admin("GET", "/keys").json()["data"]] == ["team-b"]
    assert len(gw.admin("GET", "/keys?include_deleted=true").json()["data"]) == 2

    usage = gw.admin("GET", f"/usage?group_by=key,model&key={key_id}&since=1d").json()
    assert usage["object"] == "list"
    assert [
        (u["key_id"], u["model"], u["requests"], u["charged_micro"]) for u in usage["data"]
    ] == [
        (key_id, "gpt-4o", 1, 30),
    ]
    assert gw.admin("GET", "/usage?group_by=key&until=2000-01-01").json()["data"] == []


def test_errors(gw: Served, openai_schema: OpenAISchema):
    cases = [
        ("GET", "/keys/0000000000000000", None, 404, "key_not_found"),
        ("POST", "/keys/0000000000000000/rotate", None, 404, "key_not_found"),
        ("POST", "/keys", {"budget": "-1"}, 400, None),
        ("POST", "/keys", {"budget": "0.0000001"}, 400, None),
        ("POST", "/keys", {"allowed_models": "gpt-4o"}, 400, None),
        ("POST", "/keys", {"metadata": [1]}, 400, None),
        ("POST", "/keys", {"expires_at": "someday"}, 400, None),
        ("POST", "/keys", {"colour": "red"}, 400, None),
        ("PUT", "/keys", None, 405, "method_not_allowed"),
        ("GET", "/usage?group_by=week", None, 400, None),
    ]
    for method, path, body, status, code in cases:
        response = gw.admin(method, path, body)
        assert response.status_code == status, (method, path, response.text)
        openai_schema.validate("ErrorResponse", response.json())
        if code:
            assert response.json()["error"]["code"] == code
    raw = httpx2.post(
        f"{gw.url}/admin/keys",
        content=b"{not json",
        timeout=10,
        headers={"authorization": f"Bearer {ADMIN_KEY}"},
    )
    assert raw.status_code == 400
    key_id, _ = gw.create_key()
    response = gw.admin("POST", f"/keys/{key_id}/balance", {"amount": 1})
    assert response.status_code == 400 and "no budget" in response.json()["error"]["message"]
    assert gw.admin("GET", "/nothing-here").status_code == 404


def test_not_mounted_without_an_admin_key(make_gateway):
    gw = make_gateway(admin_key=None)
    response = gw.admin("GET", "/keys")
    assert response.status_code == 404 and response.json()["error"]["code"] == "unknown_url"
