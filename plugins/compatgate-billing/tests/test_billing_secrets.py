"""Secrets stay secret: no key secret, server secret or admin key in any table, in the logs, or
in an admin answer other than the one creating or rotating that key."""

from __future__ import annotations

import json
import logging

import httpx2
import openai
import pytest
from billing_support import (
    ADMIN_KEY,
    MESSAGES,
    SECRET_ENV,
    SERVER_SECRET,
    Database,
    Served,
    billing_config,
    chat_answer,
    worst_case_micro,
    write_config,
)

from compatgate.cli import main


def test_secrets_appear_nowhere_but_once(
    gw: Served, upstream, db: Database, caplog, capsys, monkeypatch, tmp_path
):
    caplog.set_level(logging.DEBUG)
    fake, _ = upstream
    fake.handler = fake.json_reply(chat_answer(8, 100))
    shown: list[str] = []  # every full key handed out, each exactly once

    created = gw.admin("POST", "/keys", {"budget": f"{worst_case_micro(100) + 5}e-6", "name": "n"})
    key_id, key = created.json()["id"], created.json()["secret"]
    shown.append(key)
    rotated = gw.admin("POST", f"/keys/{key_id}/rotate").json()["secret"]
    shown.append(rotated)

    monkeypatch.setenv(SECRET_ENV, SERVER_SECRET)
    config = write_config(billing_config("http://127.0.0.1:9", db), tmp_path)
    with pytest.raises(SystemExit) as exit:
        main(["keys", "create", "--config", str(config), "--json"])
    assert exit.value.code == 0
    from_cli = json.loads(capsys.readouterr().out)["secret"]
    shown.append(from_cli)

    sdk = gw.client(rotated)
    sdk.chat.completions.create(model="gpt-4o", messages=MESSAGES, max_tokens=100)
    with pytest.raises(openai.RateLimitError):
        sdk.chat.completions.create(model="gpt-4o", messages=MESSAGES, max_tokens=100)
    for wrong in (key, rotated[:-2] + "zz"):
        with pytest.raises(openai.AuthenticationError):
            gw.client(wrong).chat.completions.create(model="gpt-4o", messages=MESSAGES)
    gw.client(from_cli).chat.completions.create(model="gpt-4o", messages=MESSAGES, max_tokens=100)
    httpx2.get(f"{gw.url}/admin/keys", headers={"authorization": "Bearer not-the-admin-key"})
    db.wait_for_rows(3)

    answers = [
        gw.admin("GET", "/keys?include_deleted=true").text,
        gw.admin("GET", f"/keys/{key_id}").text,
        gw.admin("POST", f"/keys/{key_id}/disable").text,
        gw.admin("POST", f"/keys/{key_id}/enable").text,
        gw.admin("POST", f"/keys/{key_id}/balance", {"amount": 1}).text,
        gw.admin("GET", f"/keys/{key_id}/credits").text,
        gw.admin("GET", "/usage").text,
        gw.admin("DELETE", f"/keys/{key_id}").text,
    ]
    dump = db.dump()
    assert "billing_keys" in dump and "billing_usage" in dump and key_id in dump
    secrets = [SERVER_SECRET, ADMIN_KEY]
    for full in shown:
        secrets += [full, full.rsplit("-", 1)[1]]  # the whole key, and its secret part alone
    for secret in secrets:
        assert secret not in dump, "a secret is in the database"
        assert secret not in caplog.text, "a secret is in the logs"
        for answer in answers:
            assert secret not in answer, "a secret is in an admin answer"
    assert caplog.records, "nothing was logged: the check above proves nothing"
