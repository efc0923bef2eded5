"""`RedisBackend`: entries shared by every gateway process, each with its own TTL.

One Redis key per entry, ``{key_prefix}:n<namespace>:m<model>:<digest>`` (namespace and model in
unpadded URL-safe base64, so no key name contains a glob character or a stray colon), holding
`Entry.encode` and set with ``PX`` = the entry's TTL. Reads and writes are one command each, on
redis-py's asyncio client over a pool that waits for a free connection up to ``timeout``; every
failure becomes `BackendUnavailable`. `purge` walks ``SCAN MATCH`` over the prefix (by namespace,
model, or everything) and ``UNLINK``s in batches, so it never blocks Redis.
"""

from __future__ import annotations

import base64

from redis.asyncio import BlockingConnectionPool, Redis
from redis.exceptions import RedisError

from .backend import BackendUnavailable
from .entry import Entry, EntryError
from .keys import CacheKey

__all__ = ["RedisBackend", "segment"]

_BATCH = 500


def segment(kind: str, value: str) -> str:
    """A namespace (``n``) or model (``m``) as one part of a Redis key name."""
    return kind + base64.urlsafe_b64encode(value.encode()).decode().rstrip("=")


class RedisBackend:
    def __init__(self, url: str, *, key_prefix: str, timeout: float, max_connections: int) -> None:
        self.url = url
        self.prefix = key_prefix
        self.timeout = timeout
        self.max_connections = max_connections
        self.client: Redis | None = None

    def name(self, key: CacheKey) -> str:
        return f"{self.prefix}:{segment('n', key.namespace)}:{segment('m', key.model)}:{key.digest}"

    async def start(self) -> None:
        pool = BlockingConnectionPool.from_url(
            self.url,
            max_connections=self.max_connections,
            timeout=self.timeout,
            socket_timeout=self.timeout,
            socket_connect_timeout=self.timeout,
            health_check_interval=0,
        )
        self.client = Redis(connection_pool=pool)
        try:
            await self.client.ping()
        except (RedisError, OSError) as exc:
            raise BackendUnavailable(_describe(exc)) from None

    async def close(self) -> None:
        if self.client is not None:
            client, self.client = self.client, None
            await client.aclose(close_connection_pool=True)

    def _client(self) -> Redis:
        if self.client is None:
            raise BackendUnavailable("the Redis backend is not started")
        return self.client

    async def get(self, key: CacheKey) -> Entry | None:
        try:
            data = await self._client().get(self.name(key))
        except (RedisError, OSError) as exc:
            raise BackendUnavailable(_describe(exc)) from None
        if data is None:
            return None
        try:
            return Entry.decode(data)
        except EntryError:  # written by another version, or damaged: a miss, overwritten later
            return None

    async def set(self, key: CacheKey, entry: Entry, ttl: float) -> bool:
        try:
            await self._client().set(self.name(key), entry.encode(), px=max(1, int(ttl * 1000)))
        except (RedisError, OSError) as exc:
            raise BackendUnavailable(_describe(exc)) from None
        return True

    async def purge(self, namespace: str | None = None, model: str | None = None) -> int:
        ns = segment("n", namespace) if namespace is not None else "*"
        name = segment("m", model) if model is not None else "*"
        pattern = f"{self.prefix}:{ns}:{name}:*"
        client = self._client()
        deleted = 0
        batch: list[bytes] = []
        try:
            async for found in client.scan_iter(match=pattern, count=1000):
                batch.append(found)
                if len(batch) >= _BATCH:
                    deleted += await client.unlink(*batch)
                    batch.clear()
            if batch:
                deleted += await client.unlink(*batch)
        except (RedisError, OSError) as exc:
            raise BackendUnavailable(_describe(exc)) from None
        return deleted


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"
