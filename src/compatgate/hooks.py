"""The typed front that calls a gateway's hooks.

pluggy calls hook implementations synchronously and would hand back un-awaited coroutines, so
`Hooks` calls the hooks that may be async itself, one by one in pluggy's order, awaiting each
result, and combines the results as the hook's spec declares with `compatgate.hookspecs.combine`
(first non-None, chained, each, or each in isolation). The lists of implementations are taken
once (`Hooks.refresh`), so a hook that no plugin implements costs a tuple check on the hot path.
The plugin manager itself comes from `compatgate.plugins`.
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, cast

import pluggy

from . import hookspecs
from .plugins import create_plugin_manager, plugin_name, withdraw_hooks

if TYPE_CHECKING:
    from starlette.requests import Request

    from .context import Principal, RequestContext, Route
    from .gateway import Gateway
    from .hookspecs import UpstreamCall
    from .provider import Provider
    from .usage import Attempt, UsageRecord

__all__ = ["Hooks", "create_plugin_manager", "withdraw_hooks"]

logger = logging.getLogger("compatgate")

Impl = tuple[Callable[..., Any], tuple[str, ...]]
Body = dict[str, Any]


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
        self._dispatch = {name: self._dispatcher(name) for name in self._combine}
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
        return await self._call(name, kwargs)

    def _call(self, name: str, kwargs: dict[str, Any]) -> Awaitable[Any]:
        return self._dispatch[name](name, kwargs)

    def _dispatcher(self, name: str) -> Callable[[str, dict[str, Any]], Awaitable[Any]]:
        """How the hook ``name`` is called, from its spec's `combine` marker (read once)."""
        how, value = self._combine[name]
        if how == "first":
            return self._first
        if how == "chain":
            assert value is not None
            return functools.partial(self._chain_on, value)
        return self._each if how == "each" else self._each_isolated

    # -- the typed front ----------------------------------------------------------------------

    async def startup(self, *, gateway: Gateway) -> None:
        await self._call("startup", {"gateway": gateway})

    async def shutdown(self, *, gateway: Gateway) -> None:
        await self._call("shutdown", {"gateway": gateway})

    async def authenticate(self, *, gateway: Gateway, request: Request, api_key: str | None) -> Principal | None:
        return cast("Principal | None", await self._call("authenticate", {"gateway": gateway, "request": request,
                                                                      "api_key": api_key}))

    async def list_models(self, *, gateway: Gateway, principal: Principal) -> list[Iterable[Mapping[str, Any]] | None]:
        return cast("list[Iterable[Mapping[str, Any]] | None]",
                    await self._call("list_models", {"gateway": gateway, "principal": principal}))

    async def route_model(self, *, gateway: Gateway, ctx: RequestContext, model: str) -> Route | None:
        return cast("Route | None", await self._call("route_model", {"gateway": gateway, "ctx": ctx, "model": model}))

    async def transform_request(self, *, ctx: RequestContext, body: Body) -> Body:
        return cast(Body, await self._call("transform_request", {"ctx": ctx, "body": body}))

    async def admit_request(self, *, ctx: RequestContext) -> None:
        await self._call("admit_request", {"ctx": ctx})

    async def transform_response(self, *, ctx: RequestContext, response: Body) -> Body:
        return cast(Body, await self._call("transform_response", {"ctx": ctx, "response": response}))

    async def transform_stream_chunk(self, *, ctx: RequestContext, chunk: Body) -> Body:
        return cast(Body, await self._call("transform_stream_chunk", {"ctx": ctx, "chunk": chunk}))

    async def response_headers(self, *, ctx: RequestContext) -> list[Mapping[str, str] | None]:
        return cast("list[Mapping[str, str] | None]", await self._call("response_headers", {"ctx": ctx}))

    async def upstream_attempt(self, *, ctx: RequestContext, provider: Provider) -> None:
        await self.call("upstream_attempt", ctx=ctx, provider=provider)

    async def upstream_attempt_done(self, *, ctx: RequestContext, provider: Provider, attempt: Attempt) -> None:
        await self.call("upstream_attempt_done", ctx=ctx, provider=provider, attempt=attempt)

    async def upstream_headers(self, *, ctx: RequestContext, provider: Provider) -> list[Mapping[str, str] | None]:
        return cast("list[Mapping[str, str] | None]", await self._call("upstream_headers", {"ctx": ctx, "provider": provider}))

    async def record_usage(self, *, ctx: RequestContext, record: UsageRecord) -> None:
        await self._call("record_usage", {"ctx": ctx, "record": record})

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

    def _chain_on(self, value_arg: str, name: str, kwargs: dict[str, Any]) -> Awaitable[Any]:
        return self._chain(name, value_arg, kwargs)

    def _each_isolated(self, name: str, kwargs: dict[str, Any]) -> Awaitable[list[Any]]:
        return self._each(name, kwargs, isolate=True)

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

    async def _each(self, name: str, kwargs: dict[str, Any], *, isolate: bool = False) -> list[Any]:
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
