"""The Redis backend: any number of gateway processes share the limits.

Each admission, settlement and renewal is one Lua script run with ``EVALSHA`` (one round trip;
the scripts are loaded at start-up, and loaded again when Redis answers ``NOSCRIPT``). The
commands are packed here (the parts that name a window or a pool once per window or pool) and
sent on redis-py connections, without redis-py's per-command layers. Every failure —
refused connection, timeout, a Redis error — becomes `BackendUnavailable`, which the plugin
answers with its ``on_backend_error`` policy.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from redis.asyncio import ConnectionPool
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from . import lua
from .backend import Backend, BackendUnavailable, Correction, Decision, Plan, PoolState, WindowState
from .redis_wire import Connections, bulk, pack_command, packed_int

__all__ = ["RedisBackend", "redacted"]

_RETRIED = (RedisConnectionError, RedisTimeoutError, OSError, TimeoutError)
_BATCHERS = 4  # batches in flight at once (each on a connection of its own)
_CACHE_MAX = 4096  # packed key/limit segments kept per backend (one per window and pool)


class RedisBackend(Backend):
    """Windows and leases in Redis, under keys ``{key_prefix}:<scope>:<limit>:<z|h|c>``.

    ``timeout`` bounds each attempt of a call (connecting, sending, reading the reply) and the
    wait for a free connection (seconds); a broken connection is retried once at once, so a
    Redis restart costs no request. At most ``max_connections`` connections are open (a
    ``max_connections`` query parameter in ``url`` wins); a call that finds them all busy waits
    for one (redis-py's default pool failed at once, which looked like Redis being down).
    ``clock`` (seconds), for tests, replaces the Redis server's time.

    The hot path sends each script call as one pre-packed ``EVALSHA`` (the key names and limits
    of each window and pool are encoded once and kept), and the admission script answers with
    one string of integers.
    """

    def __init__(
        self,
        url: str,
        *,
        key_prefix: str = "compatgate:ratelimit",
        timeout: float = 1.0,
        max_connections: int = 512,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.url = url
        self.tag = "{" + key_prefix + "}"
        self.timeout = timeout
        self.max_connections = max_connections
        self.clock = clock
        self.connections: Connections | None = None
        self._sha = {
            name: hashlib.sha1(getattr(lua, name).encode()).hexdigest().encode()
            for name in ("ADMIT", "SETTLE", "RENEW")
        }
        self._heads = {name: bulk(b"EVALSHA") + bulk(sha) for name, sha in self._sha.items()}
        self._windows: dict[tuple[str, int, int, int], tuple[bytes, bytes]] = {}
        self._pools: dict[tuple[str, int], tuple[bytes, bytes]] = {}
        self._pool_keys: dict[str, bytes] = {}
        self._queue: list[tuple[tuple[bytes, ...], asyncio.Future[Any]]] = []
        self._idle: list[asyncio.Future[None]] = []  # one per batcher waiting for work
        self._batchers: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        factory = ConnectionPool.from_url(
            self.url,
            max_connections=self.max_connections,  # unless the URL says max_connections=...
            socket_timeout=None,  # each call has one deadline of its own (see _call)
            socket_connect_timeout=self.timeout,
            retry=Retry(NoBackoff(), 1),
            health_check_interval=0,
        )
        self.max_connections = factory.max_connections
        self.connections = Connections(factory, self.timeout)
        self._batchers = [
            asyncio.create_task(self._batches(), name=f"compatgate-ratelimit redis {i}")
            for i in range(min(_BATCHERS, self.max_connections))
        ]
        for name in self._sha:  # loaded now, so that the first request is one round trip
            await self._call(pack_command(b"SCRIPT", b"LOAD", getattr(lua, name).encode()))

    async def close(self) -> None:
        batchers, self._batchers = self._batchers, []
        for batcher in batchers:
            batcher.cancel()
        await asyncio.gather(*batchers, return_exceptions=True)
        queue, self._queue = self._queue, []
        for _, future in queue:
            if not future.done():
                future.set_exception(RedisConnectionError("the Redis backend is closed"))
        if self.connections is not None:
            connections, self.connections = self.connections, None
            await connections.close()

    async def ping(self) -> None:
        await self._call(pack_command(b"PING"))

    async def admit(self, plan: Plan, lease: str, lease_ms: int, *, peek: bool = False) -> Decision:
        windows, pools = plan.windows, plan.pools
        keys: list[bytes] = []
        args: list[bytes] = [
            bulk(self._now()),
            b"$1\r\n1\r\n" if peek else b"$1\r\n0\r\n",
            bulk(lease.encode()),
            packed_int(lease_ms),
            packed_int(len(windows)),
            packed_int(len(pools)),
        ]
        cache = self._windows
        for window in windows:
            id_ = (window.key, window.limit, window.window_ms, window.quantum_ms)
            packed = cache.get(id_)
            if packed is None:
                packed = cache[id_] = self._window_segments(id_)
            keys.append(packed[0])
            args.append(packed[1])
            args.append(packed_int(window.cost))
        for pool in pools:
            pid = (pool.key, pool.limit)
            packed = self._pools.get(pid)
            if packed is None:
                if len(self._pools) >= _CACHE_MAX:
                    self._pools.clear()
                key = f"{self.tag}:{pool.key}:c".encode()
                packed = self._pools[pid] = (bulk(key), packed_int(pool.limit))
            keys.append(packed[0])
            args.append(packed[1])
        nkeys = 2 * len(windows) + len(pools)
        reply = await self._call(
            b"*%d\r\n" % (3 + nkeys + 6 + 4 * len(windows) + len(pools)),
            self._heads["ADMIT"],
            packed_int(nkeys),
            *keys,
            *args,
            script="ADMIT",
        )
        values = [int(x) for x in reply.split()]
        windows_state = tuple(
            WindowState(values[i], values[i + 1], values[i + 2])
            for i in range(2, 2 + 3 * len(windows), 3)
        )
        start = 2 + 3 * len(windows)
        pools_state = tuple(
            PoolState(values[j], values[j + 1]) for j in range(start, start + 2 * len(pools), 2)
        )
        return Decision(values[0] == 1, values[1], windows_state, pools_state)

    def _window_segments(self, id_: tuple[str, int, int, int]) -> tuple[bytes, bytes]:
        if len(self._windows) >= _CACHE_MAX:
            self._windows.clear()
        key, limit, window_ms, quantum_ms = id_
        base = f"{self.tag}:{key}"
        return (
            bulk(f"{base}:z".encode()) + bulk(f"{base}:h".encode()),
            packed_int(limit) + packed_int(window_ms) + packed_int(quantum_ms),
        )

    async def settle(
        self, corrections: Sequence[Correction], pools: Sequence[str], lease: str
    ) -> None:
        corrections = [c for c in corrections if c.delta]
        if not corrections and not pools:
            return
        keys: list[bytes] = []
        args: list[bytes] = [bulk(self._now()), packed_int(len(corrections)), bulk(lease.encode())]
        for correction in corrections:
            window = correction.window
            id_ = (window.key, window.limit, window.window_ms, window.quantum_ms)
            packed = self._windows.get(id_)
            if packed is None:
                packed = self._windows[id_] = self._window_segments(id_)
            keys.append(packed[0])
            args.append(
                packed_int(window.window_ms)
                + packed_int(window.quantum_ms)
                + packed_int(correction.at_ms)
                + packed_int(correction.delta)
            )
        for key in pools:
            packed_key = self._pool_keys.get(key)
            if packed_key is None:
                if len(self._pool_keys) >= _CACHE_MAX:
                    self._pool_keys.clear()
                packed_key = self._pool_keys[key] = bulk(f"{self.tag}:{key}:c".encode())
            keys.append(packed_key)
        nkeys = 2 * len(corrections) + len(pools)
        await self._call(
            b"*%d\r\n" % (3 + nkeys + 3 + 4 * len(corrections)),
            self._heads["SETTLE"],
            packed_int(nkeys),
            *keys,
            *args,
            script="SETTLE",
        )

    async def renew(self, leases: Sequence[tuple[str, str]], lease_ms: int) -> None:
        if not leases:
            return
        parts = [f"{self.tag}:{key}:c".encode() for key, _ in leases]
        parts += [self._now(), b"%d" % lease_ms, *(lease.encode() for _, lease in leases)]
        await self._call(
            b"*%d\r\n" % (3 + len(parts)),
            self._heads["RENEW"],
            packed_int(len(leases)),
            *(bulk(p) for p in parts),
            script="RENEW",
        )

    def _now(self) -> bytes:
        return b"" if self.clock is None else b"%d" % round(self.clock() * 1000)

    async def _call(self, *command: bytes, script: str | None = None) -> Any:
        """Send ``command`` (packed RESP) and wait for its reply: a broken connection is retried
        once at once, and a script Redis forgot is loaded again. Every failure is
        `BackendUnavailable`."""
        if self.connections is None:
            raise BackendUnavailable("the Redis backend is not started")
        for attempt in (1, 2):
            try:
                return await self._submit(command)
            except NoScriptError as exc:
                if script is None:
                    raise self._unavailable(exc) from exc
                load = pack_command(b"SCRIPT", b"LOAD", getattr(lua, script).encode())
                try:
                    await self._submit((load,))
                except (RedisError, OSError) as error:
                    raise self._unavailable(error) from error
                script = None
            except _RETRIED as exc:  # the batch's connection was closed: once more, reconnected
                if attempt == 2:
                    raise self._unavailable(exc) from exc
            except RedisError as exc:
                raise self._unavailable(exc) from exc
        raise BackendUnavailable(f"Redis at {redacted(self.url)}: NOSCRIPT after SCRIPT LOAD")

    async def _submit(self, command: tuple[bytes, ...]) -> Any:
        """Queue ``command`` for the next batch and wait (``timeout``) for its reply."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        queue = self._queue
        queue.append((command, future))
        if len(queue) == 1 and self._idle:  # the first of a batch wakes one idle batcher
            waking = self._idle.pop()
            if not waking.done():
                waking.set_result(None)
        # The batch reports its own failures (a connection that can't be had, or no reply,
        # each within ``timeout``); this deadline only guards against a batcher gone wrong.
        expiry = loop.call_later(2 * self.timeout + 0.1, self._expire, future)
        try:
            return await future
        finally:
            expiry.cancel()

    def _expire(self, future: asyncio.Future[Any]) -> None:
        if not future.done():
            future.set_exception(
                BackendUnavailable(
                    f"Redis at {redacted(self.url)}: no reply within {2 * self.timeout + 0.1:g}s"
                )
            )

    async def _batches(self) -> None:
        """One batcher: takes every queued command, sends them in one write on one connection,
        and hands the replies (Redis answers in order) to their callers; then the next batch.
        Commands queued while a batch is out go together in the next, so a busy gateway pays
        one write and one read for many calls."""
        loop = asyncio.get_running_loop()
        while True:
            while not self._queue:
                waiting: asyncio.Future[None] = loop.create_future()
                self._idle.append(waiting)
                try:
                    await waiting
                finally:
                    if not waiting.done():
                        self._idle.remove(waiting)
            batch, self._queue = self._queue, []
            live = [entry for entry in batch if not entry[1].done()]  # callers still waiting
            if live:
                await self._send(live)

    async def _send(self, batch: list[tuple[tuple[bytes, ...], asyncio.Future[Any]]]) -> None:
        connections = self.connections
        try:
            if connections is None:
                raise RedisConnectionError("the Redis backend is closed")
            connection = await connections.acquire()
            try:
                async with asyncio.timeout(self.timeout):
                    await connection.send_packed_command(
                        b"".join([part for command, _ in batch for part in command]),
                        check_health=False,
                    )
                    for _, future in batch:
                        try:
                            reply = await connection.read_response()
                        except ResponseError as exc:  # this command's error; the others go on
                            if not future.done():
                                future.set_exception(exc)
                            continue
                        if not future.done():
                            future.set_result(reply)
            except BaseException:
                await connection.disconnect(nowait=True)  # its replies can't be told apart now
                raise
            finally:
                if connections.closed:
                    await connection.disconnect(nowait=True)
                else:
                    connections.release(connection)
        except BaseException as exc:  # every caller of the batch hears of it (and may retry)
            if isinstance(exc, RedisError):
                error: Exception = exc
            elif isinstance(exc, TimeoutError):
                error = RedisConnectionError(f"no reply within {self.timeout:g}s")
            else:
                error = RedisConnectionError(f"{type(exc).__name__}: {exc}")
            for _, future in batch:
                if not future.done():
                    future.set_exception(error)
            if not isinstance(exc, Exception):
                raise

    def _unavailable(self, exc: BaseException) -> BackendUnavailable:
        if isinstance(exc, BackendUnavailable):
            return exc
        return BackendUnavailable(f"Redis at {redacted(self.url)}: {type(exc).__name__}: {exc}")


def redacted(url: str) -> str:
    """``url`` without its password, for logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))
