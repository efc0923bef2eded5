"""SQLite through the standard `sqlite3` module, each connection in a thread of its own.

Why not aiosqlite: it too runs a connection in a thread, so it would add a dependency without
changing how this works; here the connection is opened the way the store needs (autocommit,
WAL, a busy timeout, foreign keys) and transactions are explicit ``BEGIN IMMEDIATE``.

Two connections per process: a *reader* for the lookups on the request path (authentication),
which WAL lets run while another connection or process writes, and a *writer* for everything
that writes. SQLite lets one writer at a time into the database, across processes; a statement
that writes takes that lock before it reads anything, and waits up to the busy timeout for it.
That is what makes the reservation statement atomic here (see `Store.reserve`).
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal, TypeVar

from .db import Executor, Row

__all__ = ["SQLiteDatabase"]

T = TypeVar("T")
_PARAMETER = re.compile(r"\$(\d+)")


@lru_cache(maxsize=256)
def _sql(sql: str) -> str:
    """``$1`` → ``?1``: SQLite's numbered parameters, so statements are written once."""
    return _PARAMETER.sub(r"?\1", sql)


class _Connection:
    """One sqlite3 connection, used only from its own thread."""

    def __init__(self, path: Path, busy_timeout: float, name: str) -> None:
        self._path = path
        self._busy_timeout = busy_timeout
        self._thread = ThreadPoolExecutor(1, thread_name_prefix=f"compatgate-billing-{name}")
        self._connection: sqlite3.Connection | None = None

    async def call(self, function: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._thread, function, *args)

    def _connect(self) -> None:
        connection = sqlite3.connect(
            self._path, timeout=self._busy_timeout, isolation_level=None, check_same_thread=False
        )
        connection.execute("PRAGMA journal_mode = WAL")
        connection.execute("PRAGMA synchronous = NORMAL")
        connection.execute("PRAGMA foreign_keys = ON")
        self._connection = connection

    def _fetch(self, sql: str, args: tuple[Any, ...]) -> list[Row]:
        assert self._connection is not None, "the SQLite connection is closed"
        cursor = self._connection.execute(_sql(sql), args)
        try:
            return cursor.fetchall()
        finally:
            cursor.close()

    def rollback(self) -> None:
        """Roll back the open transaction, if any (after a failed statement or ``COMMIT``)."""
        if self._connection is not None and self._connection.in_transaction:
            self._connection.execute("ROLLBACK")

    def _close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    async def open(self) -> None:
        await self.call(self._connect)

    async def fetch(self, sql: str, args: tuple[Any, ...]) -> list[Row]:
        return await self.call(self._fetch, sql, args)

    async def close(self) -> None:
        try:
            await self.call(self._close)
        finally:
            self._thread.shutdown(wait=True)


class _Executor:
    """Statements on one connection; with a lock, each statement holds it (so that no statement
    slips into a transaction another task has open on the same connection)."""

    def __init__(self, connection: _Connection, lock: asyncio.Lock | None) -> None:
        self._connection = connection
        self._lock = lock

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        if self._lock is None:
            return await self._connection.fetch(sql, args)
        async with self._lock:
            return await self._connection.fetch(sql, args)

    async def fetchrow(self, sql: str, *args: Any) -> Row | None:
        rows = await self.fetch(sql, *args)
        return rows[0] if rows else None

    async def execute(self, sql: str, *args: Any) -> None:
        await self.fetch(sql, *args)


class SQLiteDatabase:
    """An SQLite file in WAL mode, shared safely by any number of processes on one machine."""

    dialect: Literal["sqlite"] = "sqlite"
    for_update = ""
    skip_locked = ""
    day = "strftime('%Y-%m-%d', created_ms / 1000, 'unixepoch')"
    now = "CAST((julianday('now') - 2440587.5) * 86400000.0 AS BIGINT)"

    def __init__(self, path: Path, *, busy_timeout: float = 30.0) -> None:
        self.path = path
        self._busy_timeout = busy_timeout
        self._writer: _Connection | None = None
        self._reader: _Connection | None = None
        self._lock: asyncio.Lock | None = None

    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        writer = _Connection(self.path, self._busy_timeout, "writer")
        await writer.open()  # the writer first: it switches the file to WAL
        reader = _Connection(self.path, self._busy_timeout, "reader")
        await reader.open()
        self._writer, self._reader, self._lock = writer, reader, asyncio.Lock()

    async def close(self) -> None:
        for connection in (self._reader, self._writer):
            if connection is not None:
                await connection.close()
        self._reader = self._writer = None

    @property
    def reader(self) -> Executor:
        assert self._reader is not None, "the store is not open"
        return _Executor(self._reader, None)

    @property
    def writer(self) -> Executor:
        assert self._writer is not None and self._lock is not None, "the store is not open"
        return _Executor(self._writer, self._lock)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Executor]:
        assert self._writer is not None and self._lock is not None, "the store is not open"
        connection = self._writer
        async with self._lock:
            try:
                await connection.fetch("BEGIN IMMEDIATE", ())
                yield _Executor(connection, None)
                await connection.fetch("COMMIT", ())
            except BaseException:  # the rollback queues behind whatever the thread still runs
                await asyncio.shield(connection.call(connection.rollback))
                raise

    async def lock_for_migration(self, tx: Executor) -> None:
        """``BEGIN IMMEDIATE`` already holds the database's write lock."""

    async def tables(self, executor: Executor | None = None) -> list[str]:
        rows = await (executor or self.reader).fetch(
            "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
        )
        return [row[0] for row in rows if not row[0].startswith("sqlite_")]
