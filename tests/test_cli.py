"""The ``compatgate`` command, run for real in a subprocess and used through the official SDK."""

from __future__ import annotations

import base64
import struct
from pathlib import Path

import httpx2
import openai
import pytest
from cli_support import client, compatgate, free_port, serving

from support import UPSTREAM_KEY

from compatgate.testing import FakeUpstream, serve


def use_the_demo(url: str) -> None:
    sdk = client(url)
    assert sorted(m.id for m in sdk.models.list()) == ["demo-chat", "demo-embedding"]
    assert sdk.models.retrieve("demo-chat").owned_by == "compatgate"

    answer = sdk.chat.completions.create(model="demo-chat", messages=[{"role": "user", "content": "ping pong"}])
    assert answer.object == "chat.completion" and answer.model == "demo-chat"
    assert answer.choices[0].finish_reason == "stop" and "ping pong" in answer.choices[0].message.content
    assert answer.usage.completion_tokens > 0

    stream = sdk.chat.completions.create(
        model="demo-chat", messages=[{"role": "user", "content": "stream me"}], stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == answer.choices[0].message.content.replace("ping pong", "stream me")
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == answer.usage.completion_tokens

    # No encoding_format: the SDK asks for base64 and decodes it.
    embeddings = sdk.embeddings.create(model="demo-embedding", input=["one", "two"])
    assert [len(e.embedding) for e in embeddings.data] == [256, 256]
    assert embeddings.data[0].embedding != embeddings.data[1].embedding
    assert abs(sum(v * v for v in embeddings.data[0].embedding) - 1.0) < 1e-3
    small = sdk.embeddings.create(model="demo-embedding", input="one", dimensions=64)
    assert len(small.data[0].embedding) == 64
    raw = httpx2.post(f"{url}/embeddings", headers={"authorization": "Bearer sk-demo"}, timeout=10,
                      json={"model": "demo-embedding", "input": "one", "encoding_format": "base64"}).json()
    decoded = struct.unpack("<256f", base64.b64decode(raw["data"][0]["embedding"]))
    assert [round(v, 5) for v in decoded] == [round(v, 5) for v in embeddings.data[0].embedding]

    with pytest.raises(openai.AuthenticationError):
        client(url, "sk-wrong").models.list()


def test_serve_demo(tmp_path: Path):
    with serving("--demo", cwd=tmp_path) as url:
        use_the_demo(url)


def test_serve_demo_with_workers(tmp_path: Path):
    with serving("--demo", "--workers", "2", cwd=tmp_path) as url:
        sdk = client(url)
        for _ in range(4):
            answer = sdk.chat.completions.create(model="demo-chat", messages=[{"role": "user", "content": "hi"}])
            assert answer.choices[0].finish_reason == "stop"
        assert len(sdk.embeddings.create(model="demo-embedding", input="x").data[0].embedding) == 256


def test_serve_with_a_config_file(tmp_path: Path):
    fake = FakeUpstream()
    fake.handler = fake.json_reply({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1727346172, "model": "gpt-4o-2024-08-06",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "From upstream.", "refusal": None},
                     "logprobs": None, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
    })
    with serve(fake) as upstream_url:
        config = tmp_path / "good.toml"
        config.write_text(f"""\
[gateway]
api_keys = ["sk-local-1"]

[providers.up]
type = "openai"
base_url = "{upstream_url}/v1"
api_key = "${{CG_TEST_UPSTREAM_KEY}}"
read_timeout = 5

[[models]]
name = "gpt-4o"
provider = "up"
upstream_model = "gpt-4o-2024-08-06"
""")
        with serving("--config", str(config), env={"CG_TEST_UPSTREAM_KEY": UPSTREAM_KEY}) as url:
            sdk = client(url, "sk-local-1")
            assert [m.id for m in sdk.models.list()] == ["gpt-4o"]
            answer = sdk.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
            assert answer.choices[0].message.content == "From upstream."
            sent = fake.received[-1]
            assert sent.path == "/v1/chat/completions"
            assert sent.headers["authorization"] == f"Bearer {UPSTREAM_KEY}"
            assert sent.json["model"] == "gpt-4o-2024-08-06"
            with pytest.raises(openai.AuthenticationError):
                client(url, "sk-demo").models.list()
        # ./compatgate.toml is the default.
        (tmp_path / "compatgate.toml").write_text(config.read_text())
        with serving(cwd=tmp_path, env={"CG_TEST_UPSTREAM_KEY": UPSTREAM_KEY}) as url:
            assert [m.id for m in client(url, "sk-local-1").models.list()] == ["gpt-4o"]


