"""Finding, loading and checking the plugins of one gateway: its own plugin manager.

`create_plugin_manager` registers the default plugins, the installed ones (the ``compatgate``
entry-point group) and the given ones, each under a readable name and once, and turns pluggy's
validation into `ConfigError` messages that name the plugin and the closest hook;
`import_plugin` loads ``compatgate serve --plugin module:Class``; `withdraw_hooks` lets an
unconfigured plugin cost nothing per request.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import sys
from collections.abc import Callable, Iterable
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from types import ModuleType

import pluggy

from . import hookspecs
from .exceptions import ConfigError
from .hints import did_you_mean

__all__ = ["DEFAULT_PLUGINS", "create_plugin_manager", "import_plugin", "plugin_name", "withdraw_hooks"]

DEFAULT_PLUGINS = (
    "compatgate.defaults.api",
    "compatgate.defaults.responses",
    "compatgate.defaults.auth",
    "compatgate.defaults.routing",
    "compatgate.defaults.openai",
    "compatgate.defaults.demo",
    "compatgate.defaults.accesslog",
    "compatgate.defaults.ready",
)

# The hooks pluggy calls itself; on every other one the gateway calls the implementations
# (`Hooks`), so pluggy's hookwrapper/wrapper implementations would never run there.
_PLUGGY_CALLED = frozenset({"register_providers", "register_operations", "register_routes", "register_apps",
                            "register_commands", "configure"})



def create_plugin_manager(
    plugins: Iterable[object], *, load_entrypoints: bool, instantiate: Callable[[type], object]
) -> pluggy.PluginManager:
    """A new plugin manager with the default plugins, the ``compatgate`` entry points (when
    ``load_entrypoints``) and ``plugins``. A plugin given as a class is instantiated with
    ``instantiate(cls)``, so that it keeps its state per gateway.

    Each plugin is registered under a readable name: a default plugin under its module's, an
    installed one under its entry point's, one of ``plugins`` as ``module:Class`` (a module as
    ``module``). A plugin of ``plugins`` that is an installed entry point's plugin, a subclass
    or an instance of it, replaces it (under the entry point's name), so that nothing runs
    twice; a plugin given twice is registered once. A hook implementation whose name is no
    hook, whose arguments the hook does not pass, or that is a wrapper on a hook the gateway
    calls itself, is a `ConfigError` naming the plugin (and the closest hook or argument)."""
    pm = pluggy.PluginManager("compatgate")
    pm.add_hookspecs(hookspecs)
    for name in DEFAULT_PLUGINS:
        module = importlib.import_module(name)  # a default plugin is its module, or its `plugin` class
        _register(pm, _instance(getattr(module, "plugin", module), instantiate, name), name)
    given = _distinct(plugins)
    replacing: dict[int, str] = {}  # id of a given plugin -> the entry point it replaces
    if load_entrypoints:
        for entry_point in entry_points(group="compatgate"):
            if pm.has_plugin(entry_point.name) or entry_point.name in replacing.values():
                continue
            installed = _load(entry_point)
            replacements = [plugin for plugin in given if _replaces(plugin, installed)]
            for plugin in replacements:
                replacing.setdefault(id(plugin), entry_point.name)
            if not replacements:
                _register(pm, _instance(installed, instantiate, entry_point.name), entry_point.name)
    for plugin in given:
        if pm.is_registered(plugin):  # a default plugin given again
            continue
        name = _free_name(pm, replacing.get(id(plugin)) or plugin_name(plugin))
        _register(pm, _instance(plugin, instantiate, name), name)
    _check_hooks(pm)
    return pm


def plugin_name(plugin: object) -> str:
    """How a plugin given directly is named: ``module:Class`` (for a class or an instance of
    it), or the module's name for a module plugin."""
    if inspect.ismodule(plugin):
        return plugin.__name__
    cls = plugin if isinstance(plugin, type) else type(plugin)
    return f"{cls.__module__}:{cls.__qualname__}"


def import_plugin(spec: str) -> object:
    """The plugin that ``spec`` names, as ``compatgate serve --plugin`` takes it:
    ``module:Class`` (or any ``module:attribute``), ``module`` for a module plugin, or
    ``path/to/file.py[:Class]``. The current directory is searched first, so a plugin in a
    local file runs without packaging. Every failure is a `ConfigError` saying what to fix."""
    target, _, attribute = spec.partition(":")
    if not target:
        raise ConfigError(f"--plugin {spec!r}: expected module:Class, a module, or file.py:Class")
    if target.endswith(".py") or "/" in target or os.sep in target:
        module = _import_file(spec, Path(target))
    else:
        module = _import_module(spec, target)
    plugin: object = module
    for part in attribute.split(".") if attribute else ():
        if not hasattr(plugin, part):
            names = [n for n in dir(plugin) if not n.startswith("_")]
            raise ConfigError(
                f"--plugin {spec}: {getattr(plugin, '__name__', target)} has no attribute "
                f"{part!r}{did_you_mean(part, names)}"
            )
        plugin = getattr(plugin, part)
    if not any(_marked(plugin, name) for name in dir(plugin)):
        raise ConfigError(
            f"--plugin {spec}: it implements no hook (no function marked @compatgate.hookimpl); "
            "give the class or module that holds the hook implementations"
        )
    return plugin


def withdraw_hooks(plugin: object, *names: str) -> None:
    """Take the hook methods ``names`` away from the plugin instance ``plugin`` before it is
    registered, e.g. in ``__init__`` when its configuration table is absent.

    pluggy registers only the hook functions it finds on an instance, so an inert plugin then
    costs nothing per request (an implemented ``admit_request`` that returns at once would still
    be called for every request). Keep the methods' own early returns for an instance that goes
    inert later."""
    for name in names:
        setattr(plugin, name, None)


def _instance(plugin: object, instantiate: Callable[[type], object], name: str) -> object:
    if not isinstance(plugin, type):
        return plugin
    if plugin.__init__ is object.__init__:  # type: ignore[misc]
        raise ConfigError(
            f"plugin {name}: a class plugin is instantiated once per gateway as "
            f"{plugin.__qualname__}(gateway); give it an __init__(self, gateway), or pass an instance"
        )
    return instantiate(plugin)


def _distinct(plugins: Iterable[object]) -> list[object]:
    seen: set[int] = set()
    distinct = []
    for plugin in plugins:
        if id(plugin) not in seen:
            seen.add(id(plugin))
            distinct.append(plugin)
    return distinct


def _replaces(given: object, installed: object) -> bool:
    if given is installed:
        return True
    if isinstance(installed, type):
        return isinstance(given, installed) or (isinstance(given, type) and issubclass(given, installed))
    return False


def _free_name(pm: pluggy.PluginManager, name: str) -> str:
    candidate, number = name, 1
    while pm.has_plugin(candidate):
        number += 1
        candidate = f"{name}#{number}"
    return candidate


def _load(entry_point: EntryPoint) -> object:
    try:
        return entry_point.load()
    except Exception as exc:  # a broken install must not start a gateway without it
        raise ConfigError(
            f"the installed plugin {entry_point.name!r} ({entry_point.value}) failed to "
            f"load: {type(exc).__name__}: {exc}"
        ) from exc


def _register(pm: pluggy.PluginManager, plugin: object, name: str) -> None:
    try:
        pm.register(plugin, name=name)
    except pluggy.PluginValidationError as exc:
        raise ConfigError(_invalid(pm, plugin, name, exc)) from None


def _invalid(pm: pluggy.PluginManager, plugin: object, name: str, exc: Exception) -> str:
    """What is wrong with ``plugin``'s hook implementations, for a person."""
    for attribute in dir(plugin):
        opts = _marked(plugin, attribute) and pm.parse_hookimpl_opts(plugin, attribute)
        caller = getattr(pm.hook, attribute, None) if opts else None
        if not opts or caller is None or caller.spec is None:
            continue
        impl = pluggy.HookImpl(plugin, name, getattr(plugin, attribute), opts)
        passed = [*caller.spec.argnames, *caller.spec.kwargnames]
        unknown = [arg for arg in impl.argnames if arg not in passed]
        if unknown:
            asked = ", ".join(f"{arg!r}{did_you_mean(arg, passed)}" for arg in unknown)
            return (
                f"plugin {name}: its {attribute} hook takes {asked}, which {attribute} does not "
                f"pass; it passes {', '.join(passed)} (an implementation takes any subset of them)"
            )
    return f"plugin {name}: {' '.join(str(exc).split())}"


def _check_hooks(pm: pluggy.PluginManager) -> None:
    hooks = [name for name in dir(hookspecs) if isinstance(getattr(pm.hook, name, None), pluggy.HookCaller)]
    for name, caller in list(vars(pm.hook).items()):
        if name.startswith("_") or not isinstance(caller, pluggy.HookCaller):
            continue
        for impl in caller.get_hookimpls():
            if not caller.has_spec() and not impl.optionalhook:
                raise ConfigError(
                    f"plugin {impl.plugin_name}: {name!r} is not a compatgate hook"
                    f"{did_you_mean(name, hooks)}, so it would never run (every hook: docs/hooks.md)"
                )
            if caller.has_spec() and name not in _PLUGGY_CALLED and (impl.hookwrapper or impl.wrapper):
                raise ConfigError(
                    f"plugin {impl.plugin_name}: its {name} hook is a pluggy wrapper, which the "
                    f"gateway does not run on {name}; write a plain implementation "
                    "(tryfirst=True to run before the others)"
                )


def _marked(plugin: object, attribute: str) -> bool:
    try:
        return getattr(getattr(plugin, attribute, None), "compatgate_impl", None) is not None
    except Exception:  # a property that fails is no hook
        return False


def _import_module(spec: str, name: str) -> ModuleType:
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and (name == exc.name or name.startswith(exc.name + ".")):
            raise ConfigError(
                f"--plugin {spec}: no module named {exc.name!r} in the current directory ({cwd}) "
                "nor among the installed packages"
            ) from None
        raise ConfigError(f"--plugin {spec}: importing {name} failed: {type(exc).__name__}: {exc}") from exc
    except Exception as exc:
        raise ConfigError(f"--plugin {spec}: importing {name} failed: {type(exc).__name__}: {exc}") from exc


def _import_file(spec: str, path: Path) -> ModuleType:
    path = path.resolve()
    if not path.is_file():
        raise ConfigError(f"--plugin {spec}: no such file: {path}")
    name = path.stem
    loaded = sys.modules.get(name)
    if loaded is not None and getattr(loaded, "__file__", None) == str(path):
        return loaded
    module_spec = importlib.util.spec_from_file_location(name, path)
    if module_spec is None or module_spec.loader is None:
        raise ConfigError(f"--plugin {spec}: {path} cannot be imported as a Python module")
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module
    try:
        module_spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]
        raise ConfigError(f"--plugin {spec}: importing {path} failed: {type(exc).__name__}: {exc}") from exc
    return module
