"""``compatgate serve`` for an operator, run as a real subprocess: its logs (captured from
standard error), its banner, ``--plugin``, the top-level health probes, the hint for a
``base_url`` without ``/v1``, and a SIGTERM that lets a stream finish."""

from __future__ import annotations

import json
import re
import signal
import threading
from pathlib import Path

import httpx2
import openai
import pytest
from cli_support import client, free_port, server, serving
from support import UPSTREAM_KEY

DEMO_CONFIG = '''\
[gateway]
api_keys = ["sk-demo"]
{gateway}

[providers.demo]
type = "demo"
{demo}

[[models]]
name = "demo-chat"
provider = "demo"
'''


def demo_config(tmp_path: Path, gateway: str = "", demo: str = "") -> Path:
    path = tmp_path / "compatgate.toml"
    path.write_text(DEMO_CONFIG.format(gateway=gateway, demo=demo))
    return path


def access_lines(log: str) -> list[str]:
    return [line for line in log.splitlines() if " INFO compatgate.access: " in line]


def test_access_log_and_upstream_failures_are_logged(tmp_path: Path):
    """The default text access log at info, and the cause of an upstream failure: provider,
    URL without credentials, request id, exception; never a key."""
    dead = free_port()  # nothing listens there
    config = tmp_path / "compatgate.toml"
    config.write_text(DEMO_CONFIG.format(gateway="", demo="") + f'''
[providers.down]
type = "openai"
base_url = "http://operator:{UPSTREAM_KEY}@127.0.0.1:{dead}/v1"

[[models]]
name = "gpt-4o"
provider = "down"
''')
    logs: list[str] = []
    with serving("--config", str(config), log_level="info", logs=logs) as url:
        sdk = client(url)
        assert sdk.chat.completions.create(model="demo-chat", messages=[{"role": "user", "content": "hi"}])
        with pytest.raises(openai.APIStatusError) as failed:
            sdk.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
        assert failed.value.status_code == 502
        request_id = failed.value.response.headers["x-request-id"]
    (log,) = logs
    ok, error = access_lines(log)
    assert "endpoint=chat.completions key_id=static:0 model=demo-chat provider=demo status=200 outcome=ok" in ok
    assert f"request_id={request_id} " in error and "status=502 outcome=error" in error
    assert "error_code=upstream_unavailable" in error
    (cause,) = [line for line in log.splitlines() if " WARNING compatgate.upstream: " in line]
    assert re.search(
        rf"upstream 'down' POST http://127\.0\.0\.1:{dead}/v1/chat/completions failed "
        rf"\(request {request_id}\): ConnectError: .*127\.0\.0\.1:{dead}", cause
    ), cause
    assert UPSTREAM_KEY not in log and "operator" not in log


def test_json_access_log_from_the_configuration(tmp_path: Path):
    """``access_log = "json"`` and ``log_level = "debug"`` in [gateway]: every line is JSON."""
    config = demo_config(tmp_path, gateway='access_log = "json"\nlog_level = "debug"')
    logs: list[str] = []
    with serving("--config", str(config), log_level=None, logs=logs) as url:
        client(url).chat.completions.create(model="demo-chat", messages=[{"role": "user", "content": "hi"}])
    entries = [json.loads(line) for line in logs[0].splitlines() if line.startswith("{")]
    assert len(entries) == len([line for line in logs[0].splitlines() if line.strip()]), logs[0]
    (access,) = [e for e in entries if "request_id" in e]
    assert access["endpoint"] == "chat.completions" and access["status"] == 200 and access["outcome"] == "ok"
    assert {"time", "level", "logger", "message"} <= set(next(e for e in entries if "logger" in e))
    assert any(e.get("logger") == "uvicorn.access" for e in entries)  # debug shows uvicorn's too


def test_log_level_flag_wins_over_the_configuration(tmp_path: Path):
    config = demo_config(tmp_path, gateway='log_level = "warning"')
    for flag, lines in ((None, 0), ("info", 1)):
        logs: list[str] = []
        with serving("--config", str(config), log_level=flag, logs=logs) as url:
            client(url).chat.completions.create(model="demo-chat", messages=[{"role": "user", "content": "hi"}])
        assert len(access_lines(logs[0])) == lines, logs[0]


def test_banner_health_and_the_v1_hint(tmp_path: Path):
    config = demo_config(tmp_path)
    with server("--config", str(config), log_level=None) as served:
        port = served.root.rsplit(":", 1)[1]
        assert f"INFO compatgate: serving {config} at http://127.0.0.1:{port}/v1 — 1 providers, 1 models" in served.log()
        assert httpx2.get(f"{served.root}/health/live").json() == {"status": "ok"}
        assert httpx2.head(f"{served.root}/health/live").status_code == 200
        ready = httpx2.get(f"{served.root}/health/ready")
        assert ready.status_code == 200 and ready.json() == {"status": "ok", "checks": {"gateway": "ok"}}
        assert httpx2.get(f"{served.url}/health/ready").json()["status"] == "ok"  # the gateway's own
        assert httpx2.post(f"{served.root}/health/ready").status_code == 405

        lost = openai.OpenAI(api_key="sk-demo", base_url=served.root, max_retries=0, timeout=10)
        with pytest.raises(openai.NotFoundError) as missing:
            lost.chat.completions.create(model="demo-chat", messages=[{"role": "user", "content": "hi"}])
        assert missing.value.code == "unknown_url"
        assert f"set the client's base_url to http://127.0.0.1:{port}/v1" in missing.value.message
        assert httpx2.get(f"{served.root}/nothing").json()["error"]["code"] == "unknown_url"


