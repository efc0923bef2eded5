"""Loading the configuration: the documented minimal file, environment variables, and every
mistake refused at start-up with a message that says where it is."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from compatgate import ConfigError, Gateway, load_config

MINIMAL = """\
[gateway]
api_keys = ["sk-local-1"]
max_request_bytes = 1048576

[providers.openai]
type = "openai"
base_url = "https://api.openai.com/v1"
api_key = "${OPENAI_API_KEY}"

[[models]]
name = "gpt-4o"
provider = "openai"
upstream_model = "gpt-4o"
"""

SECRET = "sk-proj-SECRET-from-the-environment"


def write(tmp_path: Path, text: str, name: str = "compatgate.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def refused(config: Any, *fragments: str) -> str:
    """The message of the ConfigError that building a gateway from ``config`` raises."""
    with pytest.raises(ConfigError) as info:
        Gateway(config)
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    return message


def config(**changes: Any) -> dict[str, Any]:
    """A valid configuration dict with top-level tables replaced by ``changes``."""
    base: dict[str, Any] = {
        "gateway": {"api_keys": ["sk-local-1"]},
        "providers": {"openai": {"type": "openai", "base_url": "https://api.openai.com/v1", "api_key": "sk-x"}},
        "models": [{"name": "gpt-4o", "provider": "openai"}],
    }
    return {**base, **changes}


def test_minimal_file_works_as_is(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    path = write(tmp_path, MINIMAL)
    gateway = Gateway(path)
    cfg = gateway.config
    assert cfg.source == str(path)
    assert cfg.gateway.api_keys == ("sk-local-1",) and cfg.gateway.max_request_bytes == 1048576
    provider = cfg.providers["openai"]
    assert (provider.type, provider.base_url, provider.api_key) == ("openai", "https://api.openai.com/v1", SECRET)
    assert [(m.name, m.provider, m.upstream_model) for m in cfg.models] == [("gpt-4o", "openai", "gpt-4o")]
    assert sorted(gateway.providers) == ["openai"] and gateway.providers["openai"].type == "openai"
    assert list(gateway.models) == ["gpt-4o"]
    assert cfg.plugin("anything") == {}
    # Secrets stay out of reprs (and so out of logs and tracebacks).
    assert SECRET not in repr(cfg) and "sk-local-1" not in repr(cfg) and SECRET not in repr(gateway)
    assert load_config(cfg) is cfg
    assert load_config(str(path)) == cfg


def test_minimal_file_without_the_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    message = refused(write(tmp_path, MINIMAL), "OPENAI_API_KEY", "providers.openai.api_key")
    assert "not set" in message


def test_variables(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("CG_HOST", "llm.internal")
    monkeypatch.setenv("CG_KEY", SECRET)
    monkeypatch.setenv("CG_EMPTY", "")
    monkeypatch.delenv("CG_PORT", raising=False)
    monkeypatch.delenv("CG_UNSET", raising=False)
    path = write(tmp_path, """\
[gateway]
api_keys = ["${CG_KEY}", "fixed-${CG_UNSET:-fallback}"]

[providers.local]
type = "openai"
base_url = "http://${CG_HOST}:${CG_PORT:-8000}/v1"
api_key = "${CG_KEY}"
headers = { "x-team" = "${CG_UNSET:-}none", "x-empty" = "[${CG_EMPTY}]" }

[[models]]
name = "${CG_UNSET:-local-model}"
provider = "local"

