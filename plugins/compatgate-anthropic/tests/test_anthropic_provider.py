"""The provider as configured: what it sends upstream, /models, endpoints it does not serve,
configuration mistakes refused at start-up, and a plugin that stays inert when unused."""

from __future__ import annotations

from typing import Any

import httpx2
import pytest
from anthropic_support import (
    CLIENT_KEY,
    MESSAGES,
    MODEL,
    PLUGINS,
    UPSTREAM_KEY,
    Served,
    gateway_config,
    message,
)

from compatgate import ConfigError, Gateway, Route, hookimpl
from compatgate.testing import serve


def test_upstream_request_headers_and_path(gw: Served, upstream):
    fake, _ = upstream
    fake.handler = fake.json_reply(message({"type": "text", "text": "ok"}))
    assert gw.post({"model": MODEL, "messages": MESSAGES}).status_code == 200
    received = fake.received[-1]
    assert received.path == "/v1/messages"
    assert received.headers["x-api-key"] == UPSTREAM_KEY
    assert received.headers["anthropic-version"] == "2023-06-01"
    assert received.headers["content-type"] == "application/json"
    assert "authorization" not in received.headers


def test_version_option_extra_headers_and_a_base_url_ending_in_v1(make_gateway, upstream):
    fake, url = upstream
    config = gateway_config(f"{url}/v1/", provider={
        "anthropic_version": "2099-01-01", "headers": {"anthropic-beta": "feature-2099"}})
    gw = make_gateway(config)
    fake.handler = fake.json_reply(message({"type": "text", "text": "ok"}))
    assert gw.post({"model": MODEL, "messages": MESSAGES}).status_code == 200
    received = fake.received[-1]
    assert received.path == "/v1/messages"
    assert (received.headers["anthropic-version"], received.headers["anthropic-beta"]) == ("2099-01-01", "feature-2099")


def test_models_are_listed_as_anthropic(make_gateway, upstream):
    _, url = upstream
    gw = make_gateway(gateway_config(url, models=[
        {"name": MODEL, "provider": "claude", "upstream_model": "claude-sonnet-4-5"},
        {"name": "claude-opus", "provider": "claude", "owned_by": "acme", "created": 1700000000},
    ]))
    listed = gw.client().models.list().data
    assert [(m.id, m.owned_by, m.object) for m in listed] == [
        (MODEL, "anthropic", "model"), ("claude-opus", "acme", "model")]
    assert gw.client().models.retrieve("claude-opus").created == 1700000000


@pytest.mark.parametrize(("path", "body"), [
    ("/completions", {"model": MODEL, "prompt": "hi"}),
    ("/embeddings", {"model": MODEL, "input": "hi"}),
])
def test_other_endpoints_are_not_served(gw: Served, upstream, path: str, body: dict[str, Any]):
    response = httpx2.post(f"{gw.url}{path}", json=body, headers={"authorization": f"Bearer {CLIENT_KEY}"})
    assert response.status_code == 404 and response.json()["error"]["code"] == "unsupported_endpoint"
    assert upstream[0].received == []


@pytest.mark.parametrize(("provider", "models", "message"), [
    ({"structured_output": "xml"}, None, "providers.claude.structured_output must be one of"),
    ({"thinking": "maybe"}, None, "providers.claude.thinking must be one of"),
    ({"default_max_tokens": 0}, None, "default_max_tokens must be at least 1"),
    ({"default_max_tokens": "many"}, None, "default_max_tokens must be of type int"),
    ({"thinking_budgets": {"low": 10}}, None, "thinking_budgets.low must be an integer of at least 1024"),
    ({"thinking_budgets": {"huge": 4096}}, None, "unknown effort 'huge'"),
    ({"top_k": 5}, None, "unknown key 'top_k'"),
    ({}, [{"name": MODEL, "provider": "claude", "thinking": "always"}], "thinking must be one of"),
    ({}, [{"name": MODEL, "provider": "claude", "anthropic_version": "x"}], "unknown key 'anthropic_version'"),
])
def test_configuration_mistakes_are_refused_at_start(provider, models, message):
    config = gateway_config("http://127.0.0.1:9", provider=provider, models=models)
    with pytest.raises(ConfigError, match=message):
        Gateway(config, plugins=PLUGINS)


def test_base_url_is_required():
    config = gateway_config("http://127.0.0.1:9")
    del config["providers"]["claude"]["base_url"]
    with pytest.raises(ConfigError, match="base_url is required"):
        Gateway(config, plugins=PLUGINS)


def test_installed_it_serves_the_anthropic_type_through_its_entry_point(upstream):
    fake, url = upstream
    config = gateway_config(url)
    config["gateway"]["load_entrypoints"] = True
    gateway = Gateway(config)
    assert type(gateway.providers["claude"]).__name__ == "AnthropicProvider"
    fake.handler = fake.json_reply(message({"type": "text", "text": "Hello from Claude."}))
    with serve(gateway) as gateway_url:
        response = httpx2.post(f"{gateway_url}/chat/completions", json={"model": MODEL, "messages": MESSAGES},
                               headers={"authorization": f"Bearer {CLIENT_KEY}"}, timeout=10)
    assert response.json()["choices"][0]["message"]["content"] == "Hello from Claude."


def test_the_plugin_adds_no_per_request_hook():
    """Installed, the plugin registers its provider type and the /messages operations (so every
    gateway speaks Anthropic's API): no hook of the plugin's runs on a request."""
    gateway = Gateway({"gateway": {"api_keys": ["k"]}, "providers": {"d": {"type": "demo"}},
                       "models": [{"name": "demo", "provider": "d"}]})
    plugin = gateway.pm.get_plugin("anthropic")
    assert plugin is not None, "the entry point was not loaded"
    hooks = sorted(impl.name for impl in gateway.pm.get_hookcallers(plugin) or ())
    assert hooks == ["register_operations", "register_providers"]
    assert "anthropic" in gateway.provider_types and gateway.providers.keys() == {"d"}
    assert {"messages", "messages.count_tokens"} <= gateway.operations.keys()


class RouteAnyClaude:
    """A routing plugin that sends any claude-* model to the anthropic provider, with no
    [[models]] entry: the provider's own settings apply."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    @hookimpl
    def route_model(self, model: str) -> Route | None:
        if model.startswith("claude-"):
            return Route(self.gateway.providers["claude"], model)
        return None


def test_a_model_routed_without_a_models_entry(make_gateway, upstream):
    fake, _ = upstream
    gw = make_gateway(plugins=(RouteAnyClaude,), provider={"default_max_tokens": 123})
    fake.handler = fake.json_reply(message({"type": "text", "text": "ok"}))
    assert gw.post({"model": "claude-haiku-4-5", "messages": MESSAGES}).status_code == 200
    assert (fake.received[-1].json["model"], fake.received[-1].json["max_tokens"]) == ("claude-haiku-4-5", 123)
