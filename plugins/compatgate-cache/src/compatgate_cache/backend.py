"""The storage a cache keeps its entries in: `MemoryBackend` (one process) or `RedisBackend`
(shared by every replica).

Both keep an entry until its TTL passes; the memory backend also drops the least recently used
entries to stay under ``max_bytes``. `purge` deletes every entry of a namespace, a model, both,
or all of them, and says how many. A backend that cannot be reached raises `BackendUnavailable`;
the plugin then answers without the cache (``x-compatgate-cache: bypass``), never with an error.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Protocol

from .entry import Entry
from .keys import CacheKey

__all__ = ["Backend", "BackendUnavailable", "MemoryBackend"]


class BackendUnavailable(Exception):
    """The backend cannot be used right now (connection refused, timeout, an error reply)."""


class Backend(Protocol):
    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def get(self, key: CacheKey) -> Entry | None: ...

    async def set(self, key: CacheKey, entry: Entry, ttl: float) -> bool: ...

    async def purge(self, namespace: str | None = None, model: str | None = None) -> int: ...


class MemoryBackend:
    """An LRU dictionary bounded by bytes (`Entry.cost`), in this process only: a purge through
    the admin API empties the process that answers it, and each worker of ``--workers N`` keeps
    its own entries. ``clock`` (seconds, monotonic) is replaceable for tests."""

    def __init__(self, max_bytes: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_bytes = max_bytes
        self.clock = clock
        self.bytes = 0
        self._entries: OrderedDict[CacheKey, tuple[Entry, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        self._entries.clear()
        self.bytes = 0

    def get_now(self, key: CacheKey) -> Entry | None:
        found = self._entries.get(key)
        if found is None:
            return None
        if found[1] <= self.clock():
            self._drop(key)
            return None
        self._entries.move_to_end(key)
        return found[0]

    async def get(self, key: CacheKey) -> Entry | None:
        return self.get_now(key)

    def set_now(self, key: CacheKey, entry: Entry, ttl: float) -> bool:
        """Keep ``entry`` (replacing the key's), evicting the least recently used entries over
        the bound; False when the entry alone exceeds it."""
        cost = entry.cost
        if cost > self.max_bytes:
            return False
        if key in self._entries:
            self._drop(key)
        self._entries[key] = (entry, self.clock() + ttl)
        self.bytes += cost
        while self.bytes > self.max_bytes:
            oldest = next(iter(self._entries))
            self._drop(oldest)
        return True

    async def set(self, key: CacheKey, entry: Entry, ttl: float) -> bool:
        return self.set_now(key, entry, ttl)

    async def purge(self, namespace: str | None = None, model: str | None = None) -> int:
        doomed = [
            key for key in self._entries
            if (namespace is None or key.namespace == namespace) and (model is None or key.model == model)
        ]  # fmt: skip
        for key in doomed:
            self._drop(key)
        return len(doomed)

    def _drop(self, key: CacheKey) -> None:
        entry, _ = self._entries.pop(key)
        self.bytes -= entry.cost
