"""``compatgate check``, run as a subprocess: what it lists, what it reports, ``--probe``."""

from __future__ import annotations

from pathlib import Path

import orjson
from cli_support import compatgate, free_port
from support import UPSTREAM_KEY

from compatgate.testing import FakeUpstream, Received, serve

TAGGER = '''\
from compatgate import hookimpl


class Tagger:
    def __init__(self, gateway):
        self.tag = gateway.config.plugin("tagger").get("tag", "x")

    @hookimpl
    def response_headers(self, ctx):
        return {"x-tag": self.tag}

    @hookimpl
    def record_usage(self, record):
        pass
'''

CONFIG = '''\
[gateway]
api_keys = ["k"]

[providers.d]
type = "demo"

[[models]]
name = "m"
provider = "d"
'''


def write(tmp_path: Path, text: str, name: str = "compatgate.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_lists_every_plugin_with_its_origin_and_hooks(tmp_path: Path):
    write(tmp_path, TAGGER, "tagger.py")
    write(tmp_path, CONFIG + '\n[plugins.tagger]\ntag = "t"\n')
    result = compatgate("check", "--plugin", "tagger:Tagger", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    rows = {line.split()[0]: line for line in result.stdout.splitlines() if line.startswith("  ")}
    assert rows["tagger:Tagger"].split()[1:] == ["local", "file", "tagger.py", "record_usage,", "response_headers"]
    assert "compatgate 0.1.0" in rows["built-in"]
    assert ["api", "responses", "auth", "routing", "openai", "demo", "accesslog", "ready"] == rows["built-in"].split("0.1.0")[1].replace(",", " ").split()
    assert "warning" not in result.stdout  # [plugins.tagger] is read


def test_reports_what_cannot_work(tmp_path: Path):
    """No client key nor authentication plugin (error), a table nobody reads (warning)."""
    config = write(tmp_path, '[providers.d]\ntype = "demo"\n[[models]]\nname = "m"\nprovider = "d"\n'
                             '[plugins.tagr]\ntag = "t"\n')
    write(tmp_path, TAGGER, "tagger.py")
    result = compatgate("check", "--config", str(config), "--plugin", "tagger.py:Tagger", cwd=tmp_path)
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert any(line.startswith("error: no client can authenticate, so every request will get 401") for line in lines)
    assert "warning: [plugins.tagr] is read by no loaded plugin, so it does nothing " \
           "(did you mean [plugins.tagger]?)" in lines
    assert lines[-1] == "failed: 1 error(s), 1 warning(s)"


def test_warnings_fail_only_with_strict(tmp_path: Path):
    config = write(tmp_path, CONFIG + "\n[plugins.nobody]\nx = 1\n")
    lenient = compatgate("check", "--config", str(config))
    assert lenient.returncode == 0 and lenient.stdout.splitlines()[-1].endswith("(1 warning(s))")
    strict = compatgate("check", "--config", str(config), "--strict")
    assert strict.returncode == 1 and strict.stdout.splitlines()[-1] == "failed: 0 error(s), 1 warning(s)"


def test_configuration_errors_say_what_to_fix(tmp_path: Path):
    cases = {
        '[providers.up]\ntype = "openai"\nbase_url = "api.openai.com/v1"\n':
            "providers.up.base_url = 'api.openai.com/v1' must start with http:// or https:// "
            "(write 'https://api.openai.com/v1')",
        '[providers.up]\ntype = "openai-compatible"\nbase_url = "http://x/v1"\n':
            "providers.up.type = 'openai-compatible': no installed plugin serves this type; did you mean 'openai'?",
        '[providers.up]\ntype = "openai"\nbase_url = "http://x/v1"\nread_timout = 5\n':
            "unknown key 'read_timout' in providers.up (did you mean 'read_timeout'?)",
        '[gateway]\napi_key = ["k"]\n': "unknown key gateway.api_key (did you mean 'api_keys'?)",
    }
    for text, expected in cases.items():
        result = compatgate("check", "--config", str(write(tmp_path, text)))
        assert result.returncode == 2 and result.stdout == "", result.stdout
        assert expected in result.stderr, result.stderr


def test_plugin_mistakes_name_the_plugin(tmp_path: Path):
    write(tmp_path, CONFIG)
    write(tmp_path, "from compatgate import hookimpl\n\nclass Late:\n    def __init__(self, gateway):\n"
                    "        pass\n\n    @hookimpl\n    def admit_requests(self, ctx):\n        pass\n", "late.py")
    write(tmp_path, "from compatgate import hookimpl\n\n@hookimpl\ndef record_usage(context, record):\n"
                    "    pass\n", "argued.py")
    write(tmp_path, "def helper():\n    pass\n", "plain.py")
    cases = {
        "late:Late": "plugin late:Late: 'admit_requests' is not a compatgate hook (did you mean 'admit_request'?)",
        "argued": "plugin argued: its record_usage hook takes 'context' (did you mean 'ctx'?), which "
                  "record_usage does not pass; it passes ctx, record",
        "late:Lat": "late has no attribute 'Lat' (did you mean 'Late'?)",
        "missing_module:X": "no module named 'missing_module' in the current directory",
        "plain": "it implements no hook (no function marked @compatgate.hookimpl)",
    }
    for spec, expected in cases.items():
        commands = [["check"]] + ([["serve", "--port", str(free_port())]] if spec == "late:Late" else [])
        for command in commands:  # serve stops the same way
            result = compatgate(*command, "--plugin", spec, cwd=tmp_path)
            assert result.returncode == 2, (command, result.stdout, result.stderr)
            assert expected in result.stderr and "Traceback" not in result.stderr, result.stderr


def models_upstream(ids: list[str]) -> FakeUpstream:
    """An OpenAI-compatible upstream listing ``ids`` to the right key, 401 to any other."""
    fake = FakeUpstream()

    async def handler(request: Received, send):  # type: ignore[no-untyped-def]
        if request.headers.get("authorization") != f"Bearer {UPSTREAM_KEY}":
            status, body = 401, {"error": {"message": "Incorrect API key provided: sk-wr***ng.", "type":
                                           "invalid_request_error", "param": None, "code": "invalid_api_key"}}
        elif request.method == "GET" and request.path == "/v1/models":
            status, body = 200, {"object": "list", "data": [
                {"id": i, "object": "model", "created": 1, "owned_by": "system"} for i in ids]}
        else:
            status, body = 404, {"error": {"message": "not here"}}
        payload = orjson.dumps(body)
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": payload})

    fake.handler = handler
    return fake


def probe_config(url: str, key: str) -> str:
    return f'''\
[gateway]
api_keys = ["k"]

[providers.up]
type = "openai"
base_url = "{url}/v1"
api_key = "{key}"

[providers.d]
type = "demo"

[[models]]
name = "gpt-4o"
provider = "up"
upstream_model = "gpt-4o-2024-08-06"

[[models]]
name = "mini"
provider = "up"
upstream_model = "gpt-4o-mimi"

[[models]]
name = "m"
provider = "d"
'''


def test_probe_proves_the_url_and_the_key(tmp_path: Path):
    fake = models_upstream(["gpt-4o-2024-08-06", "gpt-4o-mini"])
    with serve(fake) as url:
        good = compatgate("check", "--probe", "--config", str(write(tmp_path, probe_config(url, UPSTREAM_KEY))))
        bad = compatgate("check", "--probe", "--config", str(write(tmp_path, probe_config(url, "sk-wrong"), "bad.toml")))
    assert good.returncode == 0, good.stdout + good.stderr
    lines = good.stdout.splitlines()
    assert any(line.startswith(f"provider up: ok (GET {url}/v1/models): 2 models listed in ") for line in lines)
    assert "provider d: type 'demo' has no upstream to probe" in lines
    assert "warning: model 'mini': provider up does not list the upstream model 'gpt-4o-mimi' " \
           "(did you mean 'gpt-4o-mini'?)" in lines
    assert "ready: yes (gateway: ok)" in lines
    assert fake.received[0].headers["authorization"] == f"Bearer {UPSTREAM_KEY}"

    assert bad.returncode == 1
    assert f"error: provider up: the probe failed (GET {url}/v1/models): HTTP 401 (invalid_api_key): " \
           "Incorrect API key provided: sk-wr***ng." in bad.stdout.splitlines()
    assert UPSTREAM_KEY not in good.stdout + good.stderr + bad.stdout + bad.stderr


def test_probe_logs_why_an_upstream_is_unreachable(tmp_path: Path):
    port = free_port()  # nothing listens there
    config = write(tmp_path, probe_config(f"http://127.0.0.1:{port}", UPSTREAM_KEY))
    result = compatgate("check", "--probe", "--config", str(config))
    assert result.returncode == 1
    assert f"error: provider up: the probe failed (GET http://127.0.0.1:{port}/v1/models): HTTP 502 " \
           "(upstream_unavailable): The upstream provider 'up' could not be reached (ConnectError)." \
           in result.stdout.splitlines()
    (line,) = [line for line in result.stderr.splitlines() if "compatgate.upstream" in line]
    assert f"WARNING compatgate.upstream: upstream 'up' GET http://127.0.0.1:{port}/v1/models failed " \
           "(request probe_" in line and "ConnectError" in line
    assert UPSTREAM_KEY not in result.stdout + result.stderr
