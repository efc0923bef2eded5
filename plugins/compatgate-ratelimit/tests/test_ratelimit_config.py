"""Configuration checks, limit layering, the token estimate, header formatting; and that the
plugin is installed, inert without its table, and never counts a request twice."""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Any

import httpx2
import pytest
from compatgate_ratelimit import (
    Decision,
    Limits,
    Plan,
    RateLimit,
    Settings,
    Window,
    WindowState,
    estimate_cost,
    format_duration,
    key_limits,
    parse_settings,
    rate_limit_headers,
)
from ratelimit_support import chat_answer, gateway_config

from compatgate import ConfigError, Gateway, Principal


def test_entry_point_is_the_class():
    (entry,) = [e for e in entry_points(group="compatgate") if e.name == "ratelimit"]
    assert entry.load() is RateLimit


@pytest.mark.parametrize(
    ("table", "fragments"),
    [
        ({"rmp": 5}, ["unknown key plugins.ratelimit.rmp", "rpm"]),
        ({"rpm": 0}, ["plugins.ratelimit.rpm", "positive integer"]),
        ({"tpm": -5}, ["plugins.ratelimit.tpm"]),
        ({"concurrency": 2.5}, ["plugins.ratelimit.concurrency"]),
        ({"rpm": True}, ["plugins.ratelimit.rpm"]),
        ({"backend": "etcd"}, ["plugins.ratelimit.backend", '"memory" or "redis"']),
        ({"backend": "redis"}, ["plugins.ratelimit.redis_url is required"]),
        (
            {"backend": "redis", "redis_url": "http://x"},
            ["plugins.ratelimit.redis_url", "redis://"],
        ),
        (
            {"on_backend_error": "maybe"},
            ["plugins.ratelimit.on_backend_error", '"open" or "closed"'],
        ),
        ({"lease_seconds": 0}, ["plugins.ratelimit.lease_seconds", "positive number"]),
        ({"default_max_tokens": 1.5}, ["plugins.ratelimit.default_max_tokens", "positive integer"]),
        (
            {"redis_max_connections": 0},
            ["plugins.ratelimit.redis_max_connections", "positive integer"],
        ),
        ({"key_prefix": "a{b}"}, ["plugins.ratelimit.key_prefix"]),
        (
            {"keys": {"static:0": {"rpm": "many"}}},
            ['plugins.ratelimit.keys."static:0".rpm', "unlimited"],
        ),
        (
            {"keys": {"static:0": {"burst": 3}}},
            ['unknown key plugins.ratelimit.keys."static:0".burst'],
        ),
        (
            {"keys": {"static:0": {"tier": "gold"}}},
            ['plugins.ratelimit.keys."static:0".tier', "'gold'", "none"],
        ),
        ({"keys": {"static:0": 5}}, ['plugins.ratelimit.keys."static:0" must be a table']),
        ({"tiers": {"pro": {"tier": "x"}}}, ["unknown key plugins.ratelimit.tiers.pro.tier"]),
        ({"models": {"gpt-4o": {"tpm": 0}}}, ["plugins.ratelimit.models.gpt-4o.tpm"]),
        (
            {"providers": {"up": {"concurrency": "x"}}},
            ["plugins.ratelimit.providers.up.concurrency"],
        ),
        ({"providers": []}, ["plugins.ratelimit.providers must be a table"]),
    ],
)
def test_configuration_mistakes_name_the_key(table: dict[str, Any], fragments: list[str]):
    with pytest.raises(ConfigError) as caught:
        Gateway(gateway_config("http://127.0.0.1:9", table))
    message = str(caught.value)
    assert message.startswith("<dict>: ")
    for fragment in fragments:
        assert fragment in message, message


