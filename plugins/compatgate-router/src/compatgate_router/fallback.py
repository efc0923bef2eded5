"""`FallbackProvider`: the composite provider a routed request goes to. It tries the plan's
deployments — retries, fallbacks, backoff, cooldown — until one answers.

"Before the first byte": a try succeeds when its provider returned a complete answer or, for a
stream, when the stream's first chunk is in hand (it is read ahead, so that an upstream that
fails before producing anything — a reset, an empty or truncated stream, an error event, a slow
first token — can still be retried). The gateway sends nothing to the client before the
provider returns, so every retry happens before the client saw a byte; once the stream is handed
over, a failure is the client's error event and is never retried.
"""

from __future__ import annotations

import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any, cast

import anyio

from compatgate import (
    Attempt,
    Chunk,
    ChunkStream,
    GatewayError,
    Provider,
    Reply,
    RequestContext,
    UpstreamStreamError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
    call_provider,
)

from .failures import backoff, reason, retry_after, stream_error
from .plan import Plan, Target
from .selection import order
from .settings import DEPLOYMENT_FAILURES

if TYPE_CHECKING:
    from .plugin import Router

__all__ = ["ATTEMPTS_HEADER", "PROVIDER_HEADER", "FallbackProvider", "PeekedStream"]

PROVIDER_HEADER = "x-compatgate-provider"
ATTEMPTS_HEADER = "x-compatgate-attempts"

Body = dict[str, Any]


class FallbackProvider(Provider):
    """The deployments of one plan, tried in turn for one request.

    ``first`` is the order of the plan's first group, chosen at routing; the provider is named
    after the first of them (what ``ctx.route.provider.name`` says before the first try).
    Each try sets ``ctx.route`` to the deployment tried, so that providers read their model
    options there and `record_usage` names the deployment that answered.
    """

    type = "router"

    def __init__(self, router: Router, plan: Plan, first: list[Target]) -> None:
        super().__init__(router.provider_config(first[0].provider.name))
        self.router = router
        self.plan = plan
        self.first = first

    async def chat_completions(self, ctx: RequestContext, body: Body) -> Reply | ChunkStream:
        return await _Run(self, ctx, "chat_completions", body).run()

    async def completions(self, ctx: RequestContext, body: Body) -> Reply | ChunkStream:
        return await _Run(self, ctx, "completions", body).run()

    async def embeddings(self, ctx: RequestContext, body: Body) -> Reply:
        return cast(Reply, await _Run(self, ctx, "embeddings", body).run())


class _Run:
    """One request's tries: which deployments were tried, excluded, cooling, and when."""

    def __init__(self, provider: FallbackProvider, ctx: RequestContext, method: str, body: Body) -> None:
        self.router = provider.router
        self.policy = provider.router.settings.retry
        self.plan = provider.plan
        self.ctx, self.method, self.body = ctx, method, body
        self.orders: dict[int, list[Target]] = {0: provider.first}
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

    async def run(self) -> Reply | ChunkStream:
        error: GatewayError | None = None
        why: str | None = None
        try:
            while self.count < self.policy.max_attempts and anyio.current_time() < self.deadline:
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
            if target.key not in self.tries and target.key not in self.excluded and await self._admit(target):
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

    async def _try(self, target: Target) -> Reply | ChunkStream:
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
        body = {**self.body, "model": target.route.upstream_model}
        since, started = len(ctx.attempts), time.perf_counter()
        router.stats.started(key)
        try:
            with anyio.fail_after(max(self.deadline - anyio.current_time(), 0.0)):
                result = await call_provider(target.provider, ctx, self.method, body)
                first = None if isinstance(result, Reply) else await _peek(result)
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
        if isinstance(result, Reply) or first is None:
            router.stats.ended(key)
            return result
        return PeekedStream(first[0], first[1], result, lambda: router.stats.ended(key),
                            lambda exc: self._broke(target, exc))

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


async def _peek(stream: ChunkStream) -> tuple[Chunk, AsyncIterator[Chunk]]:
    """Read the stream's first chunk; a stream that fails before it is closed and its failure
    raised (an empty stream or a first event that is an error included)."""
    chunks = stream.__aiter__()
    try:
        try:
            first = await chunks.__anext__()
        except StopAsyncIteration:
            raise UpstreamStreamError("The upstream stream ended before its first chunk.") from None
        data = first.data
        if "error" in data and not data.get("choices"):
            raise stream_error(data["error"])
    except BaseException:
        with anyio.CancelScope(shield=True):
            await stream.aclose()
        raise
    return first, chunks


class PeekedStream:
    """A stream whose first chunk was read ahead: that chunk, then the rest as it comes.
    ``done`` runs once when it ends or is closed; ``broke`` when it fails after the handover."""

    def __init__(
        self,
        first: Chunk,
        chunks: AsyncIterator[Chunk],
        stream: ChunkStream,
        done: Callable[[], None],
        broke: Callable[[GatewayError], Awaitable[None]],
    ) -> None:
        self._first: Chunk | None = first
        self._chunks = chunks
        self._stream = stream
        self._done: Callable[[], None] | None = done
        self._broke = broke

    def __aiter__(self) -> PeekedStream:
        return self

    async def __anext__(self) -> Chunk:
        first = self._first
        if first is not None:
            self._first = None
            return first
        try:
            return await self._chunks.__anext__()
        except StopAsyncIteration:
            self._release()
            raise
        except GatewayError as exc:
            self._release()
            await self._broke(exc)
            raise

    async def aclose(self) -> None:
        self._release()
        await self._stream.aclose()

    def _release(self) -> None:
        done, self._done = self._done, None
        if done is not None:
            done()

    def __del__(self) -> None:  # a stream the gateway never relayed (a failing hook)
        self._release()
