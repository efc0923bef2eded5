"""The plugin as installed: found through its entry point, inert until configured, and its
options checked at start-up."""

from __future__ import annotations

from typing import Any

import pytest
from gemini_support import USER, Served, gemini_config, sent

import compatgate_gemini
from compatgate import ConfigError, Gateway
from compatgate.testing import FakeUpstream


def test_loaded_from_its_entry_point_and_inert():
    """Installed, the plugin only registers the provider type; a gateway without a Gemini
    provider serves as before."""
    gateway = Gateway({"gateway": {"api_keys": ["k"]}, "providers": {"demo": {"type": "demo"}},
                      "models": [{"name": "demo-chat", "provider": "demo"}]})
    assert gateway.pm.get_plugin("gemini") is compatgate_gemini
    assert gateway.provider_types["gemini"] is compatgate_gemini.GeminiProvider
    assert list(gateway.providers) == ["demo"]


@pytest.mark.parametrize(
    ("provider", "model", "message"),
    [
        ({"base_url": None}, {}, "base_url is required"),
        ({"api_key_in_url": True}, {}, "unknown key 'api_key_in_url' in providers.google"),
        ({"tool_schema": "openapi3"}, {}, "providers.google.tool_schema must be one of 'openapi', 'json_schema'"),
        ({"include_thoughts": "yes"}, {}, "providers.google.include_thoughts must be of type bool"),
        ({"safety_settings": ["BLOCK_NONE"]}, {}, "safety_settings must be an array of tables"),
        ({}, {"thinking": "deep"}, "models 'm'.thinking must be one of 'auto', 'level', 'budget'"),
        ({}, {"api_version": "v1"}, "unknown key 'api_version' in models 'm'"),
    ],
    ids=["no-base-url", "unknown-option", "bad-tool-schema", "bad-bool", "bad-safety", "bad-model-choice",
         "provider-only-option"],
)
def test_bad_options_fail_at_start(provider: dict[str, Any], model: dict[str, Any], message: str):
    config = gemini_config("http://127.0.0.1:9", models=[{"name": "m", "provider": "google", **model}])
    config["providers"]["google"].update(provider)
    config["providers"]["google"] = {k: v for k, v in config["providers"]["google"].items() if v is not None}
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Gateway(config)


def test_model_options_override_the_provider(make_gateway, upstream_served, upstream: FakeUpstream):
    models = [{"name": "plain", "provider": "google", "upstream_model": "gemini-2.5-flash"},
              {"name": "thinker", "provider": "google", "upstream_model": "gemini-2.5-flash", "include_thoughts": True,
               "thinking": "level"}]
    gw: Served = make_gateway(gemini_config(upstream_served[1], models=models, include_thoughts=False))
    assert sent(gw, upstream, model="plain", reasoning_effort="low")["generationConfig"]["thinkingConfig"] == {
        "thinkingBudget": 1024}  # the provider's include_thoughts = false
    assert sent(gw, upstream, model="thinker", reasoning_effort="low")["generationConfig"]["thinkingConfig"] == {
        "thinkingLevel": "low", "includeThoughts": True}
    assert sent(gw, upstream, model="plain", messages=USER)["generationConfig"] == {}


def test_completions_endpoint_is_not_served(gw: Served, upstream: FakeUpstream):
    response = gw.post("/completions", {"model": "gemini-2.5-flash", "prompt": "Hi"})
    assert response.status_code == 404 and response.json()["error"]["code"] == "unsupported_endpoint"
    assert upstream.received == []
