"""One plugin manager per gateway, and the typed front that calls its hooks.

pluggy calls hook implementations synchronously and would hand back un-awaited coroutines, so
`Hooks` calls the hooks that may be async itself, one by one in pluggy's order, awaiting each
result, and combines the results as the hook's spec declares with `compatgate.hookspecs.combine`
(first non-None, chained, each, or each in isolation). The lists of implementations are taken
once (`Hooks.refresh`), so a hook that no plugin implements costs a tuple check on the hot path.

`create_plugin_manager` registers every plugin under a readable name, once, and turns
pluggy's validation into `ConfigError` messages that name the plugin and the closest hook;
`import_plugin` loads ``compatgate serve --plugin module:Class``.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import logging
import os
import sys
from collections.abc import Callable, Iterable, Mapping
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, cast

import pluggy

from . import hookspecs
from .exceptions import ConfigError
from .hints import did_you_mean

if TYPE_CHECKING:
    from starlette.requests import Request

    from .context import Principal, RequestContext, Route
    from .gateway import Gateway
    from .hookspecs import UpstreamCall
    from .provider import Provider
    from .usage import UsageRecord

__all__ = ["DEFAULT_PLUGINS", "Hooks", "create_plugin_manager", "import_plugin", "plugin_name", "withdraw_hooks"]

logger = logging.getLogger("compatgate")

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

Impl = tuple[Callable[..., Any], tuple[str, ...]]
Body = dict[str, Any]


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


class Hooks:
    """The typed front of a plugin manager's hooks: ``await hooks.route_model(...)``.

    Hooks that may be async are called one implementation at a time, each result awaited, and
    combined as their spec's `combine` marker says; the implementations are taken once
    (`refresh`), so a hook no plugin implements costs a tuple check on the hot path.
    Synchronous hooks go to pluggy (``pm.hook``)."""

    def __init__(self, pm: pluggy.PluginManager) -> None:
        self.pm = pm
        self._impls: dict[str, tuple[Impl, ...]] = {}
        self._combine: dict[str, tuple[str, str | None]] = {}
        for name in dir(hookspecs):
            mark = getattr(getattr(hookspecs, name), "compatgate_combine", None)
            if mark is not None:
                self._combine[name] = mark
        self.refresh()

    def refresh(self) -> None:
        """Take the current implementations of every hook (call after registering plugins)."""
        self._impls = {}
        for name in self._combine:
            caller = getattr(self.pm.hook, name)
            impls = [i for i in reversed(caller.get_hookimpls()) if not (i.hookwrapper or i.wrapper)]
            self._impls[name] = tuple((i.function, tuple(i.argnames)) for i in impls)
        # Applied innermost first: the implementation that runs first (tryfirst, then the most
        # recently registered) wraps all the others, so it sees the call first.
        wrappers = self.pm.hook.wrap_upstream.get_hookimpls()
        self._wrappers: tuple[Impl, ...] = tuple((i.function, tuple(i.argnames)) for i in wrappers)

    def implemented(self, name: str) -> bool:
        return bool(self._wrappers if name == "wrap_upstream" else self._impls[name])

    async def call(self, name: str, **kwargs: Any) -> Any:
        """Call the hook ``name`` and combine its results as its spec declares."""
        how, value = self._combine[name]
        if how == "first":
            return await self._first(name, kwargs)
        if how == "chain":
            assert value is not None
            return await self._chain(name, value, kwargs)
        return await self._each(name, kwargs, isolate=how == "isolated")

    # -- the typed front ----------------------------------------------------------------------

    async def startup(self, *, gateway: Gateway) -> None:
        await self.call("startup", gateway=gateway)

    async def shutdown(self, *, gateway: Gateway) -> None:
        await self.call("shutdown", gateway=gateway)

    async def authenticate(self, *, gateway: Gateway, request: Request, api_key: str | None) -> Principal | None:
        return cast("Principal | None", await self.call("authenticate", gateway=gateway, request=request,
                                                          api_key=api_key))

    async def list_models(self, *, gateway: Gateway, principal: Principal) -> list[Iterable[Mapping[str, Any]] | None]:
        return cast("list[Iterable[Mapping[str, Any]] | None]",
                    await self.call("list_models", gateway=gateway, principal=principal))

    async def route_model(self, *, gateway: Gateway, ctx: RequestContext, model: str) -> Route | None:
        return cast("Route | None", await self.call("route_model", gateway=gateway, ctx=ctx, model=model))

    async def transform_request(self, *, ctx: RequestContext, body: Body) -> Body:
        return cast(Body, await self.call("transform_request", ctx=ctx, body=body))

    async def admit_request(self, *, ctx: RequestContext) -> None:
        await self.call("admit_request", ctx=ctx)

    async def transform_response(self, *, ctx: RequestContext, response: Body) -> Body:
        return cast(Body, await self.call("transform_response", ctx=ctx, response=response))

    async def transform_stream_chunk(self, *, ctx: RequestContext, chunk: Body) -> Body:
        return cast(Body, await self.call("transform_stream_chunk", ctx=ctx, chunk=chunk))

    async def response_headers(self, *, ctx: RequestContext) -> list[Mapping[str, str] | None]:
        return cast("list[Mapping[str, str] | None]", await self.call("response_headers", ctx=ctx))

    async def upstream_headers(self, *, ctx: RequestContext, provider: Provider) -> list[Mapping[str, str] | None]:
        return cast("list[Mapping[str, str] | None]", await self.call("upstream_headers", ctx=ctx, provider=provider))

    async def record_usage(self, *, ctx: RequestContext, record: UsageRecord) -> None:
        await self.call("record_usage", ctx=ctx, record=record)

    def wrap_upstream(self, *, ctx: RequestContext, call: UpstreamCall) -> UpstreamCall:
        """The upstream call wrapped by every `wrap_upstream` implementation (synchronous chain)."""
        for function, argnames in self._wrappers:
            wrapped = function(*[ctx if arg == "ctx" else call for arg in argnames])
            if wrapped is not None:
                call = wrapped
        return call

    # -- dispatch -----------------------------------------------------------------------------

    async def _first(self, name: str, kwargs: dict[str, Any]) -> Any:
        """The first non-None result; later implementations are not called."""
        for function, argnames in self._impls[name]:
            result = function(*[kwargs[arg] for arg in argnames])
            if inspect.isawaitable(result):
                result = await result
            if result is not None:
                return result
        return None

    async def _chain(self, name: str, value_arg: str, kwargs: dict[str, Any]) -> Any:
        """Pass the value through every implementation; a None result keeps the value."""
        value = kwargs[value_arg]
        for function, argnames in self._impls[name]:
            kwargs[value_arg] = value
            result = function(*[kwargs[arg] for arg in argnames])
            if inspect.isawaitable(result):
                result = await result
            if result is not None:
                value = result
        return value

    async def _each(self, name: str, kwargs: dict[str, Any], *, isolate: bool) -> list[Any]:
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
    plugin = getattr(function, "__self__", None)
    if plugin is not None and not inspect.ismodule(plugin):
        return plugin_name(plugin)
    return getattr(function, "__module__", None) or repr(function)
