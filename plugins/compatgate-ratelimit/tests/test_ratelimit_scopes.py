"""Whose limits a request counts against, on both backends: per-key overrides from the
configuration and from ``Principal.metadata``, model and provider scopes shared by every key,
all-or-nothing admissions across scopes, and the headers of requests refused before admission."""

from __future__ import annotations

import logging
from typing import ClassVar

import httpx2
from ratelimit_support import CHAT, KEYS, assert_rate_limited, chat_answer

from compatgate import Principal, hookimpl


class MetadataAuth:
    """Keys whose Principal carries rate-limit metadata, as a billing plugin would set it."""

    PRINCIPALS: ClassVar[dict[str, Principal]] = {
        "sk-gold": Principal("gold", metadata={"ratelimit": {"rpm": 4}}),
        "sk-tiered": Principal("tiered", metadata={"ratelimit": "pro"}),
        "sk-bad": Principal("bad", metadata={"ratelimit": {"rpm": "lots"}}),
        "sk-pinned": Principal("pinned", metadata={"ratelimit": {"rpm": 50}}),
    }

    @hookimpl
    def authenticate(self, api_key: str | None) -> Principal | None:
        return self.PRINCIPALS.get(api_key or "")


def test_per_key_overrides_from_config_and_metadata(backend, upstream, make_gateway, caplog):
    fake, _ = upstream
    fake.handler = fake.json_reply(chat_answer())
    table = {
        **backend,
        "rpm": 2,
        "tiers": {"pro": {"rpm": 3}},
        "keys": {"static:0": {"rpm": 5}, "pinned": {"rpm": 1}},
    }
    served = make_gateway(table, plugins=(MetadataAuth(),))
    caplog.set_level(logging.WARNING, logger="compatgate.ratelimit")
    expected = {KEYS[0]: 5, KEYS[1]: 2, "sk-gold": 4, "sk-tiered": 3, "sk-bad": 2, "sk-pinned": 1}
    for key, limit in expected.items():
        responses = [served.post(key=key) for _ in range(limit + 1)]
        assert [r.status_code for r in responses] == [200] * limit + [429], key
        assert {r.headers["x-ratelimit-limit-requests"] for r in responses} == {str(limit)}, key
    assert any("key bad" in r.getMessage() and "'rpm'" in r.getMessage() for r in caplog.records)


def test_model_and_provider_scopes_are_shared_by_every_key(backend, upstream, make_gateway):
    fake, _ = upstream
    fake.handler = fake.json_reply(chat_answer())
    table = {
        **backend,
        "rpm": 100,
        "keys": {"static:2": {"rpm": 2}},
        "models": {"gpt-4o": {"rpm": 3}, "gpt-4o-mini": {"rpm": 3}},
        "providers": {"other": {"rpm": 2}},
    }
    served = make_gateway(table)
    assert [served.post(key=k).status_code for k in (KEYS[0], KEYS[0], KEYS[1])] == [200, 200, 200]
    refused = served.post(key=KEYS[1])
    assert (
        "model gpt-4o on requests per min (RPM): Limit 3, Used 3"
        in assert_rate_limited(refused)["message"]
    )
    assert (
        refused.headers["x-ratelimit-limit-requests"] == "3"
    )  # the model's window is the tightest
    other = {**CHAT, "model": "other-model"}
    assert [served.post(other, key=k).status_code for k in KEYS[:2]] == [200, 200]
    assert "provider other" in assert_rate_limited(served.post(other, key=KEYS[2]))["message"]
    # A refusal by one scope reserves nothing in the others. static:2's request refused by the
    # provider left static:2 at 0 of 2, so it gets two requests for gpt-4o-mini...
    mini = {**CHAT, "model": "gpt-4o-mini"}
    assert [served.post(mini, key=KEYS[2]).status_code for _ in range(2)] == [200, 200]
    # ...and its third, refused by its key, leaves gpt-4o-mini at 2 of 3: static:0 gets the last.
    assert "key static:2" in assert_rate_limited(served.post(mini, key=KEYS[2]))["message"]
    last = served.post(mini, key=KEYS[0])
    assert last.status_code == 200 and last.headers["x-ratelimit-remaining-requests"] == "0"
    assert "model gpt-4o-mini" in assert_rate_limited(served.post(mini, key=KEYS[1]))["message"]


def test_headers_on_errors_before_admission(backend, upstream, make_gateway):
    fake, _ = upstream
    fake.handler = fake.json_reply(chat_answer())
    served = make_gateway({**backend, "rpm": 5})
    assert served.post().headers["x-ratelimit-remaining-requests"] == "4"
    unknown = served.post({**CHAT, "model": "no-such-model"})
    assert unknown.status_code == 404
    assert (
        unknown.headers["x-ratelimit-limit-requests"],
        unknown.headers["x-ratelimit-remaining-requests"],
    ) == ("5", "4")
    invalid = served.post({"model": "gpt-4o"})
    assert invalid.status_code == 400 and invalid.headers["x-ratelimit-remaining-requests"] == "4"
    anonymous = httpx2.post(f"{served.url}/chat/completions", json=CHAT, timeout=10)
    assert anonymous.status_code == 401 and "x-ratelimit-limit-requests" not in anonymous.headers
    models = httpx2.get(
        f"{served.url}/models", headers={"authorization": f"Bearer {KEYS[0]}"}, timeout=10
    )
    assert models.status_code == 200 and "x-ratelimit-limit-requests" not in models.headers
    assert served.post().headers["x-ratelimit-remaining-requests"] == "3"
