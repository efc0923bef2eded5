"""The examples work as their docstrings say."""

from __future__ import annotations

import importlib.util
from types import ModuleType

import httpx2
from support import CLIENT_KEY, ROOT, Served, gateway_config

from compatgate.testing import serve


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"example_{name}", ROOT / "examples" / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_redact_plugin_redacts_prompts_and_tags_usage(make_gateway, upstream):
    fake, url = upstream
    redact = load("redact_plugin")
    config = gateway_config(url)
    config["plugins"] = {"redact": {"replacement": "<hidden>"}}
    gw: Served = make_gateway(config, plugins=(redact.RedactEmails,))
    fake.handler = fake.json_reply({
        "id": "c", "object": "chat.completion", "created": 1, "model": "gpt-4o",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok", "refusal": None},
                     "logprobs": None, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    })
    gw.client().chat.completions.create(model="gpt-4o", messages=[
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "Mail ada@example.com and bob.smith@mail.example.org"}]},
    ])
    sent = fake.received[-1].json["messages"]
    assert sent[0]["content"] == "Be brief."
    assert sent[1]["content"][0]["text"] == "Mail <hidden> and <hidden>"
    gw.records(1)
    plugin = next(p for p in gw.gateway.pm.get_plugins() if isinstance(p, redact.RedactEmails))
    assert plugin.redacted_by_key == {"static:0": 2}


def test_fastapi_example_mounts_the_gateway(upstream):
    fastapi_app = load("fastapi_app")
    app = fastapi_app.create_app(gateway_config(upstream[1]) | {"gateway": {"api_keys": [CLIENT_KEY]}})
    with serve(app) as url:
        assert httpx2.get(f"{url}/").json()["hello"]
        models = httpx2.get(f"{url}/v1/models", headers={"authorization": f"Bearer {CLIENT_KEY}"}).json()
        assert {m["id"] for m in models["data"]} >= {"gpt-4o"}
        demo = fastapi_app.app  # the module-level app serves the offline demo
        with serve(demo) as demo_url:
            import openai

            client = openai.OpenAI(api_key="sk-demo", base_url=f"{demo_url}/v1", max_retries=0)
            answer = client.chat.completions.create(model="demo-chat", messages=[{"role": "user", "content": "ping"}])
            assert "ping" in answer.choices[0].message.content
