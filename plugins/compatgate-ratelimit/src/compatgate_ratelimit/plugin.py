"""`RateLimit`: the plugin, one instance per gateway.

``admit_request`` reserves a request, the token estimate and a concurrency lease in every scope
of the request in one atomic backend operation, or refuses with 429 ``rate_limit_exceeded``;
``response_headers`` reports the OpenAI ``x-ratelimit-*`` headers; ``record_usage`` (exactly
once per request) releases the lease and replaces the estimate by the real usage. A task
renews the live leases every third of ``lease_seconds``.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from compatgate import Gateway, GatewayError, RateLimitError, RequestContext, UsageRecord, hookimpl, withdraw_hooks

from .backend import NEVER, Backend, BackendUnavailable, Correction, Decision, Plan
from .headers import format_duration, rate_limit_headers
from .memory import MemoryBackend
from .redis_backend import RedisBackend
from .scopes import METADATA_KEY, Scope, build_plan, estimate_cost, request_scopes
from .settings import Settings, parse_settings

__all__ = ["STATE_KEY", "Admission", "RateLimit", "RateLimiterUnavailable"]

logger = logging.getLogger("compatgate.ratelimit")

STATE_KEY = "ratelimit"  # in ctx.state and gateway.state
_LOG_EVERY = 10.0  # seconds between two warnings while the backend stays down
_WARNED_MAX = 1024
_SCOPED_MAX = 4096  # request shapes (key, metadata tier, model, provider) kept with their plans
_PLANS_MAX = 64  # plans (one per token cost) kept per request shape

T = TypeVar("T")

_WINDOW_NAMES = {
    "rpm": "requests per min (RPM)",
    "tpm": "tokens per min (TPM)",
    "tpd": "tokens per day (TPD)",
}


class RateLimiterUnavailable(GatewayError):
    """503: the backend cannot be reached and ``on_backend_error = "closed"``."""

    status_code = 503
    type = "server_error"
    code = "rate_limiter_unavailable"


@dataclass(frozen=True, slots=True)
class Admission:
    """What the plugin did for one request (``ctx.state["ratelimit"]``): its plan, the backend's
    decision (None when the backend was unavailable), the lease name, and whether anything was
    reserved (and must be settled in ``record_usage``)."""

    plan: Plan
    decision: Decision | None
    lease: str
    reserved: bool


class _Scoped:
    """The scopes of one request shape, what was wrong in its metadata, and its plans by cost
    (a `Plan` is immutable, so requests of the same shape and cost share one)."""

    __slots__ = ("plans", "problems", "scopes")

    def __init__(self, scopes: list[Scope], problems: list[str]) -> None:
        self.scopes = scopes
        self.problems = problems
        self.plans: dict[int, Plan] = {}

    def plan(self, cost: int) -> Plan:
        plan = self.plans.get(cost)
        if plan is None:
            if len(self.plans) >= _PLANS_MAX:
                self.plans.clear()
            plan = self.plans[cost] = build_plan(self.scopes, cost)
        return plan


class RateLimit:
    """Rate limits for one gateway; inert unless ``[plugins.ratelimit]`` is configured.

    The class passed again in ``Gateway(plugins=[...])`` (or a subclass of it) replaces the
    entry point's instance, so a request is never counted twice. ``clock`` (seconds) replaces
    the backend's time, for tests.
    """

    def __init__(self, gateway: Gateway, *, clock: Callable[[], float] | None = None) -> None:
        self.gateway = gateway
        table = gateway.config.plugins.get(STATE_KEY)
        self.configured = table is not None
        self.settings = (
            parse_settings(table, gateway.config.source) if table is not None else Settings()
        )
        self.clock = clock
        self.backend: Backend | None = None
        self.lease_ms = int(self.settings.lease_seconds * 1000)
        self._leases: dict[str, tuple[str, ...]] = {}  # live lease -> its pool keys
        self._renewer: asyncio.Task[None] | None = None
        self._instance = uuid.uuid4().hex[:16]
        self._ids = itertools.count()
        self._down_until = 0.0
        self._down_since: float | None = None
        self._last_warning = 0.0
        self._warned: set[str] = set()
        self._scoped: dict[tuple[str | None, str | None, str | None, str | None], _Scoped] = {}
        if self.configured:
            gateway.state[STATE_KEY] = self
            self._check_names()
        else:  # inert at no cost
            withdraw_hooks(self, "startup", "shutdown", "admit_request", "response_headers", "record_usage",
                           "check_ready")  # fmt: skip

    # -- life cycle -------------------------------------------------------------------------

    @hookimpl
    async def startup(self) -> None:
        if not self.configured:
            return
        settings = self.settings
        if settings.backend == "redis":
            assert settings.redis_url is not None
            backend: Backend = RedisBackend(
                settings.redis_url,
                key_prefix=settings.key_prefix,
                timeout=settings.redis_timeout,
                max_connections=settings.redis_max_connections,
                clock=self.clock,
            )
        else:
            backend = MemoryBackend(clock=self.clock) if self.clock else MemoryBackend()
        try:
            await backend.start()
        except BackendUnavailable as exc:  # the policy applies per request until it comes back
            logger.warning(
                "compatgate-ratelimit: %s at start-up; failing %s meanwhile",
                exc,
                settings.on_backend_error,
            )
        self.backend = backend
        self._renewer = asyncio.create_task(
            self._renew_forever(), name="compatgate-ratelimit leases"
        )

    @hookimpl
    async def shutdown(self) -> None:
        if self._renewer is not None:
            self._renewer.cancel()
            await asyncio.gather(self._renewer, return_exceptions=True)
            self._renewer = None
        if self.backend is not None:
            backend, self.backend = self.backend, None
            await backend.close()

    @hookimpl
    async def check_ready(self) -> dict[str, str | None] | None:
        """``ratelimit``: the backend is started and, with Redis, answers a ``PING`` (a
        replica cut off from Redis leaves the load balancer; requests that still reach it are
        handled as ``on_backend_error`` says)."""
        if not self.configured:
            return None
        if self.backend is None:
            return {STATE_KEY: "not started"}
        try:
            await self.backend.ping()
        except BackendUnavailable as exc:  # the details (host) go to the log only
            logger.warning("compatgate-ratelimit: not ready: %s", exc)
            return {STATE_KEY: "Redis unreachable"}
        return {STATE_KEY: None}

    # -- requests ---------------------------------------------------------------------------

    @hookimpl
    async def admit_request(self, ctx: RequestContext) -> None:
        if not self.configured or self.backend is None:
            return
        scoped = self._scopes(ctx)
        if scoped.problems:
            self._warn(ctx, scoped.problems)
        if not scoped.scopes:
            return
        plan = scoped.plan(estimate_cost(ctx, self.settings.default_max_tokens))
        lease = f"{self._instance}:{next(self._ids)}"
        try:
            decision = await self._call(self.backend.admit, plan, lease, self.lease_ms)
        except BackendUnavailable:
            ctx.state[STATE_KEY] = Admission(plan, None, lease, reserved=False)
            if self.settings.on_backend_error == "closed":
                wait = max(1, math.ceil(self.settings.backend_retry_seconds))
                raise RateLimiterUnavailable(
                    "Rate limits cannot be checked right now, so the request was not sent; "
                    "please try again shortly.",
                    headers={"retry-after": str(wait)},
                ) from None
            return
        ctx.state[STATE_KEY] = Admission(plan, decision, lease, reserved=decision.admitted)
        if not decision.admitted:
            raise _refusal(plan, decision)
        if plan.pools:
            self._leases[lease] = tuple(pool.key for pool in plan.pools)

    @hookimpl
    async def response_headers(self, ctx: RequestContext) -> Mapping[str, str] | None:
        if not self.configured or self.backend is None or ctx.endpoint == "models":
            return None
        admission: Admission | None = ctx.state.get(STATE_KEY)
        if admission is not None:
            return (
                rate_limit_headers(admission.plan, admission.decision)
                if admission.decision
                else None
            )
        if ctx.principal is None:  # refused before we knew who asked: no limits to report
            return None
        # Refused before admission (a bad body, an unknown model, another plugin): look only.
        scoped = self._scopes(ctx)
        if not scoped.scopes:
            return None
        plan = scoped.plan(0)
        try:
            decision = await self._call(self.backend.admit, plan, "", self.lease_ms, peek=True)
        except BackendUnavailable:
            return None
        return rate_limit_headers(plan, decision)

    @hookimpl
    async def record_usage(self, ctx: RequestContext, record: UsageRecord) -> None:
        admission: Admission | None = ctx.state.get(STATE_KEY)
        if (
            admission is None
            or not admission.reserved
            or admission.decision is None
            or self.backend is None
        ):
            return
        self._leases.pop(admission.lease, None)
        plan = admission.plan
        corrections = []
        for window in plan.windows:
            if window.kind == "tokens":
                delta = _used_tokens(record, window.cost) - window.cost
                if delta:
                    corrections.append(Correction(window, admission.decision.now_ms, delta))
        pools = [pool.key for pool in plan.pools]
        if corrections or pools:
            try:
                await self._call(self.backend.settle, corrections, pools, admission.lease)
            except (
                BackendUnavailable
            ):  # logged; the lease expires by itself (it is no longer renewed)
                pass

    # -- internals --------------------------------------------------------------------------

    def _scopes(self, ctx: RequestContext) -> _Scoped:
        """`request_scopes` of ``ctx``, kept per request shape: the key, the tier its metadata
        names (metadata that is a mapping is read again each time), the model, the provider."""
        principal, route = ctx.principal, ctx.route
        marker = None if principal is None else principal.metadata.get(METADATA_KEY)
        if marker is not None and type(marker) is not str:
            return _Scoped(*request_scopes(self.settings, ctx))
        shape = (
            None if principal is None else principal.key_id,
            marker,
            ctx.model,
            None if route is None else route.provider.name,
        )
        scoped = self._scoped.get(shape)
        if scoped is None:
            if len(self._scoped) >= _SCOPED_MAX:
                self._scoped.clear()
            scoped = self._scoped[shape] = _Scoped(*request_scopes(self.settings, ctx))
        return scoped

    async def _call(self, operation: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
        """Run a backend operation; after a failure, fail fast for ``backend_retry_seconds``."""
        now = time.monotonic()
        if now < self._down_until:
            raise BackendUnavailable("the backend failed moments ago")
        try:
            result = await operation(*args, **kwargs)
        except BackendUnavailable as exc:
            now = time.monotonic()
            self._down_until = now + self.settings.backend_retry_seconds
            if self._down_since is None or now - self._last_warning >= _LOG_EVERY:
                self._last_warning = now
                logger.warning(
                    "compatgate-ratelimit: the %s backend is unavailable (%s); failing %s",
                    self.settings.backend,
                    exc,
                    self.settings.on_backend_error,
                )
            if self._down_since is None:
                self._down_since = now
            raise
        if self._down_since is not None:
            logger.warning(
                "compatgate-ratelimit: the %s backend is back after %.1fs",
                self.settings.backend,
                time.monotonic() - self._down_since,
            )
            self._down_since = None
        return result

    async def _renew_forever(self) -> None:
        interval = self.settings.lease_seconds / 3
        while True:
            await asyncio.sleep(interval)
            if self.backend is None:
                return
            leases = [(key, lease) for lease, keys in self._leases.items() for key in keys]
            try:
                await self._call(self.backend.renew, leases, self.lease_ms)
            except BackendUnavailable:
                pass
            except Exception:  # never let the renewals stop
                logger.exception("compatgate-ratelimit: renewing the leases failed")

    def _warn(self, ctx: RequestContext, problems: list[str]) -> None:
        key = ctx.principal.key_id if ctx.principal else "?"
        for problem in problems:
            marker = f"{key}\0{problem}"
            if marker not in self._warned:
                if len(self._warned) < _WARNED_MAX:
                    self._warned.add(marker)
                logger.warning("compatgate-ratelimit: key %s: %s (ignored)", key, problem)

    def _check_names(self) -> None:
        config = self.gateway.config
        models = {model.name for model in config.models}
        for name in self.settings.models:
            if name not in models:
                logger.warning(
                    "compatgate-ratelimit: plugins.ratelimit.models names %r, which is not in [[models]]",
                    name,
                )
        for name in self.settings.providers:
            if name not in config.providers:
                logger.warning(
                    "compatgate-ratelimit: plugins.ratelimit.providers names %r, which is not in [providers]",
                    name,
                )


def _used_tokens(record: UsageRecord, reserved: int) -> int:
    """The tokens a finished request really used: the usage the upstream reported (or the
    gateway's estimate of a cut stream). Without usage: nothing for an error (an upstream error,
    or a refusal by a later plugin), else the reservation (an answer without usage, a client
    that left before the answer: the upstream may have done the work)."""
    if record.usage is not None:
        return record.usage.total_tokens
    return 0 if record.outcome == "error" else reserved


def _refusal(plan: Plan, decision: Decision) -> RateLimitError:
    """The 429 for a refused admission: every limit that refused, the longest wait."""
    reasons: list[str] = []
    wait_ms = 0
    never = False
    for window, state in zip(plan.windows, decision.windows, strict=True):
        what = f"{window.scope} on {_WINDOW_NAMES[window.name]}"
        if state.retry_ms == NEVER:
            never = True
            reasons.append(
                f"Request too large for {what}: Limit {window.limit}, Requested {window.cost}; "
                "lower max_tokens or shorten the prompt."
            )
        elif state.retry_ms > 0:
            wait_ms = max(wait_ms, state.retry_ms)
            reasons.append(
                f"Rate limit reached for {what}: Limit {window.limit}, Used {state.used}, Requested {window.cost}."
            )
    for pool, pool_state in zip(plan.pools, decision.pools, strict=True):
        if pool_state.retry_ms > 0:
            wait_ms = max(wait_ms, pool_state.retry_ms)
            reasons.append(
                f"Concurrency limit reached for {pool.scope}: Limit {pool.limit}, In flight {pool_state.used}."
            )
    message = " ".join(reasons)
    if never:  # waiting does not help; tell the SDKs not to retry
        return RateLimitError(message, headers={"x-should-retry": "false"})
    message += f" Please try again in {format_duration(wait_ms)}."
    return RateLimitError(
        message, retry_after=wait_ms / 1000, headers={"retry-after-ms": str(max(1, wait_ms))}
    )
