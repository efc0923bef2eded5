"""The ``[plugins.router]`` table is checked at construction (errors name the key); without it
the router does nothing; the entry point, and what ``GET /models`` lists."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest

from router_support import Served, gateway_config, group, ok_reply

from compatgate import ConfigError, Gateway, load_config
from compatgate.testing import FakeUpstream
from compatgate_router import Router, parse_settings

URLS = {"primary": "http://127.0.0.1:9", "backup": "http://127.0.0.1:9"}


def build(router: dict[str, Any]) -> Gateway:
    return Gateway(gateway_config(URLS, router), plugins=(Router,))


@pytest.mark.parametrize(
    ("router", "where", "words"),
    [
        ({"retries": 3}, "plugins.router.retries", "not a known key"),
        ({"strategy": "fastest"}, "plugins.router.strategy", "least_in_flight"),
        ({"seed": "7"}, "plugins.router.seed", "int"),
        ({"groups": {"g": {"deployments": []}}}, "plugins.router.groups.g.deployments", "non-empty"),
        ({"groups": {"g": {"deployments": [{"provider": "nope"}]}}},
         "plugins.router.groups.g.deployments[0].provider", "primary"),
        ({"groups": {"g": {"deployments": [{"provider": "primary", "weight": 0}]}}},
         "plugins.router.groups.g.deployments[0].weight", "positive"),
        ({"groups": {"g": {"deployments": [{"provider": "primary"}, {"provider": "primary"}]}}},
         "plugins.router.groups.g.deployments[1]", "repeats"),
        ({"groups": {"g": {**group("primary"), "strategy": "random"}}}, "plugins.router.groups.g.strategy", "one of"),
        ({"groups": {"g": group("primary", fallbacks=["missing"])}}, "plugins.router.groups.g.fallbacks", "missing"),
        ({"groups": {"g": group("primary", fallbacks=["g"])}}, "plugins.router.groups.g.fallbacks", "itself"),
        ({"groups": {"g": group("primary", fallback_on=["sometimes"])}},
         "plugins.router.groups.g.fallback_on", "sometimes"),
        ({"groups": {"plain-primary": group("primary")}}, "plugins.router.groups.plain-primary", "[[models]]"),
        ({"groups": {"g": {**group("primary"), "colour": "red"}}}, "plugins.router.groups.g.colour", "known"),
        ({"aliases": {"a": "missing"}}, "plugins.router.aliases.a", "neither"),
        ({"aliases": {"a": "b", "b": "plain-primary"}}, "plugins.router.aliases.a", "another alias"),
        ({"aliases": {"plain-primary": "plain-backup"}}, "plugins.router.aliases.plain-primary", "already"),
        ({"aliases": {"a": 3}}, "plugins.router.aliases.a", "string"),
        ({"routes": {"match": "x"}}, "plugins.router.routes", "array"),
        ({"routes": [{"provider": "primary"}]}, "plugins.router.routes[0].match", "required"),
        ({"routes": [{"match": "claude-*", "provider": "anthropic"}]}, "plugins.router.routes[0].provider", "defined"),
        ({"retry": {"max_attempts": 0}}, "plugins.router.retry.max_attempts", "between 1 and 100"),
        ({"retry": {"max_seconds": 0}}, "plugins.router.retry.max_seconds", "positive"),
        ({"retry": {"backoff_base": 2, "backoff_max": 1}}, "plugins.router.retry.backoff_max", "backoff_base"),
        ({"retry": {"max_retry_after": -1}}, "plugins.router.retry.max_retry_after", "negative"),
        ({"retry": {"on": ["context_length_exceeded"]}}, "plugins.router.retry.on", "context_length_exceeded"),
        ({"retry": {"backoff_base": True}}, "plugins.router.retry.backoff_base", "number"),
        ({"cooldown": {"failures": -1}}, "plugins.router.cooldown.failures", "0"),
        ({"cooldown": {"seconds": 0}}, "plugins.router.cooldown.seconds", "positive"),
        ({"redis_url": "http://127.0.0.1:6379"}, "plugins.router.redis_url", "redis://"),
        ({"redis_key_prefix": ""}, "plugins.router.redis_key_prefix", "empty"),
        ({"groups": {"g": {"deployments": [{"provider": "primary", "top_k": 3}]}}},
         "plugins.router.groups.g.deployments[0]", "unknown key 'top_k'"),
    ],
)
def test_mistakes_are_config_errors_naming_the_key(router: dict[str, Any], where: str, words: str):
    with pytest.raises(ConfigError) as info:
        build(router)
    message = str(info.value)
    assert message.startswith("<dict>: ") and where in message and words in message, message


def test_a_valid_table_is_read():
    table = {
        "strategy": "least_in_flight", "seed": 3, "redis_url": "redis://127.0.0.1:6379/0",
        "groups": {"g": {"deployments": [{"provider": "primary", "upstream_model": "x", "weight": 2.5},
                                         {"provider": "backup"}],
                         "strategy": "ordered", "fallbacks": ["plain-primary"], "fallback_on": ["5xx"]}},
        "aliases": {"latest": "g", "haiku": "claude-3-haiku"},
        "routes": [{"match": "claude-*", "provider": "backup", "fallbacks": ["g"]}],
        "retry": {"max_attempts": 5, "max_seconds": 10, "backoff_base": 0.5, "backoff_max": 8,
                  "max_retry_after": 3, "on": ["5xx", "timeout"]},
        "cooldown": {"failures": 5, "window": 30, "seconds": 10},
    }
    settings = next(p for p in build(table).pm.get_plugins() if isinstance(p, Router)).settings
    deployments = settings.groups["g"].deployments
    assert [(d.provider, d.upstream_model, d.weight) for d in deployments] == [("primary", "x", 2.5),
                                                                                ("backup", "g", 1.0)]
    assert settings.groups["g"].fallback_on == {"5xx"} and settings.strategy == "least_in_flight"
    assert settings.retry.max_attempts == 5 and settings.retry.on == {"5xx", "timeout"}
    assert (settings.cooldown.failures, settings.cooldown.seconds) == (5, 10.0)
    assert settings.aliases == {"latest": "g", "haiku": "claude-3-haiku"}


def test_without_a_table_the_router_does_nothing(make_gateway: Callable[..., Served],
                                                 upstreams: dict[str, tuple[FakeUpstream, str]]):
    upstreams["primary"][0].handler = ok_reply("Plain.")
    gw = make_gateway(None)
    assert gw.router.planner is None
    response = gw.chat("plain-primary")
    assert response.parse().choices[0].message.content == "Plain."
    assert "x-compatgate-provider" not in response.headers and "x-compatgate-attempts" not in response.headers
    assert [m.id for m in gw.client().models.list()] == ["plain-primary", "plain-backup", "plain-third"]


def test_the_entry_point_is_the_router_class():
    (entry,) = entry_points(group="compatgate", name="router")
    assert entry.value == "compatgate_router:Router" and entry.load() is Router


def test_two_gateways_share_no_state():
    first, second = build({"groups": {"g": group("primary")}}), build({"groups": {"g": group("primary")}})
    one, two = (next(p for p in gw.pm.get_plugins() if isinstance(p, Router)) for gw in (first, second))
    assert one is not two and one.stats is not two.stats and one.health is not two.health


def test_the_readme_example_is_valid(monkeypatch: pytest.MonkeyPatch):
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    example = re.search(r"```toml\n(.*?)```", readme, flags=re.S)
    assert example is not None
    for variable in ("OPENAI_API_KEY", "AZURE_KEY", "ANTHROPIC_API_KEY"):
        monkeypatch.setenv(variable, "sk-test")
    config = load_config(tomllib.loads(example.group(1)))
    settings = parse_settings(config.plugin("router"), config)
    assert settings.groups["gpt-4o"].fallbacks == ("claude-sonnet",)
    assert settings.aliases == {"gpt-4o-latest": "gpt-4o"} and settings.routes[0].match == "claude-*"
