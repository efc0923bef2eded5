"""Where the gateway keeps the responses it built, so ``previous_response_id`` can continue them.

``[gateway] response_store``: ``"sqlite"`` (the default; stdlib ``sqlite3`` in a worker thread,
at ``response_store_path``), ``"postgres"`` (asyncpg, at ``response_store_url``; install
``compatgate[postgres]``) or ``"off"``. Each entry keeps the Response object, the conversation
items up to and including its output, and the key that created it: only that key reads it.
The store opens on first use and closes with the gateway.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from typing import TYPE_CHECKING, Any

import anyio
import orjson

from ..exceptions import ConfigError

if TYPE_CHECKING:
    from ..gateway import Gateway

__all__ = ["PostgresStore", "ResponseStore", "SQLiteStore", "close_store", "open_store"]

Body = dict[str, Any]
Entry = tuple[Body, list[Body]]  # the Response object, the conversation items

_STATE = "compatgate.responses.store"
_TABLE = """CREATE TABLE IF NOT EXISTS compatgate_responses (
    id TEXT PRIMARY KEY, key_id TEXT, created_at BIGINT, response TEXT, items TEXT)"""


class ResponseStore:
    """What a store does; keys are ``Principal.key_id`` values (None for no key)."""

    async def save(self, response: Body, items: list[Body], key_id: str | None) -> None:
        raise NotImplementedError

    async def load(self, response_id: str, key_id: str | None) -> Entry | None:
        raise NotImplementedError

    async def delete(self, response_id: str, key_id: str | None) -> bool:
        raise NotImplementedError

    async def aclose(self) -> None:
        """Release connections."""


class SQLiteStore(ResponseStore):
    def __init__(self, path: str) -> None:
        self._db = sqlite3.connect(path, check_same_thread=False)
        self._lock = threading.Lock()
        self._run(_TABLE)

    def _run(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        with self._lock, self._db:
            return self._db.execute(sql, args).fetchall()

    async def _call(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        return await anyio.to_thread.run_sync(lambda: self._run(sql, *args))

    async def save(self, response: Body, items: list[Body], key_id: str | None) -> None:
        await self._call("INSERT OR REPLACE INTO compatgate_responses VALUES (?, ?, ?, ?, ?)",
                         *_row(response, items, key_id))

    async def load(self, response_id: str, key_id: str | None) -> Entry | None:
        rows = await self._call("SELECT response, items, key_id FROM compatgate_responses WHERE id = ?",
                                response_id)
        return _entry(rows[0], key_id) if rows else None

    async def delete(self, response_id: str, key_id: str | None) -> bool:
        if await self.load(response_id, key_id) is None:
            return False
        await self._call("DELETE FROM compatgate_responses WHERE id = ?", response_id)
        return True

    async def aclose(self) -> None:
        await anyio.to_thread.run_sync(self._db.close)


class PostgresStore(ResponseStore):
    def __init__(self, pool: Any) -> None:
        self._pool = pool

    @classmethod
    async def connect(cls, url: str) -> PostgresStore:
        try:
            import asyncpg
        except ImportError:
            raise ConfigError("response_store = \"postgres\" needs asyncpg: install compatgate[postgres]") from None
        pool = await asyncpg.create_pool(url, min_size=1, max_size=10)
        await pool.execute(_TABLE)
        return cls(pool)

    async def save(self, response: Body, items: list[Body], key_id: str | None) -> None:
        await self._pool.execute(
            "INSERT INTO compatgate_responses VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO UPDATE "
            "SET response = EXCLUDED.response, items = EXCLUDED.items", *_row(response, items, key_id))

    async def load(self, response_id: str, key_id: str | None) -> Entry | None:
        row = await self._pool.fetchrow(
            "SELECT response, items, key_id FROM compatgate_responses WHERE id = $1", response_id)
        return _entry(tuple(row), key_id) if row is not None else None

    async def delete(self, response_id: str, key_id: str | None) -> bool:
        if await self.load(response_id, key_id) is None:
            return False
        await self._pool.execute("DELETE FROM compatgate_responses WHERE id = $1", response_id)
        return True

    async def aclose(self) -> None:
        await self._pool.close()


def _row(response: Body, items: list[Body], key_id: str | None) -> tuple[Any, ...]:
    return (response["id"], key_id, response.get("created_at") or 0,
            orjson.dumps(response).decode(), orjson.dumps(items).decode())


def _entry(row: tuple[Any, ...], key_id: str | None) -> Entry | None:
    response, items, owner = row
    if owner != key_id:
        return None
    return orjson.loads(response), orjson.loads(items)


async def open_store(gateway: Gateway) -> ResponseStore | None:
    """The gateway's store (opened on first use), or None when ``response_store = "off"``."""
    settings = gateway.config.gateway
    if settings.response_store == "off":
        return None
    store = gateway.state.get(_STATE)
    if store is None:
        lock = gateway.state.setdefault(_STATE + ".lock", asyncio.Lock())
        async with lock:
            store = gateway.state.get(_STATE)
            if store is None:
                if settings.response_store == "postgres":
                    store = await PostgresStore.connect(settings.response_store_url or "")
                else:
                    store = await anyio.to_thread.run_sync(SQLiteStore, settings.response_store_path)
                gateway.state[_STATE] = store
    return store


async def close_store(gateway: Gateway) -> None:
    store = gateway.state.pop(_STATE, None)
    if store is not None:
        await store.aclose()
