"""SQLite through the standard `sqlite3` module, each connection in a thread of its own.

Why not aiosqlite: it too runs a connection in a thread, so it would add a dependency without
changing how this works; here the connection is opened the way the store needs (autocommit,
WAL, a busy timeout, foreign keys) and transactions are explicit ``BEGIN IMMEDIATE``.

Two connections per process in threads: a *reader* (reads that need no transaction), which WAL
lets run while another connection or process writes, and a *writer* for everything that writes.
SQLite lets one writer at a time into the database, across processes; a statement that writes
takes that lock before it reads anything, and waits up to the busy timeout for it. That is what
makes the reservation statement atomic here (see `Store.reserve`). A transaction (`run_steps`)
runs all its statements in the writer's thread: one hop and one commit for a whole batch.

A third connection, read-only, serves the key lookups on the request path (`lookup`) inline on
the event loop: a WAL read never waits for writers, and its busy timeout is 0, so in the rare
case SQLite says busy the lookup goes to the reader's thread instead of blocking the loop.
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

from .db import Executor, Row, Steps

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

    def _run_steps(self, steps: Steps[T]) -> T:
        """Drive ``steps`` (see `Steps`) in one ``BEGIN IMMEDIATE`` transaction, in this thread:
        a whole batch of statements costs one hop to the thread and one commit."""
        connection = self._connection
        assert connection is not None, "the SQLite connection is closed"
        connection.execute("BEGIN IMMEDIATE")
        try:
            try:
                sql, args = next(steps)
                while True:
                    cursor = connection.execute(_sql(sql), args)
                    try:
                        rows = cursor.fetchall()
                    finally:
                        cursor.close()
                    sql, args = steps.send(rows)
            except StopIteration as stop:
                result: T = stop.value
            connection.execute("COMMIT")
            return result
        except BaseException:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            raise

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

    async def run_steps(self, steps: Steps[T]) -> T:
        return await self.call(self._run_steps, steps)

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

    # Writes are coalesced: `Store` puts the reservations and ledger batches that queue up while
    # a transaction runs into the next one (one hop to the writer's thread, one commit).
    coalesce_writes = True

    def __init__(self, path: Path, *, busy_timeout: float = 30.0) -> None:
        self.path = path
        self._busy_timeout = busy_timeout
        self._writer: _Connection | None = None
        self._reader: _Connection | None = None
        self._inline: sqlite3.Connection | None = None
        self._lock: asyncio.Lock | None = None

    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        writer = _Connection(self.path, self._busy_timeout, "writer")
        await writer.open()  # the writer first: it switches the file to WAL
        reader = _Connection(self.path, self._busy_timeout, "reader")
        await reader.open()
        # A third connection, read-only and used only from the event loop's thread, for the
        # one-row lookups on the request path: in WAL mode a read never waits for writers, so
        # it runs inline (a few microseconds) instead of hopping to the reader's thread. Its
        # busy timeout is 0: in the rare case SQLite says busy, the lookup goes to the reader.
        inline = sqlite3.connect(
            f"{self.path.resolve().as_uri()}?mode=ro",
            uri=True,
            timeout=0,
            isolation_level=None,
            check_same_thread=False,
        )
        self._writer, self._reader, self._inline = writer, reader, inline
        self._lock = asyncio.Lock()

    async def close(self) -> None:
        if self._inline is not None:
            self._inline.close()
            self._inline = None
        for connection in (self._reader, self._writer):
            if connection is not None:
                await connection.close()
        self._reader = self._writer = None

    async def lookup(self, sql: str, *args: Any) -> list[Row]:
        """A short read on the request path: inline on the event loop when SQLite can answer at
        once (WAL: readers never wait for writers), else in the reader's thread."""
        inline = self._inline
        if inline is not None:
            try:
                cursor = inline.execute(_sql(sql), args)
                try:
                    return cursor.fetchall()
                finally:
                    cursor.close()
            except sqlite3.OperationalError:  # busy (e.g. a WAL being recovered): wait in a thread
                pass
        assert self._reader is not None, "the store is not open"
        return await self._reader.fetch(sql, args)

    async def run_steps(self, steps: Steps[T]) -> T:
        """Run ``steps`` as one transaction on the writer (one hop to its thread)."""
        assert self._writer is not None and self._lock is not None, "the store is not open"
        async with self._lock:
            return await self._writer.run_steps(steps)

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
