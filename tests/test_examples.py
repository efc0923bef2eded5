"""The examples work as their docstrings say."""

from __future__ import annotations

import importlib.util
import re
import socket
import subprocess
import sys
import time
from types import ModuleType

import httpx2
import openai
import orjson
import pytest
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


def test_redact_plugin_covers_completions_and_responses(make_gateway, upstream):
    fake, url = upstream
    redact = load("redact_plugin")
    gw: Served = make_gateway(gateway_config(url), plugins=(redact.RedactEmails,))
    fake.handler = fake.json_reply({"id": "x", "object": "text_completion", "created": 1, "model": "m",
                                    "choices": [{"index": 0, "text": "ok", "logprobs": None, "finish_reason": "stop"}],
                                    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}})
    gw.client().completions.create(model="gpt-3.5-turbo-instruct", prompt=["to ada@example.com", "plain"])
    assert fake.received[-1].json["prompt"] == ["to [email]", "plain"]
    fake.handler = fake.json_reply({"error": {"message": "stop here"}}, status=400)  # only the request matters
    with pytest.raises(openai.BadRequestError):
        gw.client().responses.create(
            model="gpt-4o", instructions="Never write to root@example.org.",
            input=[{"role": "user", "content": [{"type": "input_text", "text": "Ask bob@mail.example.net"}]},
                   {"type": "function_call_output", "call_id": "c1", "output": "owner: eve@example.com"}],
        )
    text = orjson.dumps(fake.received[-1].json).decode()  # converted to chat completions upstream
    assert "example.org" not in text and "mail.example.net" not in text and "eve@" not in text
    assert text.count("[email]") == 3 and "Never write to [email]." in text
    gw.records(2)
    plugin = next(p for p in gw.gateway.pm.get_plugins() if isinstance(p, redact.RedactEmails))
    assert plugin.redacted_by_key == {"static:0": 4}


def test_fastapi_example_runs_as_its_docstring_says():
    """``uv run uvicorn examples.fastapi_app:app`` from the repository root: the demo, key sk-demo."""
    docstring = load("fastapi_app").__doc__ or ""
    assert "uv run uvicorn examples.fastapi_app:app" in docstring and "sk-demo" in docstring
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "uvicorn", "examples.fastapi_app:app", "--port", str(port)],
                               cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for(f"{base}/v1/health/live", process)
        sdk = openai.OpenAI(api_key="sk-demo", base_url=f"{base}/v1", max_retries=0, timeout=10)
        assert {m.id for m in sdk.models.list()} == {"demo-chat", "demo-embedding"}
        assert httpx2.get(f"{base}/v1/health/ready").json()["status"] == "ok"
    finally:
        process.terminate()
        process.wait(20)


def test_readme_quick_start_snippet_runs():
    """The Python of the README's quick start, run as the README says (``uv run python -``,
    here the same interpreter) against ``compatgate serve --demo``."""
    readme = (ROOT / "README.md").read_text()
    match = re.search(r"```sh\nuv run python - <<'EOF'\n(.*?)\nEOF\n```", readme, flags=re.DOTALL)
    assert match, "README.md: the quick start has no `uv run python - <<'EOF'` snippet"
    code = match.group(1)
    assert 'base_url="http://127.0.0.1:8000/v1"' in code
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "compatgate", "serve", "--demo", "--port", str(port),
                               "--log-level", "warning"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for(f"http://127.0.0.1:{port}/health/live", server)
        ran = subprocess.run([sys.executable, "-"], input=code.replace(":8000/", f":{port}/"), text=True,
                             capture_output=True, timeout=60, check=False)
        assert ran.returncode == 0, ran.stderr
        assert ran.stdout.startswith("Hello from the compatgate demo provider. You said: hi")
    finally:
        server.terminate()
        server.wait(20)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while True:
        assert process.poll() is None, process.stderr.read().decode() if process.stderr else ""
        try:
            if httpx2.get(url, timeout=1).status_code == 200:
                return
        except httpx2.TransportError:
            pass
        assert time.monotonic() < deadline, f"{url} never answered"
        time.sleep(0.05)