def test_authorization_without_bearer_says_so(tmp_path: Path):
    with serving("--demo") as url:
        answer = httpx2.get(f"{url}/models", headers={"authorization": "sk-demo-typed-raw"})
        missing = httpx2.get(f"{url}/models")
    assert answer.status_code == 401 and "no 'Bearer ' scheme" in answer.json()["error"]["message"]
    assert "sk-demo-typed-raw" not in answer.text
    assert "You didn't provide an API key" in missing.json()["error"]["message"]


LOCAL_PLUGIN = '''\
from compatgate import hookimpl


class Stamp:
    def __init__(self, gateway):
        self.value = gateway.config.plugin("stamp").get("value", "none")

    @hookimpl
    def response_headers(self, ctx):
        return {"x-stamp": self.value}
'''


@pytest.mark.parametrize(("spec", "workers"), [("stamp:Stamp", "1"), ("plugins/stamp.py:Stamp", "2")])
def test_plugin_from_a_local_file(tmp_path: Path, spec: str, workers: str):
    folder = tmp_path / "plugins" if "/" in spec else tmp_path
    folder.mkdir(exist_ok=True)
    (folder / "stamp.py").write_text(LOCAL_PLUGIN)
    config = demo_config(tmp_path)
    config.write_text(config.read_text() + '\n[plugins.stamp]\nvalue = "local"\n')
    with serving("--config", str(config), "--plugin", spec, "--workers", workers, cwd=tmp_path) as url:
        for _ in range(4):  # every worker has it
            response = httpx2.get(f"{url}/models", headers={"authorization": "Bearer sk-demo"})
            assert response.headers["x-stamp"] == "local"


def test_sigterm_lets_a_stream_finish(tmp_path: Path):
    """SIGTERM mid-stream: the client gets the whole stream and ``[DONE]``, the request is
    recorded (its access line), then the process exits."""
    config = demo_config(tmp_path, demo="chunk_delay = 0.1")
    messages = [{"role": "user", "content": " ".join(f"word{i}" for i in range(40))}]
    with server("--config", str(config), log_level="info") as served:
        whole = client(served.url).chat.completions.create(model="demo-chat", messages=messages)
        body = {"model": "demo-chat", "messages": messages, "stream": True}
        with httpx2.stream("POST", f"{served.url}/chat/completions", json=body, timeout=30,
                           headers={"authorization": "Bearer sk-demo"}) as response:
            data = iter(response.iter_bytes())
            received = [next(data)]
            served.process.send_signal(signal.SIGTERM)
            received += list(data)
        assert served.process.wait(30) in (0, -signal.SIGTERM)
        log = served.log()
    events = b"".join(received).decode().split("\n\n")
    assert events[-2:] == ["data: [DONE]", ""]
    chunks = [json.loads(event.removeprefix("data: ")) for event in events[:-2]]
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks) == whole.choices[0].message.content
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    streamed = [line for line in access_lines(log) if "streamed=True" in line]
    assert len(streamed) == 1 and "status=200 outcome=ok" in streamed[0]
    assert log.index("Shutting down") < log.index(streamed[0])  # it finished after the signal


def test_sigterm_past_the_grace_period_cuts_the_stream(tmp_path: Path):
    """A stream still running when ``--shutdown-grace-seconds`` is over is cut (no ``[DONE]``:
    it never looks complete) and recorded as aborted."""
    config = demo_config(tmp_path, demo="chunk_delay = 0.5")
    words = " ".join(f"word{i}" for i in range(40))
    with server("--config", str(config), "--shutdown-grace-seconds", "0.5", log_level="info") as served:
        body = {"model": "demo-chat", "messages": [{"role": "user", "content": words}], "stream": True}
        received: list[bytes] = []
        started = threading.Event()

        def read() -> None:
            with httpx2.stream("POST", f"{served.url}/chat/completions", json=body, timeout=30,
                               headers={"authorization": "Bearer sk-demo"}) as response:
                try:
                    for data in response.iter_bytes():
                        received.append(data)
                        started.set()
                except httpx2.HTTPError:
                    pass

        reader = threading.Thread(target=read)
        reader.start()
        assert started.wait(20)
        served.process.send_signal(signal.SIGTERM)
        reader.join(30)
        assert served.process.wait(30) in (0, -signal.SIGTERM)
        log = served.log()
    assert b"[DONE]" not in b"".join(received)
    (line,) = [line for line in access_lines(log) if "streamed=True" in line]
    assert "outcome=aborted" in line
