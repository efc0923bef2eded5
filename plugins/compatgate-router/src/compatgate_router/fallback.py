"""`FallbackCall`: the upstream call of a routed request. It tries the plan's deployments —
retries, fallbacks, backoff, cooldown — until one answers.

The router's `wrap_upstream` puts it around the gateway's upstream call. The deployment
`route_model` chose first (whose body the gateway metered and admitted) goes through the call it
wraps; any other deployment through `compatgate.call_provider`, with the same body under its own
upstream model (its timeouts apply). Each try sets ``ctx.route`` to the deployment tried, so
that providers read their model options there and `record_usage` names the deployment that
answered. A deployment whose provider does not serve the request's method (e.g. ``/messages``
natively, images) is not tried; a body that can be sent only once — a multipart upload relayed
as it arrives — gets a single try. A realtime session is tried until its upstream connection
opens (the client's WebSocket is accepted after that), without the answer timeouts.

"Before the first byte": a try succeeds when its provider returned a complete answer or, for a
stream of chunks, when the stream's first chunk is in hand (it is read ahead, so that an
upstream that fails before producing anything — a reset, an empty or truncated stream, an error
event, a slow first token — can still be retried). A stream handed over is never retried: a
later failure is the client's error event.
"""

from __future__ import annotations

import math
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import anyio

from compatgate import (
    Attempt,
    GatewayError,
    RawReply,
    Reply,
    RequestContext,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
    call_provider,
)
from compatgate.uploads import Form

from .failures import backoff, reason, retry_after
from .plan import Plan, Target
from .selection import order
from .settings import DEPLOYMENT_FAILURES
from .streams import PeekedStream, WatchedBytes, peek

if TYPE_CHECKING:
    from compatgate.hookspecs import UpstreamCall

    from .plugin import Router

__all__ = ["ATTEMPTS_HEADER", "PROVIDER_HEADER", "FallbackCall"]

PROVIDER_HEADER = "x-compatgate-provider"
ATTEMPTS_HEADER = "x-compatgate-attempts"

Body = dict[str, Any]


class FallbackCall:
    """The deployments of ``plan``, tried in turn for one request: an upstream call
    (``await fallback(ctx, body)``) wrapping ``call``, the call that sends to ``first[0]``.

    ``first`` is the order of the plan's first group, chosen at routing."""

    def __init__(self, router: Router, plan: Plan, first: list[Target], call: UpstreamCall) -> None:
        self.router = router
        self.plan = plan
        self.first = first
        self.call = call

    async def __call__(self, ctx: RequestContext, body: Body) -> Any:
        return await _Run(self, ctx, body).run()