[plugins.audit]
sink = "${CG_HOST}/audit"
levels = ["${CG_UNSET:-info}", "warn"]
""")
    cfg = Gateway(path).config
    provider = cfg.providers["local"]
    assert provider.base_url == "http://llm.internal:8000/v1"
    assert provider.api_key == SECRET and cfg.gateway.api_keys == (SECRET, "fixed-fallback")
    assert provider.headers == {"x-team": "none", "x-empty": "[]"}
    assert cfg.models[0].name == "local-model"
    assert cfg.plugin("audit") == {"sink": "llm.internal/audit", "levels": ["info", "warn"]}


def test_default_applies_to_an_empty_variable(monkeypatch: pytest.MonkeyPatch):
    """As in the shell and docker compose, ``${VAR:-default}`` also replaces an empty value."""
    monkeypatch.setenv("CG_PORT", "")
    cfg = load_config(config(providers={"openai": {"type": "openai", "base_url": "http://h:${CG_PORT:-8000}"}}))
    assert cfg.providers["openai"].base_url == "http://h:8000"


def test_missing_variable_names_it_and_its_place(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("CG_NOT_SET_ANYWHERE", raising=False)
    refused(config(models=[{"name": "m", "provider": "openai", "upstream_model": "x-${CG_NOT_SET_ANYWHERE}"}]),
            "CG_NOT_SET_ANYWHERE", "models[0].upstream_model")
    refused(config(plugins={"audit": {"sink": "${CG_NOT_SET_ANYWHERE}"}}), "CG_NOT_SET_ANYWHERE", "plugins.audit.sink")


def test_plugin_tables(tmp_path: Path):
    path = write(tmp_path, """\
[gateway]
api_keys = ["k"]

[plugins.example]
requests_per_minute = 60
burst = { size = 10, refill = 1.5 }

[plugins.audit]
""")
    gateway = Gateway(path)
    assert gateway.config.plugin("example") == {"requests_per_minute": 60, "burst": {"size": 10, "refill": 1.5}}
    assert gateway.config.plugin("audit") == {}
    assert gateway.config.plugin("absent") == {}
    assert gateway.providers == {} and gateway.models == {}


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        ('api_keys = ["k"]\n', ["unknown key api_keys", "gateway"]),
        ("[gateway]\napi_key = ['k']\n", ["unknown key gateway.api_key", "api_keys"]),
        ("[server]\nport = 1\n", ["unknown key server"]),
        ("[gateway]\napi_keys = 'sk-local-1'\n", ["gateway.api_keys", "array"]),
        ("[gateway]\napi_keys = ['ok', 3]\n", ["gateway.api_keys"]),
        ("[gateway]\napi_keys = ['']\n", ["gateway.api_keys", "non-empty"]),
        ("[gateway]\nmax_request_bytes = '1048576'\n", ["gateway.max_request_bytes", "int"]),
        ("[gateway]\nmax_request_bytes = 1.5\n", ["gateway.max_request_bytes", "int"]),
        ("[gateway]\nmax_request_bytes = true\n", ["gateway.max_request_bytes", "int"]),
        ("[gateway]\nmax_request_bytes = 0\n", ["gateway.max_request_bytes", "positive"]),
        ("[gateway]\nload_entrypoints = 'no'\n", ["gateway.load_entrypoints", "bool"]),
        ("gateway = 3\n", ["gateway must be a table"]),
        ("[providers]\nopenai = 'x'\n", ["providers.openai must be a table"]),
        ("[providers.up]\nbase_url = 'http://x'\n", ["providers.up.type", "required"]),
        ("[providers.up]\ntype = 'openai'\nbase_url = 'http://x'\nread_timeout = '5'\n",
         ["providers.up.read_timeout", "float"]),
        ("[providers.up]\ntype = 'openai'\nbase_url = 'http://x'\nmax_connections = 1.5\n",
         ["providers.up.max_connections", "int"]),
        ("[providers.up]\ntype = 'openai'\nbase_url = 'http://x'\nheaders = { x = 1 }\n",
         ["providers.up.headers"]),
        ("[providers.up]\ntype = 'openai'\nbase_url = 'http://x'\ntransport = 'curl'\n",
         ["providers.up.transport"]),
        ("[providers.up]\ntype = 'openai'\n", ["providers.up.base_url", "required"]),
        ("[providers.up]\ntype = 'openai'\nbase_url = 'http://x'\n[[models]]\nprovider = 'up'\n",
         ["models[0]", "name"]),
        ("[providers.up]\ntype = 'demo'\n[[models]]\nname = 'm'\nprovider = 'up'\ncreated = 'yesterday'\n",
         ["models[0].created", "int"]),
        ("[providers.up]\ntype = 'openai'\nbase_url = 'http://x'\n[models]\nname = 'm'\n",
         ["models", "[[models]]"]),
    ],
)
def test_mistakes_name_their_place(tmp_path: Path, text: str, fragments: list[str]):
    path = write(tmp_path, text)
    message = refused(path, *fragments)
    assert message.startswith(str(path)), message


def test_model_naming_an_unknown_provider():
    refused(config(models=[{"name": "gpt-4o", "provider": "openai"}, {"name": "claude", "provider": "anthropic"}]),
            "models[1]", "'claude'", "'anthropic'", "not defined", "openai")


def test_unknown_provider_type(tmp_path: Path):
    path = write(tmp_path, "[providers.mine]\ntype = 'openia'\nbase_url = 'http://x'\n")
    refused(path, str(path), "providers.mine.type", "'openia'", "openai", "demo")


def test_unknown_provider_option(tmp_path: Path):
    path = write(tmp_path, "[providers.mine]\ntype = 'openai'\nbase_url = 'http://x'\napi_kee = 'sk-1'\n")
    refused(path, str(path), "'api_kee'", "providers.mine", "stream_usage")
    refused(config(providers={"openai": {"type": "openai", "base_url": "http://x", "stream_usage": "yes"}}),
            "providers.openai.stream_usage", "bool")
    # A declared option of the right type is accepted.
    gateway = Gateway(config(providers={"openai": {"type": "openai", "base_url": "http://x", "stream_usage": False}}))
    assert gateway.providers["openai"].option("stream_usage") is False


def test_unknown_model_option(tmp_path: Path):
    path = write(tmp_path, "[providers.up]\ntype = 'demo'\n[[models]]\nname = 'm1'\nprovider = 'up'\ntemprature = 0.2\n")
    message = refused(path, "'temprature'", "'m1'")
    assert message.startswith(str(path)), message


def test_duplicate_model_name(tmp_path: Path):
    path = write(tmp_path, """\
