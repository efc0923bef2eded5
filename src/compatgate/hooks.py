"""One plugin manager per gateway, and the dispatch of hooks that may be async.

pluggy calls hook implementations synchronously and would hand back un-awaited coroutines, so
`Hooks` calls them itself, one by one in pluggy's order, awaiting each result, and combines the
results as the hook's documentation says (first non-None, chained, or all). The lists of
implementations are taken once (`Hooks.refresh`), so a hook that no plugin implements costs a
tuple check on the hot path.
"""

from __future__ import annotations

import importlib
import inspect
import logging
from collections.abc import Callable, Iterable
from importlib.metadata import entry_points
from typing import Any

import pluggy

from . import hookspecs
from .exceptions import ConfigError

__all__ = ["DEFAULT_PLUGINS", "Hooks", "create_plugin_manager", "withdraw_hooks"]

logger = logging.getLogger("compatgate")

DEFAULT_PLUGINS = (
    "compatgate.defaults.auth",
    "compatgate.defaults.routing",
    "compatgate.defaults.openai",
    "compatgate.defaults.demo",
    "compatgate.defaults.accesslog",
)

Impl = tuple[Callable[..., Any], tuple[str, ...]]


def create_plugin_manager(
    plugins: Iterable[object], *, load_entrypoints: bool, instantiate: Callable[[type], object]
) -> pluggy.PluginManager:
    """A new plugin manager with the default plugins, the ``compatgate`` entry points (when
    ``load_entrypoints``) and ``plugins``. A plugin given as a class is instantiated with
    ``instantiate(cls)``, so that it keeps its state per gateway."""
    pm = pluggy.PluginManager("compatgate")
    pm.add_hookspecs(hookspecs)
    for name in DEFAULT_PLUGINS:
        pm.register(importlib.import_module(name), name=name)
    if load_entrypoints:
        for entry_point in entry_points(group="compatgate"):
            if pm.get_plugin(entry_point.name) is None:
                try:
                    plugin = entry_point.load()
                except Exception as exc:  # a broken install must not start a gateway without it
                    raise ConfigError(
                        f"the installed plugin {entry_point.name!r} ({entry_point.value}) failed to "
                        f"load: {type(exc).__name__}: {exc}"
                    ) from exc
                pm.register(_instance(plugin, instantiate), name=entry_point.name)
    for plugin in plugins:
        pm.register(_instance(plugin, instantiate))
    return pm


def withdraw_hooks(plugin: object, *names: str) -> None:
    """Take the hook methods ``names`` away from the plugin instance ``plugin`` before it is
    registered, e.g. in ``__init__`` when its configuration table is absent.

    pluggy registers only the hook functions it finds on an instance, so an inert plugin then
    costs nothing per request (an implemented ``admit_request`` that returns at once would still
    be called for every request). Keep the methods' own early returns for an instance that goes
    inert later."""
    for name in names:
        setattr(plugin, name, None)


def _instance(plugin: object, instantiate: Callable[[type], object]) -> object:
    return instantiate(plugin) if isinstance(plugin, type) else plugin


class Hooks:
    """Calls a plugin manager's hooks, awaiting what implementations return."""

    def __init__(self, pm: pluggy.PluginManager) -> None:
        self.pm = pm
        self._impls: dict[str, tuple[Impl, ...]] = {}
        self.refresh()

    def refresh(self) -> None:
        """Take the current implementations of every hook (call after registering plugins)."""
        self._impls = {}
        for name in dir(hookspecs):
            caller = getattr(self.pm.hook, name, None)
            if isinstance(caller, pluggy.HookCaller):
                impls = [i for i in reversed(caller.get_hookimpls()) if not (i.hookwrapper or i.wrapper)]
                self._impls[name] = tuple((i.function, tuple(i.argnames)) for i in impls)

    def implemented(self, name: str) -> bool:
        return bool(self._impls[name])

    async def first(self, name: str, **kwargs: Any) -> Any:
        """The first non-None result; later implementations are not called."""
        for function, argnames in self._impls[name]:
            result = function(*[kwargs[arg] for arg in argnames])
            if inspect.isawaitable(result):
                result = await result
            if result is not None:
                return result
        return None

    async def chain(self, name: str, value_arg: str, value: Any, **kwargs: Any) -> Any:
        """Pass ``value`` through every implementation; a None result keeps the value."""
        for function, argnames in self._impls[name]:
            kwargs[value_arg] = value
            result = function(*[kwargs[arg] for arg in argnames])
            if inspect.isawaitable(result):
                result = await result
            if result is not None:
                value = result
        return value

    async def each(self, name: str, *, isolate: bool = False, **kwargs: Any) -> list[Any]:
        """Every implementation's result, in order. With ``isolate`` an exception is logged and
        the other implementations still run; otherwise it propagates at once."""
        results = []
        for function, argnames in self._impls[name]:
            try:
                result = function(*[kwargs[arg] for arg in argnames])
                if inspect.isawaitable(result):
                    result = await result
            except Exception:
                if not isolate:
                    raise
                logger.exception("compatgate: %s hook of %s failed", name, _owner(function))
                continue
            results.append(result)
        return results


def _owner(function: Callable[..., Any]) -> str:
    return getattr(function, "__module__", None) or repr(function)
