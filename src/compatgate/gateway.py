"""`Gateway`: the ASGI app, mountable anywhere (``app.mount("/v1", Gateway("compatgate.toml"))``).

Each instance owns its configuration, plugin manager, providers and their connection pools;
two gateways in one process share nothing. The configuration and the plugins are checked at
construction, so a mistake fails at start-up. Connections open lazily on the first request
(a Starlette ``Mount`` does not run a sub-app's lifespan) or in `Gateway.lifespan`, which a
host app composes into its own; shutting that down closes every upstream connection.
"""

from __future__ import annotations

import asyncio
import re
import logging
import os
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from typing import Any

from starlette.requests import Request
from starlette.routing import BaseRoute, Route, Router, WebSocketRoute
from starlette.types import Receive, Scope, Send

from .config import Config, ModelConfig, load_config
from .context import Principal, RequestContext
from .endpoints import OperationEndpoint
from .exceptions import AuthenticationError, ConfigError, GatewayError
from .health import health_routes
from .hints import closest
from .hooks import Hooks
from .plugins import create_plugin_manager
from .http import Scrubber
from .local import ModelsEndpoint, not_found
from .operations import OPENAI, Dialect, Operation
from .provider import HTTPProvider, Provider
from .heartbeat import Heartbeat
from .realtime import RealtimeEndpoint
from .signing import Signer

__all__ = ["Gateway"]

logger = logging.getLogger("compatgate")

