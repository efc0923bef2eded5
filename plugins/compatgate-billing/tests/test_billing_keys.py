"""Virtual keys through the official SDK: accepted, rotated, disabled, expired, deleted, limited
to some models; static keys keep working; other plugins see the key's metadata."""

from __future__ import annotations

import time
from typing import Any

import httpx2
import openai
import pytest
from billing_support import MESSAGES, STATIC_KEY, Served, billing_config, chat_answer
from compatgate_billing import KEY_PREFIX, KeyPrincipal

from compatgate import Gateway, RequestContext, hookimpl
from compatgate.testing import OpenAISchema, serve


def ask(gw: Served, key: str, model: str = "gpt-4o") -> str | None:
    answer = gw.client(key).chat.completions.create(model=model, messages=MESSAGES, max_tokens=10)
    return answer.choices[0].message.content


def error_of(gw: Served, key: str, model: str = "gpt-4o") -> tuple[int, dict[str, Any]]:
    response = httpx2.post(
        f"{gw.url}/chat/completions",
        headers={"authorization": f"Bearer {key}"},
        timeout=10,
        json={"model": model, "messages": MESSAGES, "max_tokens": 10},
    )
    return response.status_code, response.json()


def test_key_lifecycle(gw: Served, upstream, openai_schema: OpenAISchema):
    fake, _ = upstream
    fake.handler = fake.json_reply(chat_answer(5, 2))
    key_id, key = gw.create_key(name="ci", owner="team-a", budget=1, allowed_models=["gpt-4o*"])
    assert key.startswith(f"{KEY_PREFIX}{key_id}-")
    assert ask(gw, key) == "Hi." and ask(gw, key, "gpt-4o-mini") == "Hi."

    # Outside the allow-list: 403 from the core, through Principal.allowed_models.
    status, body = error_of(gw, key, "other-model")
    assert status == 403 and body["error"]["code"] == "model_not_allowed"
    openai_schema.validate("ErrorResponse", body)
    with pytest.raises(openai.PermissionDeniedError):
        ask(gw, key, "other-model")
    models = [m.id for m in gw.client(key).models.list()]
    assert sorted(models) == ["gpt-4o", "gpt-4o-embedding", "gpt-4o-mini"]

    # Rotation: the old secret stops working at once, the new one works, same id.
    rotated = gw.admin("POST", f"/keys/{key_id}/rotate").json()
    new_key = rotated["secret"]
    assert (
        rotated["id"] == key_id and new_key != key and new_key.startswith(f"{KEY_PREFIX}{key_id}-")
    )
    with pytest.raises(openai.AuthenticationError):
        ask(gw, key)
    assert ask(gw, new_key) == "Hi."

    # Disabled, then enabled again.
    assert gw.admin("POST", f"/keys/{key_id}/disable").json()["status"] == "disabled"
    status, body = error_of(gw, new_key)
    assert (
        status == 401
        and body["error"]["code"] == "invalid_api_key"
        and "disabled" in body["error"]["message"]
    )
    openai_schema.validate("ErrorResponse", body)
    assert gw.admin("POST", f"/keys/{key_id}/enable").json()["status"] == "active"
    assert ask(gw, new_key) == "Hi."

    # Deleted: 401 like any unknown key, for good.
    assert gw.admin("DELETE", f"/keys/{key_id}").json()["status"] == "deleted"
    status, body = error_of(gw, new_key)
    assert status == 401 and body["error"]["message"] == "Incorrect API key provided."
    assert gw.admin("POST", f"/keys/{key_id}/enable").status_code == 404
    assert gw.admin("POST", f"/keys/{key_id}/rotate").status_code == 404

    # The static keys of [gateway] api_keys work alongside.
    assert ask(gw, STATIC_KEY) == "Hi."


def test_expired_key_is_refused(gw: Served, upstream):
    fake, _ = upstream
    fake.handler = fake.json_reply(chat_answer(5, 2))
    expiry = time.time() + 2.0
    _, soon = gw.create_key(expires_at=expiry)
    _, expired = gw.create_key(expires_at="2020-01-01T00:00:00Z")
    assert ask(gw, soon) == "Hi."
    status, body = error_of(gw, expired)
    assert status == 401 and "expired" in body["error"]["message"]
    time.sleep(max(expiry - time.time(), 0) + 0.05)
    status, body = error_of(gw, soon)
    assert status == 401 and "expired" in body["error"]["message"]


def test_wrong_secrets_and_lookalikes_get_401(gw: Served, upstream):
    fake, _ = upstream
    fake.handler = fake.json_reply(chat_answer(5, 2))
    key_id, key = gw.create_key()
    secret = key.rsplit("-", 1)[1]
    wrong = key[:-1] + ("A" if key[-1] != "A" else "B")
    unknown_id = f"{KEY_PREFIX}{'0' * 16}-{secret}"
    for candidate in (
        wrong,
        unknown_id,
        f"{KEY_PREFIX}{key_id}",
        f"{KEY_PREFIX}{key_id}-short",
        "sk-cg-",
    ):
        status, body = error_of(gw, candidate)
        assert status == 401 and body["error"]["message"] == "Incorrect API key provided.", (
            candidate
        )
    assert ask(gw, key) == "Hi."
    assert not fake.received or all(
        "sk-cg-" not in r.headers.get("authorization", "") for r in fake.received
    )


class PrincipalProbe:
    """A plugin that notes the principal every admitted request carries (as compatgate-ratelimit
    reads Principal.metadata)."""

    def __init__(self, gateway: Gateway) -> None:
        self.seen: list[Any] = []

    @hookimpl
    def admit_request(self, ctx: RequestContext) -> None:
        self.seen.append(ctx.principal)


def test_other_plugins_see_the_key_and_its_metadata(upstream, db):
    fake, url = upstream
    fake.handler = fake.json_reply(chat_answer(5, 2))
    gateway = Gateway(billing_config(url, db), plugins=[PrincipalProbe])
    probe = next(p for p in gateway.pm.get_plugins() if isinstance(p, PrincipalProbe))
    with serve(gateway) as base:
        gw = Served(gateway, base)
        metadata = {"ratelimit": {"rpm": 100, "tpm": 10000, "concurrency": 5}, "tier": "gold"}
        key_id, key = gw.create_key(metadata=metadata, allowed_models=["gpt-4o"])
        ask(gw, key)
    principal = probe.seen[-1]
    assert isinstance(principal, KeyPrincipal)
    assert principal.key_id == key_id and dict(principal.metadata) == metadata
    assert principal.allowed_models == ("gpt-4o",) and principal.unlimited


def test_inert_without_its_table(upstream, sqlite_db):
    fake, url = upstream
    fake.handler = fake.json_reply(chat_answer(5, 2))
    config = billing_config(url, sqlite_db)
    del config["plugins"]
    gateway = Gateway(config)
    with serve(gateway) as base:
        gw = Served(gateway, base)
        assert gw.billing.settings is None and not gw.billing.enabled
        assert ask(gw, STATIC_KEY) == "Hi."
        status, _ = error_of(gw, f"{KEY_PREFIX}{'1' * 16}-{'a' * 43}")
        assert status == 401
        assert gw.admin("GET", "/keys").status_code == 404
    assert gw.billing.store is None
