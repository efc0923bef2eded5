"""GET /models shows Gemini models as owned by Google unless the configuration says otherwise."""

from __future__ import annotations

import compatgate_gemini

from compatgate.testing import serve_gateway


def test_models_are_owned_by_google_by_default():
    config = {
        "gateway": {"api_keys": ["sk-test"], "load_entrypoints": False},
        "providers": {
            "gemini": {"type": "gemini", "base_url": "http://127.0.0.1:9", "api_key": "g-key"},
            "vertex": {"type": "gemini", "base_url": "http://127.0.0.1:9", "api_key": "g-key", "owned_by": "acme"},
        },
        "models": [
            {"name": "gemini-2.5-flash", "provider": "gemini"},
            {"name": "gemini-pro-acme", "provider": "vertex"},
        ],
    }
    with serve_gateway(config, plugins=(compatgate_gemini,)) as served:
        listed = {m.id: m.owned_by for m in served.client().models.list()}
    assert listed == {"gemini-2.5-flash": "google", "gemini-pro-acme": "acme"}