def test_a_full_table_is_read():
    settings = parse_settings(
        {
            "backend": "redis",
            "redis_url": "redis://127.0.0.1:6379/2",
            "key_prefix": "gw1",
            "on_backend_error": "closed",
            "lease_seconds": 10,
            "default_max_tokens": 256,
            "redis_max_connections": 64,
            "rpm": 100,
            "tpm": 10_000,
            "tpd": 1_000_000,
            "concurrency": 4,
            "tiers": {"pro": {"rpm": 1000, "tpd": "unlimited"}},
            "keys": {"static:0": {"tier": "pro", "concurrency": 50}},
            "models": {"gpt-4o": {"tpm": 30_000}},
            "providers": {"up": {"rpm": 500, "concurrency": 20}},
        },
        "test.toml",
    )
    assert (settings.backend, settings.redis_url, settings.key_prefix) == (
        "redis",
        "redis://127.0.0.1:6379/2",
        "gw1",
    )
    assert (settings.on_backend_error, settings.lease_seconds, settings.default_max_tokens) == (
        "closed",
        10.0,
        256,
    )
    assert settings.redis_max_connections == 64 and Settings().redis_max_connections == 512
    assert settings.defaults == Limits(100, 10_000, 1_000_000, 4)
    assert settings.models["gpt-4o"] == Limits(tpm=30_000)
    assert settings.providers["up"] == Limits(rpm=500, concurrency=20)
    limits, problems = key_limits(settings, Principal("static:0"))
    assert limits == Limits(rpm=1000, tpm=10_000, tpd=None, concurrency=50) and problems == []


def test_key_limits_are_layered():
    settings = parse_settings(
        {
            "rpm": 10,
            "tpm": 1000,
            "concurrency": 2,
            "tiers": {"pro": {"rpm": 100, "tpm": "unlimited"}, "team": {"concurrency": 8}},
            "keys": {"pinned": {"rpm": 7}, "teamed": {"tier": "team"}},
        },
        "t",
    )

    def limits(key_id: str, metadata: Any = None) -> Limits:
        principal = Principal(key_id, metadata={} if metadata is None else {"ratelimit": metadata})
        return key_limits(settings, principal)[0]

    assert limits("plain") == Limits(rpm=10, tpm=1000, concurrency=2)
    assert limits("plain", "pro") == Limits(rpm=100, tpm=None, concurrency=2)  # a tier name
    assert limits("plain", {"tier": "pro", "rpm": 50}) == Limits(rpm=50, tpm=None, concurrency=2)
    assert limits("plain", {"tpd": 99, "concurrency": "unlimited"}) == Limits(
        rpm=10, tpm=1000, tpd=99
    )
    assert limits("plain", {"rpm": None}) == Limits(
        rpm=10, tpm=1000, concurrency=2
    )  # None: not set
    # The operator's [keys."<id>"] table has the last word over what the metadata says.
    assert limits("pinned", {"rpm": 500, "tier": "team"}) == Limits(rpm=7, tpm=1000, concurrency=8)
    assert limits("teamed") == Limits(rpm=10, tpm=1000, concurrency=8)
    _, problems = key_limits(
        settings, Principal("k", metadata={"ratelimit": {"rpm": "lots", "burst": 1, "tier": 3}})
    )
    assert (
        len(problems) == 3
        and any("'rpm'" in p for p in problems)
        and any("burst" in p for p in problems)
    )
    _, problems = key_limits(settings, Principal("k", metadata={"ratelimit": "platinum"}))
    assert problems == ["unknown tier 'platinum' (configured: pro, team)"]
    _, problems = key_limits(settings, Principal("k", metadata={"ratelimit": ["pro"]}))
    assert problems and "mapping" in problems[0]


class _Ctx:
    """What `estimate_cost` reads of a request context: the units the gateway measured on the
    body as sent upstream (with the operation's meter), and that body."""

    def __init__(self, meter: Any, body: dict[str, Any], model_max: int | None = None) -> None:
        self.sent, self.body = body, body
        self.units = meter.measure(body, model_max)


