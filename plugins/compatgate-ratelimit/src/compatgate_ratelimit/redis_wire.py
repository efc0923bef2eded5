"""The Redis wire for the Redis backend: RESP commands packed by hand, and a connection pool
that waits for a free connection (redis-py makes the connections)."""

from __future__ import annotations

import asyncio
from collections import deque

from redis.asyncio import ConnectionPool
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import ConnectionError as RedisConnectionError

__all__ = ["Connections", "bulk", "pack_command", "packed_int"]

_INTS_MAX = 4096  # packed integers kept


def bulk(value: bytes) -> bytes:
    """One RESP bulk string."""
    return b"$%d\r\n%s\r\n" % (len(value), value)


_INTS: dict[int, bytes] = {}  # packed integers (limits, costs, counts) seen lately


def packed_int(value: int) -> bytes:
    packed = _INTS.get(value)
    if packed is None:
        if len(_INTS) >= _INTS_MAX:
            _INTS.clear()
        digits = b"%d" % value
        packed = _INTS[value] = b"$%d\r\n%s\r\n" % (len(digits), digits)
    return packed


def pack_command(*parts: bytes) -> bytes:
    return b"*%d\r\n" % len(parts) + b"".join(bulk(p) for p in parts)


class Connections:
    """At most ``size`` connections; a call that finds them all busy waits for one (first come,
    first served) up to ``timeout`` seconds, and only then fails: what redis-py's
    `BlockingConnectionPool` does, without its per-call lock, timer and events. Connections
    come from redis-py's ``ConnectionPool.make_connection``, so the URL's options, AUTH, TLS
    and ``SELECT`` are redis-py's."""

    def __init__(self, factory: ConnectionPool, timeout: float) -> None:
        self.factory = factory
        self.size: int = factory.max_connections
        self.timeout = timeout
        self.idle: list[AbstractConnection] = []
        self.opened = 0
        self.waiters: deque[asyncio.Future[AbstractConnection]] = deque()
        self.closed = False

    async def acquire(self) -> AbstractConnection:
        if self.idle:
            return self.idle.pop()
        if self.closed:
            raise RedisConnectionError("the Redis backend is closed")
        if self.opened < self.size:
            self.opened += 1
            return self.factory.make_connection()  # it connects on its first command
        waiter: asyncio.Future[AbstractConnection] = asyncio.get_running_loop().create_future()
        self.waiters.append(waiter)
        try:
            async with asyncio.timeout(self.timeout):
                return await waiter
        except BaseException as exc:
            if waiter.done() and not waiter.cancelled():
                self.release(waiter.result())  # handed over just as we gave up: pass it on
            else:
                waiter.cancel()
                try:
                    self.waiters.remove(waiter)
                except ValueError:
                    pass
            if isinstance(exc, TimeoutError):
                raise RedisConnectionError(
                    f"no free connection within {self.timeout:g}s ({self.size} in use)"
                ) from None
            raise

    def release(self, connection: AbstractConnection) -> None:
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_result(connection)
                return
        self.idle.append(connection)

    async def close(self) -> None:
        self.closed = True
        idle, self.idle = self.idle, []
        for connection in idle:
            await connection.disconnect()
