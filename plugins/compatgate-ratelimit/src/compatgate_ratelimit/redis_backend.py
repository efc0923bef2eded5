"""The Redis backend: any number of gateway processes share the limits.

Each admission, settlement and renewal is one Lua script run with ``EVALSHA`` (one round trip;
the scripts are loaded at start-up, and ``redis`` reloads one Redis forgot). Every failure —
refused connection, timeout, a Redis error — becomes `BackendUnavailable`, which the plugin
answers with its ``on_backend_error`` policy.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from . import lua
from .backend import Backend, BackendUnavailable, Correction, Decision, Plan, PoolState, WindowState

__all__ = ["RedisBackend", "redacted"]


class RedisBackend(Backend):
    """Windows and leases in Redis, under keys ``{key_prefix}:<scope>:<limit>:<z|h|c>``.

    ``timeout`` bounds each connection attempt and reply (seconds); a broken connection is
    retried once at once, so a Redis restart costs no request. ``clock`` (seconds), for tests,
    replaces the Redis server's time.
    """

    def __init__(
        self,
        url: str,
        *,
        key_prefix: str = "compatgate:ratelimit",
        timeout: float = 1.0,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.url = url
        self.tag = "{" + key_prefix + "}"
        self.timeout = timeout
        self.clock = clock
        self.client: Redis | None = None
        self._scripts: dict[str, Any] = {}

    async def start(self) -> None:
        client = self.client = Redis.from_url(
            self.url,
            socket_timeout=self.timeout,
            socket_connect_timeout=self.timeout,
            retry=Retry(NoBackoff(), 1),
            health_check_interval=0,
        )
        self._scripts = {
            name: client.register_script(getattr(lua, name))
            for name in ("ADMIT", "SETTLE", "RENEW")
        }
        for name in self._scripts:  # loaded now, so that the first request is one round trip

            async def load(source: str = getattr(lua, name)) -> Any:
                return await client.script_load(source)

            await self._run(load)

    async def close(self) -> None:
        if self.client is not None:
            client, self.client = self.client, None
            await client.aclose()

    async def admit(self, plan: Plan, lease: str, lease_ms: int, *, peek: bool = False) -> Decision:
        keys: list[str] = []
        args: list[Any] = [
            self._now(),
            1 if peek else 0,
            lease,
            lease_ms,
            len(plan.windows),
            len(plan.pools),
        ]
        for window in plan.windows:
            keys += [f"{self.tag}:{window.key}:z", f"{self.tag}:{window.key}:h"]
            args += [window.limit, window.window_ms, window.quantum_ms, window.cost]
        for pool in plan.pools:
            keys.append(f"{self.tag}:{pool.key}:c")
            args.append(pool.limit)
        reply = [int(x) for x in await self._script("ADMIT", keys, args)]
        nw = len(plan.windows)
        windows = tuple(WindowState(*reply[2 + 3 * i : 5 + 3 * i]) for i in range(nw))
        start = 2 + 3 * nw
        pools = tuple(
            PoolState(*reply[start + 2 * j : start + 2 + 2 * j]) for j in range(len(plan.pools))
        )
        return Decision(bool(reply[0]), reply[1], windows, pools)

    async def settle(
        self, corrections: Sequence[Correction], pools: Sequence[str], lease: str
    ) -> None:
        corrections = [c for c in corrections if c.delta]
        if not corrections and not pools:
            return
        keys: list[str] = []
        args: list[Any] = [self._now(), len(corrections), lease]
        for correction in corrections:
            window = correction.window
            keys += [f"{self.tag}:{window.key}:z", f"{self.tag}:{window.key}:h"]
            args += [window.window_ms, window.quantum_ms, correction.at_ms, correction.delta]
        keys += [f"{self.tag}:{key}:c" for key in pools]
        await self._script("SETTLE", keys, args)

    async def renew(self, leases: Sequence[tuple[str, str]], lease_ms: int) -> None:
        if not leases:
            return
        keys = [f"{self.tag}:{key}:c" for key, _ in leases]
        await self._script("RENEW", keys, [self._now(), lease_ms, *(lease for _, lease in leases)])

    def _now(self) -> str:
        return "" if self.clock is None else str(round(self.clock() * 1000))

    async def _script(self, name: str, keys: list[str], args: list[Any]) -> Any:
        if self.client is None:
            raise BackendUnavailable("the Redis backend is not started")
        script = self._scripts[name]
        return await self._run(lambda: script(keys=keys, args=args))

    async def _run(self, call: Callable[[], Awaitable[Any]]) -> Any:
        try:
            # The socket timeouts bound each attempt; this bounds the retry and the pool too.
            async with asyncio.timeout(self.timeout * 3):
                return await call()
        except (RedisError, OSError, TimeoutError) as exc:
            raise BackendUnavailable(
                f"Redis at {redacted(self.url)}: {type(exc).__name__}: {exc}"
            ) from exc


def redacted(url: str) -> str:
    """``url`` without its password, for logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))
