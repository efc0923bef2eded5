"""One plugin manager per gateway, and the typed front that calls its hooks.

pluggy calls hook implementations synchronously and would hand back un-awaited coroutines, so
`Hooks` calls the hooks that may be async itself, one by one in pluggy's order, awaiting each
result, and combines the results as the hook's spec declares with `compatgate.hookspecs.combine`
(first non-None, chained, each, or each in isolation). The lists of implementations are taken
once (`Hooks.refresh`), so a hook that no plugin implements costs a tuple check on the hot path.
"""

from __future__ import annotations

import importlib
import inspect
import logging
from collections.abc import Callable, Iterable, Mapping
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any, cast

import pluggy

from . import hookspecs
from .exceptions import ConfigError

if TYPE_CHECKING:
    from starlette.requests import Request

    from .context import Principal, RequestContext, Route
    from .gateway import Gateway
    from .hookspecs import UpstreamCall
    from .provider import Provider
    from .usage import UsageRecord

__all__ = ["DEFAULT_PLUGINS", "Hooks", "create_plugin_manager", "withdraw_hooks"]

logger = logging.getLogger("compatgate")

DEFAULT_PLUGINS = (
    "compatgate.defaults.api",
    "compatgate.defaults.responses",
    "compatgate.defaults.auth",
    "compatgate.defaults.routing",
    "compatgate.defaults.openai",
    "compatgate.defaults.demo",
    "compatgate.defaults.accesslog",
)

Impl = tuple[Callable[..., Any], tuple[str, ...]]
Body = dict[str, Any]


def create_plugin_manager(
    plugins: Iterable[object], *, load_entrypoints: bool, instantiate: Callable[[type], object]
) -> pluggy.PluginManager:
    """A new plugin manager with the default plugins, the ``compatgate`` entry points (when
    ``load_entrypoints``) and ``plugins``. A plugin given as a class is instantiated with
    ``instantiate(cls)``, so that it keeps its state per gateway."""
    pm = pluggy.PluginManager("compatgate")
    pm.add_hookspecs(hookspecs)
    for name in DEFAULT_PLUGINS:
        module = importlib.import_module(name)  # a default plugin is its module, or its `plugin` class
        pm.register(_instance(getattr(module, "plugin", module), instantiate), name=name)
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
    return getattr(function, "__module__", None) or repr(function)