class _Run:
    """One request's tries: which deployments were tried, excluded, cooling, and when."""

    def __init__(self, fallback: FallbackCall, ctx: RequestContext, body: Body) -> None:
        self.router = fallback.router
        self.policy = fallback.router.settings.retry
        self.plan = fallback.plan
        self.call = fallback.call
        self.head = fallback.first[0].key  # the deployment `call` sends to
        self.ctx, self.body, self.method = ctx, body, ctx.upstream_method
        self.session = ctx.operation is not None and ctx.operation.websocket
        once = isinstance(body, Form)  # an upload relayed as it arrives: it cannot be sent again
        self.max_attempts = 1 if once else self.policy.max_attempts
        self.orders: dict[int, list[Target]] = {0: fallback.first}
        self.stage = 0
        self.tries: dict[str, int] = {}  # deployment key -> tries in this request
        self.not_before: dict[str, float] = {}  # when a Retry-After lets a deployment be retried
        self.excluded: set[str] = set()  # cooling down, or asked for a too long Retry-After
        self.cooling: list[float] = []  # seconds until the skipped deployments may be tried
        self.probes: set[str] = set()  # admitted as their circuit's probe
        self.count = 0
        self.retries = 0
        self.last: Target | None = None
        self.deadline = anyio.current_time() + self.policy.max_seconds
        self.headers = dict(ctx.response_headers)

    async def run(self) -> Any:
        error: GatewayError | None = None
        why: str | None = None
        try:
            while self.count < self.max_attempts and anyio.current_time() < self.deadline:
                choice = await self._next(why)
                if choice is None:
                    break
                target, wait = choice
                if wait > 0:
                    if anyio.current_time() + wait >= self.deadline:
                        break
                    await anyio.sleep(wait)
                try:
                    return await self._try(target)
                except GatewayError as exc:
                    error, why = exc, reason(exc)
                    if why is None:
                        raise  # a client error: the same request fails everywhere
            raise error if error is not None else self._none_available()
        finally:
            self.ctx.response_headers[ATTEMPTS_HEADER] = str(self.count)
            if self.last is not None:
                self.ctx.response_headers[PROVIDER_HEADER] = self.last.provider.name

    # -- choosing ---------------------------------------------------------------------------

    async def _next(self, why: str | None) -> tuple[Target, float] | None:
        """The next deployment and how long to wait first; None when nothing is left. ``why``
        is the reason the last try failed (None before the first)."""
        if why is None or why in self.policy.on:
            target = await self._fresh(self.stage)
            if target is not None:
                return target, 0.0
        if why is None or why in self.plan.fallback_on:
            for stage in range(self.stage + 1, len(self.plan.stages)):
                target = await self._fresh(stage)
                if target is not None:
                    self.stage = stage
                    return target, 0.0
        if why is not None and why in self.policy.on:
            return await self._again()
        return None

    def _order(self, stage: int) -> list[Target]:
        targets = self.orders.get(stage)
        if targets is None:
            group = self.plan.stages[stage]
            targets = self.orders[stage] = order(group.targets, group.strategy, self.router.stats, self.router.rng)
        return targets

    async def _fresh(self, stage: int) -> Target | None:
        """The first deployment of ``stage`` not tried yet that may be tried now."""
        for target in self._order(stage):
            if (target.key not in self.tries and target.key not in self.excluded
                    and target.provider.serves(self.method) and await self._admit(target)):
                return target
        return None

    async def _again(self) -> tuple[Target, float] | None:
        """A deployment of the current stage tried before, after a backoff (and at least what
        its Retry-After asked)."""
        tried = [t for t in self._order(self.stage) if t.key in self.tries and t.key not in self.excluded]
        tried.sort(key=lambda t: (self.not_before.get(t.key, 0.0), self.tries[t.key]))
        for target in tried:
            if await self._admit(target):
                policy = self.policy
                wait = backoff(self.retries, policy.backoff_base, policy.backoff_max, self.router.rng)
                self.retries += 1
                return target, max(wait, self.not_before.get(target.key, 0.0) - anyio.current_time())
        return None

    async def _admit(self, target: Target) -> bool:
        admission = await self.router.health.admit(target.key)
        if not admission.allowed:
            self.excluded.add(target.key)
            self.cooling.append(admission.wait)
            return False
        if admission.probe:
            self.probes.add(target.key)
        return True

    def _none_available(self) -> GatewayError:
        """The error when nothing was tried: every deployment cooling down (or no time left)."""
        if not self.cooling:
            return UpstreamTimeoutError(
                f"No deployment for the model {self.plan.model!r} could be tried within the "
                f"request's budget of {self.policy.max_seconds:g} s (plugins.router.retry.max_seconds)."
            )
        seconds = max(1, math.ceil(min(self.cooling)))
        return UpstreamUnavailableError(
            f"Every deployment for the model {self.plan.model!r} is cooling down after repeated "
            f"failures; retry in {seconds} s.",
            status_code=503,
            code="no_deployment_available",
            headers={"retry-after": str(seconds)},
        )

    # -- trying -----------------------------------------------------------------------------

    async def _send(self, target: Target) -> Any:
        """One try of ``target``: through the wrapped call for the deployment it sends to,
        else the same body under ``target``'s upstream model straight to its provider."""
        ctx = self.ctx
        if target.key == self.head:
            return await self.call(ctx, self.body)
        model = target.route.upstream_model
        body = self.body.replace(model=model) if isinstance(self.body, Form) else {**self.body, "model": model}
        if self.session:  # a session, not an answer: no answer timeouts
            return await getattr(target.provider, self.method)(ctx, body)
        return await call_provider(target.provider, ctx, self.method, body)

    async def _try(self, target: Target) -> Any:
        ctx, router, key = self.ctx, self.router, target.key
        if self.count:  # headers a failed try's provider added are not this answer's
            ctx.response_headers.clear()
            ctx.response_headers.update(self.headers)
        self.count += 1
        self.last = target
        self.tries[key] = self.tries.get(key, 0) + 1
        probe = key in self.probes
        self.probes.discard(key)
        ctx.route = target.route
        since, started = len(ctx.attempts), time.perf_counter()
        router.stats.started(key)
        try:
            with anyio.fail_after(max(self.deadline - anyio.current_time(), 0.0)):
                result = await self._send(target)
                streamed = not (self.session or isinstance(result, Reply | RawReply))
                first = await peek(result) if streamed else None
        except TimeoutError:
            router.stats.ended(key)
            if anyio.current_time() < self.deadline:
                raise  # not the budget's
            budget = self.policy.max_seconds
            error: GatewayError = UpstreamTimeoutError(
                f"No upstream answered within the request's budget of {budget:g} s "
                "(plugins.router.retry.max_seconds)."
            )
            _note(ctx, since, target, started, error)
            raise error from None
        except GatewayError as exc:
            router.stats.ended(key)
            _note(ctx, since, target, started, exc)
            await self._failed(target, exc, probe)
            raise
        except BaseException:  # cancelled (the client left), or a provider's bug
            router.stats.ended(key)
            raise
        latency = _note(ctx, since, target, started, None)
        router.stats.measured(key, latency)
        if probe:
            await router.health.success(key)

        def ended() -> None:
            router.stats.ended(key)

        async def broke(error: GatewayError) -> None:
            await self._broke(target, error)

        if isinstance(result, RawReply):
            result.chunks = WatchedBytes(result.chunks, ended, broke)
            return result
        if first is None:
            ended()
            return result
        return PeekedStream(first[0], first[1], result, ended, broke)

    async def _failed(self, target: Target, error: GatewayError, probe: bool) -> None:
        why = reason(error)
        if why in DEPLOYMENT_FAILURES:
            await self.router.health.failure(target.key)
        elif probe:  # it answered (a client error): it is up
            await self.router.health.success(target.key)
        wait = retry_after(error)
        if wait is not None:
            if wait > self.policy.max_retry_after:
                self.excluded.add(target.key)
            else:
                self.not_before[target.key] = anyio.current_time() + wait

    async def _broke(self, target: Target, error: GatewayError) -> None:
        """The stream broke after it was handed over: not retried, but it counts."""
        if reason(error) in DEPLOYMENT_FAILURES:
            await self.router.health.failure(target.key)


def _note(ctx: RequestContext, since: int, target: Target, started: float, error: GatewayError | None) -> float:
    """Make sure the try is in ``ctx.attempts`` (providers that are not `HTTPProvider`s record
    nothing) and shows how it failed; the try's milliseconds."""
    elapsed = (time.perf_counter() - started) * 1000.0
    if len(ctx.attempts) == since:
        status, message = (error.status_code, error.message) if error is not None else (200, None)
        ctx.attempts.append(Attempt(target.provider.name, target.route.upstream_model, status, message, elapsed))
    elif error is not None and ctx.attempts[-1].error is None:
        ctx.attempts[-1] = replace(ctx.attempts[-1], status_code=error.status_code, error=error.message)
    return elapsed
