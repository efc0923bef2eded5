"""`Cache`: the plugin (entry point ``cache``), one instance per gateway.

`wrap_upstream` wraps the upstream call of chat completions, completions, embeddings,
``/responses`` (and ``/messages`` JSON answers): it computes the request's key (`keys`), looks
it up unless the client sent ``Cache-Control: no-cache``, and on a hit returns the stored answer
(`replay`) without going upstream; on a miss it goes upstream and keeps the answer if it is fit
(`record`) unless the client sent ``Cache-Control: no-store``. ``ctx.cache`` says what happened
(``hit``, ``miss``, ``bypass``), the response carries it as ``x-compatgate-cache`` (through
``ctx.response_headers``: no extra hook on every request), and the gateway copies it into the usage record (billing, rate limits and metrics read
``record.cached``). ``ctx.state["cache"]`` holds a `CacheNote` (the key and the bytes a hit
served). A backend that fails is skipped (``bypass``) for ``backend_retry_seconds``, with a
warning at most every 10 s: the cache never fails a request.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

import orjson

from compatgate import ChunkStream, Gateway, RawReply, Reply, RequestContext, hookimpl, withdraw_hooks

from .answers import ChunkCheck, storable
from .backend import Backend, BackendUnavailable, MemoryBackend
from .entry import Entry
from .keys import CacheKey, cache_key
from .record import exact, record_bytes, record_chunks
from .redis_backend import RedisBackend
from .replay import replay
from .settings import ModelPolicy, Settings, parse_settings

if TYPE_CHECKING:
    from argparse import ArgumentParser

    from starlette.routing import BaseRoute

__all__ = ["CACHED_ENDPOINTS", "HEADER", "STATE_KEY", "Cache", "CacheNote"]

logger = logging.getLogger("compatgate.cache")

STATE_KEY = "cache"  # the [plugins.cache] table, and ctx.state's CacheNote
HEADER = "x-compatgate-cache"
CACHED_ENDPOINTS = frozenset({"chat.completions", "completions", "embeddings", "responses", "messages"})
_LOG_EVERY = 10.0
_STORE_WAIT = 5.0  # seconds shutdown waits for stores still in flight

Answer = Reply | ChunkStream | RawReply
UpstreamCall = Callable[[RequestContext, dict[str, Any]], Any]


@dataclass(slots=True)
class CacheNote:
    """What the cache did for one request (``ctx.state["cache"]``): ``status`` as in
    ``ctx.cache``, the entry's ``key`` (None when bypassed before a key was made) and, on a
    hit, ``served_bytes``: the size of the answer served from the cache."""

    status: str
    key: CacheKey | None = None
    served_bytes: int = 0


class Cache:
    """The response cache of one gateway; inert unless ``[plugins.cache]`` is configured (the
    gateway registers one instance even when the class is also given in ``plugins=[...]``)."""

    def __init__(self, gateway: Gateway, *, clock: Callable[[], float] | None = None) -> None:
        self.gateway = gateway
        table = gateway.config.plugins.get(STATE_KEY)
        self.settings: Settings | None = None
        self.backend: Backend | None = None
        self._memory: MemoryBackend | None = None  # the backend when it is in memory (no awaits)
        self.admin_key: str | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._down_until = 0.0
        self._last_warning = 0.0
        if table is None:  # inert at no cost
            withdraw_hooks(self, "startup", "shutdown", "wrap_upstream", "register_routes")
            return
        settings = self.settings = parse_settings(table, gateway.config.source)
        if settings.backend == "redis":
            assert settings.redis_url is not None
            self.backend = RedisBackend(
                settings.redis_url,
                key_prefix=settings.key_prefix,
                timeout=settings.redis_timeout,
                max_connections=settings.redis_max_connections,
            )
        else:
            self.backend = self._memory = MemoryBackend(settings.max_bytes, **({"clock": clock} if clock else {}))
        self.admin_key = settings.admin_key or _billing_admin_key(gateway)

    @property
    def acting(self) -> bool:
        return self.settings is not None

    # -- life cycle -------------------------------------------------------------------------

    @hookimpl
    async def startup(self) -> None:
        if not self.acting or self.backend is None:
            return
        try:
            await self.backend.start()
        except BackendUnavailable as exc:
            self._failed(exc)

    @hookimpl
    async def shutdown(self) -> None:
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=_STORE_WAIT)
        if self.backend is not None and self.acting:
            await self.backend.close()

    # -- requests ---------------------------------------------------------------------------

    @hookimpl(tryfirst=True)  # outermost: a hit never reaches a router's retries
    def wrap_upstream(self, ctx: RequestContext, call: UpstreamCall) -> UpstreamCall | None:
        if ctx.endpoint not in CACHED_ENDPOINTS or not self.acting:
            return None
        return partial(self._serve, call)

    async def _serve(self, call: UpstreamCall, ctx: RequestContext, body: dict[str, Any]) -> Answer:
        settings = self.settings
        assert settings is not None
        policy = settings.policy(ctx.model)
        if not isinstance(body, dict) or not _cacheable(ctx, body, policy):
            ctx.cache = ctx.response_headers[HEADER] = "bypass"
            ctx.state[STATE_KEY] = CacheNote("bypass")
            return await call(ctx, body)
        directives = _directives(ctx.request.headers.get("cache-control"))
        key = cache_key(ctx, body, settings)
        store = "no-store" not in directives
        status = "bypass"
        if "no-cache" not in directives:
            try:
                memory = self._memory
                entry = memory.get_now(key) if memory is not None else await self._get(key)
            except BackendUnavailable:
                store = False
            else:
                status = "miss"
                if entry is not None:
                    served = replay(entry, body.get("stream") is True)
                    if served is not None:
                        ctx.cache = ctx.response_headers[HEADER] = "hit"
                        ctx.state[STATE_KEY] = CacheNote("hit", key, entry.size)
                        return served
        ctx.cache = ctx.response_headers[HEADER] = status
        ctx.state[STATE_KEY] = CacheNote(status, key)
        result = await call(ctx, body)
        if not store or (self._memory is None and time.monotonic() < self._down_until):
            return result
        return await self._record(result, ctx, body, key, policy)

    async def _record(
        self, result: Answer, ctx: RequestContext, body: dict[str, Any], key: CacheKey, policy: ModelPolicy
    ) -> Answer:
        assert self.settings is not None
        limit = self.settings.max_entry_bytes
        keep = partial(self._keep, key, policy.ttl_seconds)
        if isinstance(result, Reply):
            if storable(result.data, policy.tool_calls):
                raw = result.raw if result.raw is not None else exact(orjson.dumps(result.data))
                if len(raw) <= limit:
                    if self._memory is not None:
                        self._memory.set_now(key, Entry("json", (raw,)), policy.ttl_seconds)
                    else:
                        await self._set(key, Entry("json", (raw,)), policy.ttl_seconds)
            return result
        if isinstance(result, RawReply):
            if ctx.endpoint == "responses":  # an event stream whose end we can check
                return record_bytes(result, ctx.endpoint, policy.tool_calls, limit, keep)
            return result
        n = body.get("n")
        expected = n if isinstance(n, int) and not isinstance(n, bool) and n > 0 else 1
        return record_chunks(result, ChunkCheck(expected, policy.tool_calls), limit, keep)

    # -- the backend ------------------------------------------------------------------------

    async def _get(self, key: CacheKey) -> Entry | None:
        backend = self.backend
        assert backend is not None
        if time.monotonic() < self._down_until:
            raise BackendUnavailable("the backend failed moments ago")
        try:
            return await backend.get(key)
        except BackendUnavailable as exc:
            self._failed(exc)
            raise

    def _keep(self, key: CacheKey, ttl: float, entry: Entry) -> None:
        """Store a recorded stream's entry without holding up the stream's end."""
        backend = self.backend
        if isinstance(backend, MemoryBackend):
            backend.set_now(key, entry, ttl)
            return
        task = asyncio.get_running_loop().create_task(self._set(key, entry, ttl))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _set(self, key: CacheKey, entry: Entry, ttl: float) -> None:
        backend = self.backend
        assert backend is not None
        if isinstance(backend, MemoryBackend):
            backend.set_now(key, entry, ttl)
            return
        try:
            await backend.set(key, entry, ttl)
        except BackendUnavailable as exc:
            self._failed(exc)
        except Exception:  # a store must never break the request that produced it
            logger.exception("compatgate-cache: storing an entry failed")

    def _failed(self, exc: BaseException) -> None:
        assert self.settings is not None
        now = time.monotonic()
        self._down_until = now + self.settings.backend_retry_seconds
        if now - self._last_warning >= _LOG_EVERY:
            self._last_warning = now
            logger.warning(
                "compatgate-cache: the %s backend is unavailable (%s); answering without the cache",
                self.settings.backend, exc,
            )  # fmt: skip

    async def purge(self, namespace: str | None = None, model: str | None = None) -> int:
        """Delete the entries of ``namespace`` and/or ``model`` (every entry when both are None)."""
        if self.backend is None:
            return 0
        return await self.backend.purge(namespace, model)

    # -- operating it -----------------------------------------------------------------------

    @hookimpl
    def register_routes(self, register: Callable[[BaseRoute], None]) -> None:
        if self.settings is None or self.admin_key is None:
            return
        from .admin import admin_routes

        for route in admin_routes(self):
            register(route)

    @staticmethod
    @hookimpl
    def register_commands(add_command: Callable[..., ArgumentParser]) -> None:
        from .commands import add_commands

        add_commands(add_command)

    def __repr__(self) -> str:
        return f"<Cache {self.settings.backend if self.settings else 'off'}>"


def _cacheable(ctx: RequestContext, body: dict[str, Any], policy: ModelPolicy) -> bool:
    """Whether this request may use the cache at all (else it bypasses it)."""
    if not policy.enabled:
        return False
    if ctx.endpoint == "responses":
        client = ctx.body if isinstance(ctx.body, dict) else {}
        if client.get("previous_response_id") or client.get("conversation"):
            return False  # continues state kept elsewhere
        if client.get("store") is True or client.get("background") is True:
            return False
    if policy.when == "always" or ctx.endpoint == "embeddings":
        return True
    temperature = body.get("temperature")
    return isinstance(temperature, int | float) and not isinstance(temperature, bool) and temperature == 0


def _directives(header: str | None) -> frozenset[str]:
    if not header:
        return frozenset()
    return frozenset(part.strip().lower() for part in header.split(","))


def _billing_admin_key(gateway: Gateway) -> str | None:
    return _billing_admin_key_of(gateway.config.plugins)


def _billing_admin_key_of(plugins: Mapping[str, Any]) -> str | None:
    """``[plugins.billing] admin_key``, which the cache's admin route accepts when the cache has
    no ``admin_key`` of its own."""
    billing = plugins.get("billing")
    key = billing.get("admin_key") if isinstance(billing, Mapping) else None
    return key if isinstance(key, str) and len(key) >= 16 else None