def test_token_estimate():
    from compatgate.operations import CHAT_METER, OPENAI_OPERATIONS

    meters = {operation.name: operation.meter for operation in OPENAI_OPERATIONS}
    messages = [{"role": "user", "content": "x" * 400}]  # 100 tokens + 4 of framing
    assert estimate_cost(_Ctx(CHAT_METER, {"messages": messages}), 1000) == 104 + 1000  # type: ignore[arg-type]
    assert estimate_cost(_Ctx(CHAT_METER, {"messages": messages}, 300), 1000) == 104 + 300  # type: ignore[arg-type]
    assert estimate_cost(_Ctx(CHAT_METER, {"messages": messages, "max_tokens": 50}), 1000) == 154  # type: ignore[arg-type]
    # Both caps sent: an upstream honours one of them, so the larger one is the worst case.
    body = {"messages": messages, "max_tokens": 50, "max_completion_tokens": 20, "n": 3}
    assert estimate_cost(_Ctx(CHAT_METER, body), 1000) == 104 + 150  # type: ignore[arg-type]
    assert estimate_cost(_Ctx(CHAT_METER, {"messages": messages, "n": 2}), 9) == 104 + 18  # type: ignore[arg-type]
    completions = meters["completions"]
    assert estimate_cost(_Ctx(completions, {"prompt": "y" * 40, "max_tokens": 5}), 9) == 15  # type: ignore[arg-type]
    assert estimate_cost(_Ctx(completions, {"prompt": "y" * 40, "max_tokens": 5, "best_of": 3}), 9) == 25  # type: ignore[arg-type]
    assert estimate_cost(_Ctx(meters["embeddings"], {"input": "z" * 80, "max_tokens": 5}), 9) == 20  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("ms", "text"),
    [
        (0, "0s"),
        (1, "1ms"),
        (999, "999ms"),
        (1000, "1s"),
        (1200, "1.2s"),
        (6857, "6.857s"),
        (59_999, "59.999s"),
        (60_000, "1m0s"),
        (360_000, "6m0s"),
        (3_600_000, "1h0m0s"),
        (86_400_000, "24h0m0s"),
        (3_723_250, "1h2m3.25s"),
        (-5, "0s"),
    ],
)
def test_durations_are_written_like_openai(ms: int, text: str):
    assert format_duration(ms) == text


def test_headers_report_the_window_with_least_remaining():
    plan = Plan(
        (
            Window("key:k:rpm", "rpm", "key k", 100, 60_000, 1, 1),
            Window("model:m:rpm", "rpm", "model m", 10, 60_000, 1, 1),
            Window("key:k:tpm", "tpm", "key k", 1000, 60_000, 1, 40),
            Window("key:k:tpd", "tpd", "key k", 5000, 86_400_000, 60_000, 40),
        )
    )
    decision = Decision(
        True,
        0,
        (
            WindowState(3, 59_000),
            WindowState(9, 1500),
            WindowState(990, 60_000),
            WindowState(4000, 86_400_000),
        ),
        (),
    )
    assert rate_limit_headers(plan, decision) == {
        "x-ratelimit-limit-requests": "10",
        "x-ratelimit-remaining-requests": "1",
        "x-ratelimit-reset-requests": "1.5s",
        "x-ratelimit-limit-tokens": "1000",
        "x-ratelimit-remaining-tokens": "10",
        "x-ratelimit-reset-tokens": "1m0s",
    }


def test_inert_without_its_table(upstream, make_gateway):
    fake, _ = upstream
    fake.handler = fake.json_reply(chat_answer(), headers={"x-ratelimit-limit-requests": "777"})
    served = make_gateway(None, entrypoints=True)
    (plugin,) = [p for p in served.gateway.pm.get_plugins() if isinstance(p, RateLimit)]
    assert not plugin.configured and "ratelimit" not in served.gateway.state
    responses = [served.post() for _ in range(5)]
    assert [r.status_code for r in responses] == [200] * 5
    assert "x-ratelimit-remaining-requests" not in responses[-1].headers
    # The plugin kept nothing (the core keeps its own entries, e.g. the static keys' digests).
    assert not [name for name in served.gateway.state if "ratelimit" in name]


def test_registered_twice_counts_once(upstream, make_gateway):
    """The entry point and the same class passed again: the core registers one instance."""
    fake, _ = upstream
    fake.handler = fake.json_reply(chat_answer())
    served = make_gateway({"rpm": 2}, plugins=(RateLimit,), entrypoints=True)
    (instance,) = [p for p in served.gateway.pm.get_plugins() if isinstance(p, RateLimit)]
    assert served.gateway.pm.get_name(instance) == "ratelimit"
    assert [served.post().status_code for _ in range(3)] == [200, 200, 429]


def test_readiness_in_memory(make_gateway):
    served = make_gateway({"rpm": 2})
    ready = httpx2.get(f"{served.url}/health/ready")
    assert ready.status_code == 200 and ready.json()["checks"] == {"gateway": "ok", "ratelimit": "ok"}
