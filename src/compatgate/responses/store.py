"""Where the gateway keeps the responses it built, so ``previous_response_id`` can continue them.

``[gateway] response_store``: ``"sqlite"`` (the default; stdlib ``sqlite3`` in a worker thread,
at ``response_store_path``), ``"postgres"`` (asyncpg, at ``response_store_url``; install
``compatgate[postgres]``) or ``"off"``. Each turn is kept once: its Response object, the items
it added to the conversation (its input and its output) and a link to the previous response;
a conversation is read back by following the links (one recursive query). Only the key that
created a turn reads it. Turns expire after ``response_store_ttl_days`` (30 by default, as
OpenAI keeps them), and each key holds at most ``response_store_max_bytes``: beyond, its
oldest turns are dropped.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from typing import Any

import anyio
import orjson

from ..config import GatewaySettings
from ..exceptions import ConfigError

__all__ = ["PostgresStore", "ResponseStore", "SQLiteStore", "open_store"]

Body = dict[str, Any]

_SWEEP_EVERY = 600.0  # seconds between two deletions of expired turns
_MAX_DEPTH = 100_000  # links followed at most (a cycle cannot exist, but a bound costs nothing)

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS compatgate_response_turns (
        id TEXT PRIMARY KEY, key_id TEXT, previous_id TEXT, created_at BIGINT NOT NULL,
        expires_at BIGINT NOT NULL, size BIGINT NOT NULL, response TEXT NOT NULL, items TEXT NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS compatgate_response_turns_key ON compatgate_response_turns (key_id, created_at)",
    "CREATE INDEX IF NOT EXISTS compatgate_response_turns_expiry ON compatgate_response_turns (expires_at)",
)


class ResponseStore:
    """What a store does; keys are ``Principal.key_id`` values (None for no key)."""

    def __init__(self, settings: GatewaySettings) -> None:
        self.ttl_ms = int(settings.response_store_ttl_days * 86_400_000)
        self.max_bytes = settings.response_store_max_bytes
        self._swept = 0.0

    async def save(self, response: Body, items: list[Body], previous_id: str | None, key_id: str | None) -> None:
        """Keep one turn: the Response and the items it added (its input, then its output)."""
        now = _now_ms()
        content, added = orjson.dumps(response).decode(), orjson.dumps(items).decode()
        size = len(content) + len(added)
        row = (response["id"], key_id, previous_id, now, now + self.ttl_ms, size, content, added)
        await self._save(row, key_id, size)
        if time.monotonic() - self._swept > _SWEEP_EVERY:
            self._swept = time.monotonic()
            await self._sweep(now)

    async def load(self, response_id: str, key_id: str | None) -> Body | None:
        """The stored Response object, or None (unknown, expired or another key's)."""
        row = await self._load(response_id, key_id, _now_ms())
        return orjson.loads(row) if row is not None else None

    async def history(self, response_id: str, key_id: str | None) -> list[Body] | None:
        """Every item of the conversation up to and including ``response_id``, oldest first;
        None when the response, or a turn before it, is unknown, expired or another key's."""
        rows = await self._chain(response_id, key_id, _now_ms())
        if not rows or rows[-1][0] is not None:  # nothing, or the chain is missing a turn
            return None
        items: list[Body] = []
        for _, added in reversed(rows):
            items += orjson.loads(added)
        return items

    async def delete(self, response_id: str, key_id: str | None) -> bool:
        raise NotImplementedError

    async def aclose(self) -> None:
        """Release connections."""

    async def _save(self, row: tuple[Any, ...], key_id: str | None, size: int) -> None:
        raise NotImplementedError

    async def _load(self, response_id: str, key_id: str | None, now: int) -> str | None:
        raise NotImplementedError

    async def _chain(self, response_id: str, key_id: str | None, now: int) -> list[tuple[str | None, str]]:
        """(previous_id, items) of each turn from ``response_id`` back, newest first."""
        raise NotImplementedError

    async def _sweep(self, now: int) -> None:
        raise NotImplementedError


_CHAIN = """WITH RECURSIVE chain(id, previous_id, items, depth) AS (
    SELECT id, previous_id, items, 0 FROM compatgate_response_turns
    WHERE id = {p1} AND key_id IS NOT DISTINCT FROM {p2} AND expires_at > {p3}
    UNION ALL
    SELECT t.id, t.previous_id, t.items, c.depth + 1 FROM compatgate_response_turns t
    JOIN chain c ON t.id = c.previous_id
    WHERE t.key_id IS NOT DISTINCT FROM {p2} AND t.expires_at > {p3} AND c.depth < {depth}
) SELECT previous_id, items FROM chain ORDER BY depth"""


class SQLiteStore(ResponseStore):
    def __init__(self, settings: GatewaySettings) -> None:
        super().__init__(settings)
        self._db = sqlite3.connect(settings.response_store_path, check_same_thread=False)
        self._lock = threading.Lock()
        for statement in _SCHEMA:
            self._run(statement)

    def _run(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        with self._lock, self._db:
            return self._db.execute(sql, args).fetchall()

    async def _call(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        return await anyio.to_thread.run_sync(lambda: self._run(sql, *args))

    def _save_now(self, row: tuple[Any, ...], key_id: str | None, size: int) -> None:
        with self._lock, self._db:
            (used,) = self._db.execute("SELECT COALESCE(SUM(size), 0) FROM compatgate_response_turns "
                                       "WHERE key_id IS ?", (key_id,)).fetchone()
            oldest = self._db.execute("SELECT id, size FROM compatgate_response_turns WHERE key_id IS ? "
                                      "ORDER BY created_at", (key_id,))
            dropped = []
            for turn, turn_size in oldest:
                if used + size <= self.max_bytes:
                    break
                dropped.append((turn,))
                used -= turn_size
            self._db.executemany("DELETE FROM compatgate_response_turns WHERE id = ?", dropped)
            self._db.execute("INSERT OR REPLACE INTO compatgate_response_turns VALUES (?, ?, ?, ?, ?, ?, ?, ?)", row)

    async def _save(self, row: tuple[Any, ...], key_id: str | None, size: int) -> None:
        await anyio.to_thread.run_sync(self._save_now, row, key_id, size)

    async def _load(self, response_id: str, key_id: str | None, now: int) -> str | None:
        rows = await self._call("SELECT response FROM compatgate_response_turns WHERE id = ? AND key_id IS ? "
                                "AND expires_at > ?", response_id, key_id, now)
        return rows[0][0] if rows else None

    async def _chain(self, response_id: str, key_id: str | None, now: int) -> list[tuple[str | None, str]]:
        sql = _CHAIN.format(p1="?1", p2="?2", p3="?3", depth=_MAX_DEPTH).replace("IS NOT DISTINCT FROM", "IS")
        return [(row[0], row[1]) for row in await self._call(sql, response_id, key_id, now)]

    async def delete(self, response_id: str, key_id: str | None) -> bool:
        rows = await self._call("DELETE FROM compatgate_response_turns WHERE id = ? AND key_id IS ? "
                                "AND expires_at > ? RETURNING id", response_id, key_id, _now_ms())
        return bool(rows)

    async def _sweep(self, now: int) -> None:
        await self._call("DELETE FROM compatgate_response_turns WHERE expires_at <= ?", now)

    async def aclose(self) -> None:
        await anyio.to_thread.run_sync(self._db.close)


class PostgresStore(ResponseStore):
    def __init__(self, settings: GatewaySettings, pool: Any) -> None:
        super().__init__(settings)
        self._pool = pool

    @classmethod
    async def connect(cls, settings: GatewaySettings) -> PostgresStore:
        try:
            import asyncpg  # type: ignore[import-untyped]
        except ImportError:
            raise ConfigError("response_store = \"postgres\" needs asyncpg: install compatgate[postgres]") from None
        pool = await asyncpg.create_pool(settings.response_store_url, min_size=1, max_size=10)
        async with pool.acquire() as connection:
            for statement in _SCHEMA:
                await connection.execute(statement)
        return cls(settings, pool)

    async def _save(self, row: tuple[Any, ...], key_id: str | None, size: int) -> None:
        async with self._pool.acquire() as connection, connection.transaction():
            # The key's oldest turns beyond its quota go first (concurrent saves may overshoot a little).
            await connection.execute(
                """DELETE FROM compatgate_response_turns WHERE id IN (
                    SELECT id FROM (SELECT id, SUM(size) OVER (ORDER BY created_at DESC) AS kept
                                    FROM compatgate_response_turns WHERE key_id IS NOT DISTINCT FROM $1) t
                    WHERE kept + $2 > $3)""", key_id, size, self.max_bytes)
            await connection.execute(
                "INSERT INTO compatgate_response_turns VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (id) "
                "DO UPDATE SET response = EXCLUDED.response, items = EXCLUDED.items, size = EXCLUDED.size", *row)

    async def _load(self, response_id: str, key_id: str | None, now: int) -> str | None:
        value = await self._pool.fetchval(
            "SELECT response FROM compatgate_response_turns WHERE id = $1 AND key_id IS NOT DISTINCT FROM $2 "
            "AND expires_at > $3", response_id, key_id, now)
        return str(value) if value is not None else None

    async def _chain(self, response_id: str, key_id: str | None, now: int) -> list[tuple[str | None, str]]:
        sql = _CHAIN.format(p1="$1", p2="$2::text", p3="$3", depth=_MAX_DEPTH)
        return [(row[0], row[1]) for row in await self._pool.fetch(sql, response_id, key_id, now)]

    async def delete(self, response_id: str, key_id: str | None) -> bool:
        deleted = await self._pool.fetchval(
            "DELETE FROM compatgate_response_turns WHERE id = $1 AND key_id IS NOT DISTINCT FROM $2 "
            "AND expires_at > $3 RETURNING id", response_id, key_id, _now_ms())
        return deleted is not None

    async def _sweep(self, now: int) -> None:
        await self._pool.execute("DELETE FROM compatgate_response_turns WHERE expires_at <= $1", now)

    async def aclose(self) -> None:
        await self._pool.close()


async def open_store(settings: GatewaySettings) -> ResponseStore | None:
    """The store ``settings`` configure (expired turns deleted), or None when it is off."""
    if settings.response_store == "off":
        return None
    store: ResponseStore
    if settings.response_store == "postgres":
        store = await PostgresStore.connect(settings)
    else:
        store = await anyio.to_thread.run_sync(SQLiteStore, settings)
    store._swept = time.monotonic()
    await store._sweep(_now_ms())
    return store


def _now_ms() -> int:
    return int(time.time() * 1000)
