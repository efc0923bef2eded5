"""Cooldown shared between replicas through Redis: the same circuits as `MemoryHealth`, one
atomic Lua script per step (one round trip), timed by the Redis server's clock so that the
replicas agree.

Keys, per deployment: ``{<prefix>}:<deployment>:c`` (a hash: ``open`` and ``probe``, epoch
milliseconds) and ``{<prefix>}:<deployment>:f`` (a sorted set of failure times). Both expire
on their own. When Redis cannot be reached (or errs) within ``timeout`` seconds, a deployment
counts as healthy (fail open: the router never refuses traffic because Redis is down) and a
warning is logged at most every 10 s.
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

import anyio
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from .health import ALLOWED, CLOSED, Admission, CircuitState, Health
from .settings import CooldownPolicy

__all__ = ["RedisHealth"]

logger = logging.getLogger("compatgate.router")

_WARN_EVERY = 10.0

_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

# ARGV: probe lease ms, circuit ttl ms -> {allowed, probe, wait ms}
ADMIT = _NOW + """
local open = tonumber(redis.call('HGET', KEYS[1], 'open') or '0')
if open == 0 then return {1, 0, 0} end
if now < open then return {0, 0, open - now} end
local probe = tonumber(redis.call('HGET', KEYS[1], 'probe') or '0')
if now < probe then return {0, 0, probe - now} end
redis.call('HSET', KEYS[1], 'probe', now + tonumber(ARGV[1]))
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return {1, 1, 0}
"""

# ARGV: window ms, failures, cooldown ms, circuit ttl ms, unique member -> 1 when it opened
FAILURE = _NOW + """
local open = tonumber(redis.call('HGET', KEYS[1], 'open') or '0')
if open > 0 then
  if now < open then return 0 end
  redis.call('HSET', KEYS[1], 'open', now + tonumber(ARGV[3]), 'probe', 0)
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
  return 1
end
redis.call('ZADD', KEYS[2], now, ARGV[5])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - tonumber(ARGV[1]))
redis.call('PEXPIRE', KEYS[2], ARGV[1])
if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[2]) then
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[1], 'open', now + tonumber(ARGV[3]), 'probe', 0)
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
  return 1
end
return 0
"""

# -> 1 when a half-open circuit closed
SUCCESS = _NOW + """
local open = tonumber(redis.call('HGET', KEYS[1], 'open') or '0')
if open > 0 and now >= open then
  redis.call('DEL', KEYS[1], KEYS[2])
  return 1
end
return 0
"""

# ARGV: window ms -> {open in ms from now (0: closed, -1: half-open), failures in the window}
STATE = _NOW + """
local open = tonumber(redis.call('HGET', KEYS[1], 'open') or '0')
local failures = redis.call('ZCOUNT', KEYS[2], '(' .. (now - tonumber(ARGV[1])), '+inf')
if open == 0 then return {0, failures} end
if now < open then return {open - now, failures} end
return {-1, failures}
"""


class RedisHealth(Health):
    """Circuits in Redis at ``url``; ``timeout`` bounds each connection attempt and reply."""

    def __init__(self, url: str, policy: CooldownPolicy, *, key_prefix: str, timeout: float) -> None:
        self.url = url
        self.policy = policy
        self.tag = "{" + key_prefix + "}"
        self.timeout = timeout
        self.client: Redis | None = None
        self._scripts: dict[str, Any] = {}
        self._warned = 0.0
        seconds_ms = int(policy.seconds * 1000)
        # A half-open circuit nobody probes is forgotten after this (it then counts as closed).
        self._ttl_ms = 2 * seconds_ms + int(policy.window * 1000)

    async def start(self) -> None:
        self.client = Redis.from_url(
            self.url,
            socket_timeout=self.timeout,
            socket_connect_timeout=self.timeout,
            retry=Retry(NoBackoff(), 1),  # a connection broken by a Redis restart: once, at once
            health_check_interval=0,
        )
        self._scripts = {
            "admit": self.client.register_script(ADMIT),
            "failure": self.client.register_script(FAILURE),
            "success": self.client.register_script(SUCCESS),
            "state": self.client.register_script(STATE),
        }

    async def close(self) -> None:
        if self.client is not None:
            client, self.client = self.client, None
            await client.aclose()

    async def ping(self) -> None:
        if self.client is None:
            raise RedisError("the Redis client is not started")
        with anyio.fail_after(self.timeout * 3):  # connect, reply, and the one retry
            await self.client.ping()

    def keys(self, key: str) -> list[str]:
        return [f"{self.tag}:{key}:c", f"{self.tag}:{key}:f"]

    async def admit(self, key: str) -> Admission:
        if self.policy.failures <= 0:
            return ALLOWED
        reply = await self._run("admit", key, [int(self.policy.seconds * 1000), self._ttl_ms])
        if reply is None:
            return ALLOWED
        allowed, probe, wait_ms = (int(value) for value in reply)
        return Admission(bool(allowed), bool(probe), wait_ms / 1000.0)

    async def failure(self, key: str) -> None:
        policy = self.policy
        if policy.failures <= 0:
            return
        member = uuid.uuid4().hex
        args = [int(policy.window * 1000), policy.failures, int(policy.seconds * 1000), self._ttl_ms, member]
        await self._run("failure", key, args)

    async def success(self, key: str) -> None:
        await self._run("success", key, [])

    async def state(self, key: str) -> CircuitState:
        reply = await self._run("state", key, [int(self.policy.window * 1000)])
        if reply is None:
            return CLOSED
        open_ms, failures = (int(value) for value in reply)
        if open_ms == 0:
            return CircuitState("closed", 0.0, failures)
        if open_ms < 0:
            return CircuitState("half-open", 0.0, failures)
        return CircuitState("open", open_ms / 1000.0, failures)

    async def _run(self, script: str, key: str, args: list[Any]) -> Any:
        if self.client is None:
            return None
        try:
            with anyio.fail_after(self.timeout * 3):  # connect, reply, and the one retry
                return await self._scripts[script](keys=self.keys(key), args=args)
        except (RedisError, OSError) as exc:  # TimeoutError is an OSError
            now = time.monotonic()
            if now - self._warned >= _WARN_EVERY:
                self._warned = now
                logger.warning("compatgate-router: Redis at %s failed (%s); cooldown state is "
                               "not shared until it is back", _redacted(self.url), type(exc).__name__)
            return None


def _redacted(url: str) -> str:
    """``url`` without its password."""
    scheme, sep, rest = url.partition("://")
    credentials, at, host = rest.rpartition("@")
    if not at:
        return url
    user = credentials.split(":", 1)[0]
    return f"{scheme}{sep}{user}:***@{host}" if user else f"{scheme}{sep}***@{host}"