class Gateway:
    """An OpenAI-compatible gateway as an ASGI app.

    ``config`` is a path to a TOML file or the equivalent dict; ``plugins`` are registered after
    the default and entry-point plugins (so they run first); a plugin given as a class is
    instantiated as ``cls(gateway)``.
    """

    def __init__(
        self,
        config: str | os.PathLike[str] | Mapping[str, Any] | Config,
        *,
        plugins: Iterable[object] = (),
    ) -> None:
        self.config = load_config(config)
        self.state: dict[str, Any] = {}
        self.pm = create_plugin_manager(
            plugins,
            load_entrypoints=self.config.gateway.load_entrypoints,
            instantiate=lambda cls: cls(self),
        )
        self.hooks = Hooks(self.pm)
        self.provider_types = self._provider_types()
        self.providers: dict[str, Provider] = {
            name: self._provider(name) for name in self.config.providers
        }
        self.models: dict[str, ModelConfig] = {}
        for model in self.config.models:
            try:
                self.providers[model.provider].check_model(model)
            except ConfigError as exc:
                raise ConfigError(f"{self.config.source}: {exc}") from None
            self.models[model.name] = model
        self.operations: dict[str, Operation] = self._operations()
        credentials = self._secrets()
        self.scrubber = Scrubber(credentials)
        self.signer = Signer.for_gateway(self.config.gateway.secret, credentials)
        interval = self.config.gateway.keepalive_seconds
        self.heartbeat: Heartbeat | None = Heartbeat(interval) if interval > 0 else None
        routes = self._routes()
        self.router = Router(routes=routes, default=self._not_found)
        # The paths of operations in other protocols, as loose patterns: a URL of that shape that
        # no route matched (a model name Starlette's path parameters refuse, e.g. with a line
        # feed) is answered in that protocol's format.
        self._families = [
            (re.compile("^" + re.sub(r"\\{[^}]*\\}", ".*", re.escape(op.path)) + "$", re.DOTALL), op.dialect)
            for op in self.operations.values() if op.dialect is not OPENAI and "{" in op.path
        ]
        # The operations with a plain path, for a dispatch that skips route matching on the hot
        # path (unless a plugin route claims the same path: plugin routes come first).
        self._endpoints = {
            route.path: route.app
            for route in routes
            if isinstance(route, Route) and isinstance(route.app, OperationEndpoint) and "{" not in route.path
            and not any(getattr(r, "path", None) == route.path for r in routes[: routes.index(route)])
        }
        self._started = False
        self._lock = asyncio.Lock()
        self.pm.hook.configure(gateway=self)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if not self._started:
            await self.startup()
        path = scope["path"]
        root = scope.get("root_path", "")
        endpoint = self._endpoints.get(path[len(root):] if root and path.startswith(root) else path)
        if endpoint is not None and scope["type"] == "http":
            await endpoint(scope, receive, send)
        else:
            await self.router(scope, receive, send)

    # -- life cycle -------------------------------------------------------------------------

    async def startup(self) -> None:
        """Open provider pools and run the `startup` hooks (once; later calls do nothing)."""
        async with self._lock:
            if self._started:
                return
            self.hooks.refresh()
            for provider in self.providers.values():
                await provider.start()
            await self.hooks.startup(gateway=self)
            self._started = True

    async def aclose(self) -> None:
        """Run the `shutdown` hooks and close every upstream connection."""
        async with self._lock:
            if not self._started:
                return
            self._started = False
            if self.heartbeat is not None:
                await self.heartbeat.aclose()
            await self.hooks.shutdown(gateway=self)
            for provider in self.providers.values():
                try:
                    await provider.aclose()
                except Exception:
                    logger.exception("compatgate: closing provider %s failed", provider.name)

    @property
    def started(self) -> bool:
        """True from the end of `startup` until `aclose` begins (what ``/health/ready`` reports)."""
        return self._started

    @asynccontextmanager
    async def lifespan(self, app: object = None) -> AsyncIterator[None]:
        """Start now and close on exit: ``Starlette(lifespan=gateway.lifespan)``, or
        ``async with gateway.lifespan(): ...`` inside a host app's own lifespan."""
        await self.startup()
        try:
            yield
        finally:
            await self.aclose()

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except Exception as exc:
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _not_found(self, scope: Scope, receive: Receive, send: Send) -> None:
        path, root = scope["path"], scope.get("root_path", "")
        relative = path[len(root):] if root and path.startswith(root) else path
        dialect = next((dialect for pattern, dialect in self._families if pattern.match(relative)), OPENAI)
        await not_found(scope, receive, send, dialect)

    # -- what endpoints and plugins use -----------------------------------------------------

    async def authenticate(
        self, request: Request, dialect: Dialect = OPENAI, api_key: str | None = None
    ) -> Principal:
        """The caller, from the `authenticate` hooks given the key ``dialect`` finds in
        ``request`` (or ``api_key``); 401 when no plugin accepts it."""
        api_key = api_key or dialect.api_key(request)
        principal = await self.hooks.authenticate(gateway=self, request=request, api_key=api_key)
        if principal is not None:
            return principal
        if api_key is None:
            if request.headers.get("authorization", "").strip():  # never echo what it holds
                raise AuthenticationError(
                    "No API key found: the Authorization header must read 'Bearer YOUR_KEY', and "
                    "this one has no 'Bearer ' scheme (or no key after it). You can also send the "
                    "key in an x-api-key header."
                )
            raise AuthenticationError(
                "You didn't provide an API key. Send it in an Authorization header "
                "(Authorization: Bearer YOUR_KEY) or an x-api-key header."
            )
        raise AuthenticationError("Incorrect API key provided.")

    async def list_models(self, principal: Principal) -> list[dict[str, Any]]:
        """The models ``principal`` may use, from every `list_models` hook."""
        seen: dict[str, dict[str, Any]] = {}
        for entries in await self.hooks.list_models(gateway=self, principal=principal):
            for entry in entries or ():
                model_id = entry.get("id")
                if isinstance(model_id, str) and model_id not in seen and principal.allows(model_id):
                    seen[model_id] = {"object": "model", "created": 0, "owned_by": "system", **entry}
        return list(seen.values())

    async def headers(self, ctx: RequestContext) -> list[tuple[bytes, bytes]]:
        """Response headers for ``ctx``: ``x-request-id``, the `response_headers` hooks', those a
        provider put in ``ctx.response_headers``, then the operation's dialect's (the first
        value of a name wins)."""
        headers = [(b"x-request-id", ctx.request_id.encode())]
        extras: list[Mapping[str, str] | None] = []
        if self.hooks.implemented("response_headers"):
            extras = await self.hooks.response_headers(ctx=ctx)
        if ctx.response_headers:
            extras.append(ctx.response_headers)
        own = ctx.operation.dialect.headers(ctx) if ctx.operation is not None else None
        if own:
            extras.append(own)
        names = {b"x-request-id"}
        for extra in extras:
            for name, value in (extra or {}).items():
                key = name.lower().encode("latin-1")
                if key not in names:
                    names.add(key)
                    headers.append((key, value.encode("latin-1")))
        return headers

    def scrubbed(self, error: GatewayError) -> GatewayError:
        """``error`` with every upstream secret (keys, header values, URL credentials) and
        every static client key taken out of its message (the same error when there was none)."""
        message = self.scrubber(error.message)
        if message is not error.message:
            error.message = message
            error.args = (message,)
        return error

    # -- construction -----------------------------------------------------------------------

    def _provider_types(self) -> dict[str, type[Provider]]:
        types: dict[str, type[Provider]] = {}

        def register(cls: type[Provider]) -> None:
            if not (isinstance(cls, type) and issubclass(cls, Provider) and cls.type):
                raise TypeError(f"register_providers: {cls!r} is not a Provider subclass with a type")
            types.setdefault(cls.type, cls)

        self.pm.hook.register_providers(register=register)
        return types

    def _provider(self, name: str) -> Provider:
        config = self.config.providers[name]
        cls = self.provider_types.get(config.type)
        if cls is None:
            known = ", ".join(sorted(self.provider_types))
            match = closest(config.type, self.provider_types)
            hint = (f"did you mean {match!r}?" if match else
                    f"a plugin may serve it: pip install compatgate-{config.type}?")
            raise ConfigError(
                f"{self.config.source}: providers.{name}.type = {config.type!r}: no installed plugin "
                f"serves this type; {hint} (installed types: {known})"
            )
        try:
            return cls(config)
        except ConfigError as exc:
            raise ConfigError(f"{self.config.source}: {exc}") from None

    def _operations(self) -> dict[str, Operation]:
        operations: dict[str, Operation] = {}
        paths: dict[str, str] = {}

        def register(operation: Operation) -> None:
            if not isinstance(operation, Operation):
                raise TypeError(f"register_operations: {operation!r} is not an Operation")
            for table, key in ((operations, operation.name), (paths, operation.path)):
                if key in table:
                    raise ConfigError(f"{self.config.source}: two operations are registered for {key!r}")
            operations[operation.name] = operation
            paths[operation.path] = operation.name

        self.pm.hook.register_operations(register=register)
        return operations

    def _secrets(self) -> list[str]:
        secrets: list[str] = list(self.config.gateway.api_keys)
        for provider in self.providers.values():
            if isinstance(provider, HTTPProvider):
                secrets += [secret for secret in provider.secrets if secret]
            else:
                secrets += [s for s in (provider.config.api_key, *provider.config.headers.values()) if s]
        return secrets

    def _routes(self) -> list[BaseRoute]:
        routes: list[BaseRoute] = []
        self.pm.hook.register_routes(gateway=self, register=routes.append)
        for operation in self.operations.values():
            if operation.websocket:
                routes.append(WebSocketRoute(operation.path, RealtimeEndpoint(self, operation)))
            else:
                routes.append(Route(operation.path, OperationEndpoint(self, operation), methods=None))
        models = ModelsEndpoint(self)
        routes += [Route("/models", models), Route("/models/{model:path}", models)]
        routes += health_routes(self)
        return routes

    def __repr__(self) -> str:
        return f"<Gateway {self.config.source} providers={sorted(self.providers)}>"