[providers.a]
type = "openai"
base_url = "http://a"

[providers.b]
type = "demo"

[[models]]
name = "gpt-4o"
provider = "a"

[[models]]
name = "gpt-4o"
provider = "b"
""")
    refused(path, str(path), "'gpt-4o'", "twice", "[[models]]")


def test_invalid_toml(tmp_path: Path):
    path = write(tmp_path, "[gateway]\napi_keys = [\"sk-1\"\nmax_request_bytes = 10\n")
    message = refused(path, str(path), "invalid TOML")
    assert "line" in message


def test_not_utf8_toml(tmp_path: Path):
    path = tmp_path / "latin1.toml"
    path.write_bytes("[gateway]\napi_keys = [\"cl\xe9\"]\n".encode("latin-1"))
    refused(path, str(path), "invalid TOML")


def test_missing_file(tmp_path: Path):
    path = tmp_path / "nowhere" / "compatgate.toml"
    refused(path, "not found", str(path))
    refused(str(path), "not found", str(path))


def test_a_directory_is_not_a_file(tmp_path: Path):
    refused(tmp_path, str(tmp_path))


def test_dict_and_file_give_the_same_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    from_file = load_config(write(tmp_path, MINIMAL))
    from_dict = load_config({
        "gateway": {"api_keys": ["sk-local-1"], "max_request_bytes": 1048576},
        "providers": {"openai": {"type": "openai", "base_url": "https://api.openai.com/v1",
                                 "api_key": "${OPENAI_API_KEY}"}},
        "models": [{"name": "gpt-4o", "provider": "openai", "upstream_model": "gpt-4o"}],
    })
    assert from_dict.source == "<dict>"
    assert (from_dict.gateway, from_dict.providers, from_dict.models) == (
        from_file.gateway, from_file.providers, from_file.models)


def test_a_plugin_that_fails_to_load_stops_the_start_up(monkeypatch: pytest.MonkeyPatch):
    from importlib.metadata import EntryPoint

    import compatgate.plugins

    broken = EntryPoint(name="broken", value="compatgate_no_such_module_xyz", group="compatgate")
    monkeypatch.setattr(compatgate.plugins, "entry_points", lambda group: [broken])
    with pytest.raises(ConfigError, match="'broken'.*failed to load.*ModuleNotFoundError"):
        Gateway({"gateway": {"api_keys": ["k"]}})
    Gateway({"gateway": {"api_keys": ["k"], "load_entrypoints": False}})  # opting out still starts


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        ("[gateway]\nlog_level = 'loud'\n", ["gateway.log_level", "critical, error, warning, info, debug"]),
        ("[gateway]\nshutdown_grace_seconds = -1\n", ["gateway.shutdown_grace_seconds", "zero or more"]),
        ("[gateway]\nshutdown_grace_seconds = 'soon'\n", ["gateway.shutdown_grace_seconds", "float"]),
        ("[gatway]\n", ["unknown key gatway (did you mean 'gateway'?)"]),
        ("[gateway]\nacess_log = 'json'\n", ["unknown key gateway.acess_log (did you mean 'access_log'?)"]),
        ("[providers.up]\ntype = 'openai'\nbase_url = 'api.openai.com/v1'\n",
         ["providers.up.base_url = 'api.openai.com/v1' must start with http:// or https://",
          "(write 'https://api.openai.com/v1')"]),
        ("[providers.up]\ntype = 'openai'\nbase_url = 'localhost:11434/v1'\n",
         ["(write 'http://localhost:11434/v1')"]),
        ("[providers.up]\ntype = 'openai'\nbase_url = 'ftp://files.example.com/v1'\n",
         ["must start with http:// or https:// (use http:// or https://)"]),
        ("[providers.up]\ntype = 'openai'\nbase_url = 'https:///v1'\n", ["providers.up.base_url", "has no host"]),
    ],
)
def test_operator_mistakes_say_how_to_fix_them(tmp_path: Path, text: str, fragments: list[str]):
    refused(write(tmp_path, text), *fragments)


def test_a_bad_base_url_never_shows_its_credentials(tmp_path: Path):
    path = write(tmp_path, "[providers.up]\ntype = 'openai'\nbase_url = 'admin:hunter2@api.example.com/v1'\n")
    message = refused(path, "must start with http:// or https://", "***@api.example.com/v1")
    assert "hunter2" not in message and "admin" not in message


def test_gateway_settings_for_serve(tmp_path: Path):
    settings = load_config(write(tmp_path, "[gateway]\nlog_level = 'DEBUG'\nshutdown_grace_seconds = 5\n")).gateway
    assert (settings.log_level, settings.shutdown_grace_seconds) == ("debug", 5.0)
    assert (load_config({}).gateway.log_level, load_config({}).gateway.shutdown_grace_seconds) == ("info", 25.0)


def test_a_provider_type_that_is_nearly_right(tmp_path: Path):
    message = refused(write(tmp_path, "[providers.up]\ntype = 'openai-compatible'\nbase_url = 'http://x'\n"),
                      "providers.up.type = 'openai-compatible'", "did you mean 'openai'?")
    assert "pip install" not in message
    other = refused(write(tmp_path, "[providers.up]\ntype = 'mistral'\nbase_url = 'http://x'\n", "b.toml"),
                    "pip install compatgate-mistral")
    assert "did you mean" not in other


def test_an_unknown_provider_key_lists_every_valid_key(tmp_path: Path):
    message = refused(write(tmp_path, "[providers.up]\ntype = 'openai'\nbase_url = 'http://x'\nread_timout = 5\n"),
                      "unknown key 'read_timout' in providers.up (did you mean 'read_timeout'?)")
    for key in ("connect_timeout", "read_timeout", "first_token_timeout", "headers", "stream_usage", "native_responses"):
        assert key in message
    model = refused(config(models=[{"name": "m", "provider": "openai", "upstream_modle": "x"}]),
                    "unknown key 'upstream_modle' in models 'm' (did you mean 'upstream_model'?)", "owned_by")
    assert model
