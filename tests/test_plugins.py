"""Plugin registration: readable names, one instance per plugin, and mistakes that fail at
start-up naming the plugin and the closest hook or argument."""

from __future__ import annotations

import types
from importlib.metadata import EntryPoint
from typing import Any

import pytest
from support import gateway_config

import compatgate.plugins
from compatgate import ConfigError, Gateway, RequestContext, hookimpl
from compatgate.testing import UsageLog

CONFIG = gateway_config("http://127.0.0.1:9")


class Counter:
    """Counts the requests it admits (so two registrations would count twice)."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    @hookimpl
    def admit_request(self, ctx: RequestContext) -> None:
        pass


class SpecialCounter(Counter):
    pass


class Misspelled:
    def __init__(self, gateway: Gateway) -> None:
        pass

    @hookimpl
    def admit_requests(self, ctx: RequestContext) -> None:
        pass


class WrongArgument:
    def __init__(self, gateway: Gateway) -> None:
        pass

    @hookimpl
    def transform_request(self, ctx: RequestContext, request_body: dict[str, Any]) -> None:
        pass


class Wrapper:
    def __init__(self, gateway: Gateway) -> None:
        pass

    @hookimpl(wrapper=True)
    def record_usage(self, record: Any) -> Any:
        return (yield)


class NoInit:
    @hookimpl
    def record_usage(self, record: Any) -> None:
        pass


def names(gateway: Gateway) -> list[str]:
    return sorted(name for name, _ in gateway.pm.list_name_plugin() if not name.startswith("compatgate.defaults."))


def installed(monkeypatch: pytest.MonkeyPatch, **plugins: str) -> None:
    """Pretend that entry points ``name = "module:attr"`` are installed (and only those)."""
    points = [EntryPoint(name, value, "compatgate") for name, value in plugins.items()]
    monkeypatch.setattr(compatgate.plugins, "entry_points", lambda group: points if group == "compatgate" else [])


def test_plugins_are_registered_under_readable_names(monkeypatch):
    installed(monkeypatch, counter=f"{__name__}:Counter")
    module = types.ModuleType("audit_hooks")
    module.record_usage = hookimpl(lambda record: None)  # type: ignore[attr-defined]
    gateway = Gateway(CONFIG, plugins=[UsageLog, module])
    assert names(gateway) == ["audit_hooks", "compatgate.testing:UsageLog", "counter"]


@pytest.mark.parametrize("given", [Counter, SpecialCounter, "instance"])
def test_a_plugin_given_again_replaces_the_installed_one(monkeypatch, given):
    installed(monkeypatch, counter=f"{__name__}:Counter")
    plugin = Counter(Gateway(CONFIG)) if given == "instance" else given
    gateway = Gateway(CONFIG, plugins=[plugin, plugin])
    (counter,) = [p for p in gateway.pm.get_plugins() if isinstance(p, Counter)]
    assert gateway.pm.get_name(counter) == "counter"
    assert type(counter) is (Counter if given == "instance" else given)
    assert len(gateway.pm.hook.admit_request.get_hookimpls()) == 1


def test_an_unrelated_plugin_keeps_the_installed_one(monkeypatch):
    installed(monkeypatch, counter=f"{__name__}:Counter")
    gateway = Gateway(CONFIG, plugins=[UsageLog])
    assert "counter" in names(gateway)
    assert Gateway({**CONFIG, "gateway": {**CONFIG["gateway"], "load_entrypoints": False}}).pm.get_plugin("counter") is None


@pytest.mark.parametrize(("plugin", "message"), [
    (Misspelled, ("plugin tests.test_plugins:Misspelled: 'admit_requests' is not a compatgate hook "
                  "(did you mean 'admit_request'?), so it would never run")),
    (WrongArgument, ("plugin tests.test_plugins:WrongArgument: its transform_request hook takes "
                     "'request_body' (did you mean 'body'?), which transform_request does not pass; "
                     "it passes ctx, body")),
    (Wrapper, ("plugin tests.test_plugins:Wrapper: its record_usage hook is a pluggy wrapper, which "
               "the gateway does not run on record_usage")),
    (NoInit, ("plugin tests.test_plugins:NoInit: a class plugin is instantiated once per gateway as "
              "NoInit(gateway); give it an __init__(self, gateway)")),
])
def test_mistakes_fail_at_start_up_naming_the_plugin(plugin, message):
    with pytest.raises(ConfigError) as raised:
        Gateway(CONFIG, plugins=[plugin])
    assert str(raised.value).replace(f"{__name__}:", "tests.test_plugins:").startswith(message), raised.value


def test_a_broken_installed_plugin_is_named(monkeypatch):
    installed(monkeypatch, broken="no_such_module_here:Plugin")
    with pytest.raises(ConfigError, match=r"the installed plugin 'broken' \(no_such_module_here:Plugin\) failed to load"):
        Gateway(CONFIG)


def test_plugin_tables_looked_up_are_remembered(monkeypatch):
    class Reader:
        def __init__(self, gateway: Gateway) -> None:
            self.table = gateway.config.plugin("reader")

        @hookimpl
        def record_usage(self, record: Any) -> None:
            pass

    config = {**CONFIG, "plugins": {"reader": {"a": 1}, "raeder": {"b": 2}}}
    gateway = Gateway(config, plugins=[Reader])
    assert gateway.config.plugins.unread() == ["raeder"]
    assert "reader" in gateway.config.plugins.looked_up