def test_check_good_config(tmp_path: Path):
    config = tmp_path / "good.toml"
    config.write_text('[gateway]\napi_keys = ["k"]\n[providers.d]\ntype = "demo"\n'
                      '[[models]]\nname = "m"\nprovider = "d"\n')
    result = compatgate("check", "--config", str(config))
    assert result.returncode == 0, result.stderr
    assert f"configuration: {config}" in result.stdout and "providers: d (demo)" in result.stdout
    last = result.stdout.splitlines()[-1]
    assert last.startswith("ok: 1 providers, 1 models") and "demo" in last
    assert "error:" not in result.stdout and "warning:" not in result.stdout


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('[gateway]\napi_keys = "k"\n', "gateway.api_keys"),
        ('[gateway\n', "invalid TOML"),
        ('[providers.x]\ntype = "nope"\n', "providers.x.type"),
        ('[providers.x]\ntype = "openai"\nbase_url = "${CG_TEST_NOT_SET}"\n', "CG_TEST_NOT_SET"),
    ],
)
def test_check_bad_config(tmp_path: Path, text: str, expected: str):
    config = tmp_path / "bad.toml"
    config.write_text(text)
    result = compatgate("check", "--config", str(config))
    assert result.returncode == 2
    assert result.stdout == ""
    assert "configuration error" in result.stderr and expected in result.stderr
    assert "Traceback" not in result.stderr


def test_check_missing_config(tmp_path: Path):
    result = compatgate("check", "--config", str(tmp_path / "absent.toml"))
    assert result.returncode == 2 and "not found" in result.stderr and "absent.toml" in result.stderr


def test_check_without_config_says_what_serve_says(tmp_path: Path):
    check = compatgate("check", cwd=tmp_path)
    serve_ = compatgate("serve", "--port", str(free_port()), cwd=tmp_path)
    assert check.returncode == serve_.returncode == 2
    assert check.stderr == serve_.stderr and "--demo" in check.stderr and "--config" in check.stderr
    demo = compatgate("check", "--demo", cwd=tmp_path)
    assert demo.returncode == 0 and "the offline demo" in demo.stdout, demo.stdout + demo.stderr


def test_serve_without_config_points_to_demo(tmp_path: Path):
    result = compatgate("serve", "--port", str(free_port()), cwd=tmp_path)
    assert result.returncode == 2
    assert "--demo" in result.stderr and "--config" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("workers", ["1", "2"])
def test_serve_with_a_bad_config_fails_at_once(tmp_path: Path, workers: str):
    config = tmp_path / "bad.toml"
    config.write_text('[gateway]\nmax_request_bytes = "big"\n')
    result = compatgate("serve", "--config", str(config), "--port", str(free_port()), "--workers", workers)
    assert result.returncode == 2 and "gateway.max_request_bytes" in result.stderr
    assert "Traceback" not in result.stderr


def test_standalone_mounts_the_apps_of_register_apps():
    from starlette.responses import PlainTextResponse

    from compatgate import hookimpl
    from compatgate.cli import Standalone
    from compatgate.exceptions import ConfigError
    from compatgate.gateway import Gateway

    async def extra(scope, receive, send):
        text = f"{scope['root_path']} {scope['path']}"
        await PlainTextResponse(text)(scope, receive, send)

    class Extra:
        @hookimpl
        def register_apps(self, gateway, register):
            assert isinstance(gateway, Gateway)
            register("/extra", extra)

    config = {"gateway": {"api_keys": ["sk-x"], "load_entrypoints": False}}
    with serve(Standalone(Gateway(config, plugins=[Extra()]))) as url:
        assert httpx2.get(f"{url}/extra/page").text == "/extra /extra/page"
        assert httpx2.get(f"{url}/extra").text == "/extra /extra"
        assert httpx2.get(f"{url}/extras").status_code == 404
        assert httpx2.get(f"{url}/health").status_code == 200

    class Taken:
        @hookimpl
        def register_apps(self, register):
            register("/v1", extra)

    with pytest.raises(ConfigError, match="'/v1'"):
        Standalone(Gateway(config, plugins=[Taken()]))
