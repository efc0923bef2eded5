"""The hooks a compatgate plugin can implement.

A plugin is a module or an object with functions named after these hooks and marked with
``compatgate.hookimpl``; it may take any subset of a hook's arguments. Plugins are found
through the ``compatgate`` entry-point group, or passed as ``Gateway(config, plugins=[...])``.
The built-in behaviour is made of default plugins marked ``trylast``, so any plugin runs first.

Hooks marked *may be async* accept a plain function or an ``async def``: the gateway calls the
implementations one by one in pluggy's order (``tryfirst`` first, then the most recently
registered, ``trylast`` last), awaits each result, and combines them as the spec's `combine`
marker declares (and its docstring says): ``first`` (the first non-None result wins, the rest
are not called), ``chain`` (each receives the previous one's value), ``each`` (every result, in
order; an exception propagates) or ``isolated`` (every implementation runs; an exception is
logged and the others still run). `compatgate.hooks.Hooks` is the typed front that calls them.
pluggy's ``hookwrapper``/``wrapper`` implementations are not supported on those hooks.
Synchronous hooks (registration) are called through pluggy directly.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import pluggy

if TYPE_CHECKING:
    from argparse import ArgumentParser

    from starlette.requests import Request
    from starlette.routing import BaseRoute
    from starlette.types import ASGIApp

    from .context import Principal, RequestContext, Route
    from .gateway import Gateway
    from .operations import Operation
    from .provider import Provider
    from .replies import ChunkStream, RawReply, Reply
    from .usage import Attempt, UsageRecord

    UpstreamCall = Callable[[RequestContext, dict[str, Any]], Awaitable[Reply | ChunkStream | RawReply]]

hookspec = pluggy.HookspecMarker("compatgate")
hookimpl = pluggy.HookimplMarker("compatgate")

__all__ = ["Combine", "combine", "hookimpl", "hookspec"]

Combine = Literal["first", "chain", "each", "isolated"]
F = TypeVar("F", bound=Callable[..., Any])


def combine(how: Combine, value: str | None = None) -> Callable[[F], F]:
    """Declare how the results of a hook that may be async combine (see the module docstring);
    ``value`` names the argument a ``chain`` passes along."""

    def mark(function: F) -> F:
        function.compatgate_combine = (how, value)  # type: ignore[attr-defined]
        return function

    return mark


@hookspec
def register_providers(register: Callable[[type[Provider]], None]) -> None:
    """Register provider classes by calling ``register(ProviderClass)`` once for each.

    A provider class serves the ``[providers.<name>]`` tables whose ``type`` equals its
    ``type`` attribute. Synchronous; every implementation is called. When two plugins register
    the same type, the first call wins (plugins run before the built-in ``trylast`` ones, so a
    plugin can replace the built-in ``openai`` provider).
    """


@hookspec
def register_operations(register: Callable[[Operation], None]) -> None:
    """Add rows to the operation table by calling ``register(operation)`` (see
    `compatgate.operations.Operation`): endpoints that go upstream through the gateway's one
    pipeline — authenticated, checked, routed, metered, admitted, recorded.

    Synchronous; every implementation is called once per gateway, at construction. A path or
    name registered twice is a start-up error; plugins run before the built-in ``trylast``
    ones, so the first registration of a path wins only by being the only one.
    """


@hookspec
def configure(gateway: Gateway) -> None:
    """Finish setting up once the gateway is built (providers, models and operations known),
    e.g. resolve references to providers. Synchronous; every implementation is called once per
    gateway, at the end of construction, in order; a `ConfigError` stops the start-up."""


@hookspec
def register_routes(gateway: Gateway, register: Callable[[BaseRoute], None]) -> None:
    """Add Starlette routes to the gateway by calling ``register(route)``.

    Paths are relative to where the gateway is mounted. Synchronous; every implementation is
    called, at construction. Plugin routes are matched before the built-in ones.
    """


@hookspec
def register_apps(gateway: Gateway, register: Callable[[str, ASGIApp], None]) -> None:
    """Mount ASGI apps beside the API when ``compatgate serve`` runs the gateway
    (``register("/console", app)``); synchronous; every implementation is called once at
    construction.

    The prefix is an absolute path (``"/console"``) other than ``/v1`` and ``/health``; the app
    gets the requests under it with the prefix in ``root_path``, as a Starlette ``Mount`` would
    give them. In a host app these apps are not mounted: the host mounts them itself.
    """


@hookspec
def register_commands(add_command: Callable[..., ArgumentParser]) -> None:
    """Add ``compatgate`` CLI subcommands: ``parser = add_command("keys", help=...)`` (the
    arguments of argparse's ``add_parser``), then ``parser.set_defaults(run=function)``;
    ``function(args)`` runs the command and returns its exit status (None for 0).

    Synchronous; every implementation is called when the CLI starts, without a gateway (on a
    class plugin, make it a ``staticmethod``). The command reads the configuration itself,
    e.g. from a ``--config`` option it adds.
    """


@hookspec
@combine("each")
def startup(gateway: Gateway) -> Awaitable[None] | None:
    """Open what the plugin needs (pools, connections) before the first request.

    May be async; every implementation is awaited, in order. An exception stops the start-up.
    Runs once per gateway, in the event loop that serves it.
    """


@hookspec
@combine("isolated")
def shutdown(gateway: Gateway) -> Awaitable[None] | None:
    """Close what `startup` opened. May be async; every implementation is awaited; an
    exception is logged and the others still run."""


@hookspec
def check_ready(gateway: Gateway) -> Mapping[str, str | None] | None | Awaitable[Mapping[str, str | None] | None]:
    """Say whether what the plugin needs works, for ``GET /health/ready``: return a mapping of
    component names (``"billing"``, ``"ratelimit.redis"``) to None when it is fine or a short
    problem (``"unreachable (ConnectionRefusedError)"``), or None for nothing to report.

    May be async; every implementation is called, concurrently, each within 5 seconds (else its
    plugin reports a timeout); an exception reports the plugin as failed (and is logged). The
    gateway is ready when no component reports a problem. The answer is public: never put a
    URL, a host name or a secret in a problem; log the details instead.
    """


@hookspec
@combine("first")
def authenticate(
    gateway: Gateway, request: Request, api_key: str | None
) -> Principal | None | Awaitable[Principal | None]:
    """Say who is calling.

    ``api_key`` is the key from ``Authorization: Bearer <key>`` or ``x-api-key: <key>``, None
    when the request carries neither. Return a `Principal` to accept, None to leave the
    decision to the next plugin, or raise `AuthenticationError` (or any `GatewayError`) to
    refuse outright. May be async; the first non-None result wins and the rest are not called.
    When every implementation returns None the request gets 401 ``invalid_api_key``.
    """


@hookspec
@combine("each")
def list_models(
    gateway: Gateway, principal: Principal
) -> Iterable[Mapping[str, Any]] | None | Awaitable[Iterable[Mapping[str, Any]] | None]:
    """Contribute entries to ``GET /models``: OpenAI model objects (``id``, ``object``,
    ``created``, ``owned_by``).

    May be async; every implementation is called and the lists are concatenated in order; for a
    repeated ``id`` the first entry wins. Entries the principal may not use are left out.
    """


@hookspec
@combine("first")
def route_model(
    gateway: Gateway, ctx: RequestContext, model: str
) -> Route | None | Awaitable[Route | None]:
    """Choose where a request for ``model`` goes.

    Return a `Route` (a provider and the upstream model name) or None to leave it to the next
    plugin. May be async; the first non-None result wins. When every implementation returns
    None the request gets 404 ``model_not_found``.
    """


@hookspec
@combine("chain", "body")
def transform_request(
    ctx: RequestContext, body: dict[str, Any]
) -> dict[str, Any] | None | Awaitable[dict[str, Any] | None]:
    """Change the request body before it goes upstream.

    Return a new body, or None to keep ``body`` (which may have been changed in place). May be
    async; implementations run in order, each receiving the previous one's body. The final body
    becomes ``ctx.body``; the gateway then replaces ``model`` by the route's upstream model.
    """


@hookspec
@combine("each")
def admit_request(ctx: RequestContext) -> Awaitable[None] | None:
    """Let the request go upstream, or refuse it by raising a `GatewayError`
    (e.g. `RateLimitError`, `InsufficientQuotaError`).

    Runs after authentication, routing and `transform_request`. May be async; every
    implementation is awaited in order until one raises. Whatever an implementation reserves
    here it releases in `record_usage`, which fires for refused requests too.
    """


@hookspec
@combine("chain", "response")
def transform_response(
    ctx: RequestContext, response: dict[str, Any]
) -> dict[str, Any] | None | Awaitable[dict[str, Any] | None]:
    """Change a non-streamed response body before the client gets it.

    Return a new body or None to keep ``response`` (possibly changed in place). May be async;
    chained in order like `transform_request`. When no plugin implements it, the upstream's
    bytes are relayed untouched.
    """


@hookspec
@combine("chain", "chunk")
def transform_stream_chunk(
    ctx: RequestContext, chunk: dict[str, Any]
) -> dict[str, Any] | None | Awaitable[dict[str, Any] | None]:
    """Change one streamed chunk (an OpenAI ``chat.completion.chunk`` or ``text_completion``
    object) before the client gets it.

    Return a new chunk or None to keep ``chunk`` (possibly changed in place). May be async;
    chained in order. Called for every chunk the client receives (not for a usage chunk the
    client did not ask for). On an operation converted to chat (``/responses``, ``/messages``,
    Gemini's ``streamGenerateContent``) it sees the pivot's ``chat.completion.chunk`` objects
    before they are written in the client's protocol; native event streams of other protocols
    are relayed without it. When no plugin implements it, chunks are relayed as the upstream
    sent their bytes.
    """


@hookspec
def wrap_upstream(ctx: RequestContext, call: UpstreamCall) -> UpstreamCall | None:
    """Wrap the call that sends a request upstream (a cache, retries, tracing...).

    Runs once per request, after `admit_request`. Synchronous, chained: each implementation
    receives the call built so far (the innermost sends the request to the routed provider under
    its timeouts) and returns a new one, or None to keep it. The call is ``async
    call(ctx, body)`` and returns what a provider returns (`Reply`, `ChunkStream`, `RawReply`);
    ``body`` is ``ctx.sent``: the body as it goes upstream (``model`` replaced by the upstream
    model; for an operation served through Chat Completions, the chat request).
    """


@hookspec
@combine("each")
def response_headers(
    ctx: RequestContext,
) -> Mapping[str, str] | None | Awaitable[Mapping[str, str] | None]:
    """Add HTTP headers to the response (errors and streams included), e.g. rate-limit headers.

    May be async; every implementation is called and the mappings are merged in order; for a
    repeated header name the first value wins.
    """


@hookspec
@combine("isolated")
def upstream_attempt(ctx: RequestContext, provider: Provider) -> Awaitable[None] | None:
    """An `HTTPProvider` is about to call its upstream: once per upstream call, so a router's
    retries and fallbacks are attempts too. ``len(ctx.attempts)`` is the index the call will
    have in ``ctx.attempts``; ``ctx.route`` is where it goes. `upstream_headers` runs right
    after and may read what this set up (e.g. a tracing span whose context goes upstream).

    May be async; every implementation is awaited, in order; an exception is logged and the
    others still run. When no plugin implements it, nothing is called.
    """


@hookspec
@combine("each")
def upstream_headers(
    ctx: RequestContext, provider: Provider
) -> Mapping[str, str] | None | Awaitable[Mapping[str, str] | None]:
    """Add HTTP headers to the request an `HTTPProvider` sends upstream (e.g. ``traceparent``).

    May be async; every implementation is called and the mappings are merged in order; a
    header the provider sets itself (authentication) or an earlier plugin set is kept.
    """


@hookspec
@combine("isolated")
def upstream_attempt_done(ctx: RequestContext, provider: Provider, attempt: Attempt) -> Awaitable[None] | None:
    """The upstream call `upstream_attempt` announced has its response headers, or failed:
    ``attempt`` is what was just appended to ``ctx.attempts`` (status, error, milliseconds to
    the headers). A streamed body is still to be read; `record_usage` tells how the request
    ended, and may see the attempt marked failed since (a stream that broke before its first
    chunk). Not called for a call cancelled on the way (a timeout, the client leaving).

    May be async; every implementation is awaited, in order; an exception is logged and the
    others still run. When no plugin implements it, nothing is called.
    """


@hookspec
@combine("isolated")
def record_usage(ctx: RequestContext, record: UsageRecord) -> Awaitable[None] | None:
    """Learn how a request ended: exactly once per API request (success, refusal, upstream
    error, broken stream or client abort), after the last byte was sent or the client left.

    May be async; every implementation is awaited in order, shielded from cancellation. An
    exception is logged and does not stop the others.
    """
