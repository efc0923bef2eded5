"""PostgreSQL through an asyncpg pool, for several gateway replicas sharing one database.

Every connection of the pool has ``search_path`` set to the configured schema, so the tables
live there (``schema = "billing"`` keeps them apart from an application's own). Statements run
in PostgreSQL's default READ COMMITTED isolation; where a statement must see the newest
version of a key's row it locks it (``FOR UPDATE``), see `Store.reserve`.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from .db import Executor, Row, Steps

if TYPE_CHECKING:
    import asyncpg  # type: ignore[import-untyped]

__all__ = ["PostgresDatabase"]


T = TypeVar("T")

class _Executor:
    """Statements on the pool (each on any free connection) or on one connection."""

    def __init__(self, target: asyncpg.Pool | asyncpg.Connection) -> None:
        self._target = target

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        return [tuple(record) for record in await self._target.fetch(sql, *args)]

    async def fetchrow(self, sql: str, *args: Any) -> Row | None:
        record = await self._target.fetchrow(sql, *args)
        return tuple(record) if record is not None else None

    async def execute(self, sql: str, *args: Any) -> None:
        await self._target.execute(sql, *args)


async def _reset(connection: asyncpg.Connection) -> None:
    """What a connection needs before it goes back to the pool. The store keeps no session
    state (no LISTEN, no session locks, no SET), so asyncpg's default reset query, a round trip
    on every release, is left out; only an interrupted transaction is rolled back."""
    if connection.is_in_transaction():
        await connection.execute("ROLLBACK")


class PostgresDatabase:
    """A PostgreSQL database (``postgresql://user@host:port/database``) and a schema in it."""

    dialect: Literal["postgresql"] = "postgresql"
    for_update = "FOR UPDATE"
    skip_locked = "FOR UPDATE SKIP LOCKED"
    day = "to_char(to_timestamp(created_ms / 1000) AT TIME ZONE 'UTC', 'YYYY-MM-DD')"
    now = "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)"
    coalesce_writes = False  # row locks let transactions run side by side

    def __init__(self, dsn: str, *, schema: str = "public", pool_size: int = 10) -> None:
        self._dsn = dsn
        self.schema = schema
        self._pool_size = pool_size
        self._pool: asyncpg.Pool | None = None

    def __repr__(self) -> str:  # never the DSN: it may carry a password
        return f"<PostgresDatabase schema={self.schema}>"

    async def open(self) -> None:
        import asyncpg  # imported here: SQLite users never load it

        self._pool = await asyncpg.create_pool(
            self._dsn,
            min_size=1,
            max_size=self._pool_size,
            timeout=10,
            command_timeout=60,
            server_settings={"search_path": self.schema, "application_name": "compatgate-billing"},
            reset=_reset,
        )

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()

    @property
    def reader(self) -> Executor:
        assert self._pool is not None, "the store is not open"
        return _Executor(self._pool)

    writer = reader

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Executor]:
        assert self._pool is not None, "the store is not open"
        async with self._pool.acquire() as connection, connection.transaction():
            yield _Executor(connection)

    async def run_steps(self, steps: Steps[T]) -> T:
        """Run ``steps`` in one transaction, statement by statement."""
        async with self.transaction() as tx:
            try:
                sql, args = next(steps)
                while True:
                    sql, args = steps.send(await tx.fetch(sql, *args))
            except StopIteration as stop:
                return stop.value  # type: ignore[no-any-return]

    async def lookup(self, sql: str, *args: Any) -> list[Row]:
        return await self.reader.fetch(sql, *args)

    async def lock_for_migration(self, tx: Executor) -> None:
        """A transaction-scoped advisory lock per schema, then the schema when it is missing
        (asked first: creating needs a privilege that using an existing schema does not)."""
        digest = hashlib.sha256(f"compatgate-billing:{self.schema}".encode()).digest()
        await tx.execute(
            "SELECT pg_advisory_xact_lock($1)", int.from_bytes(digest[:8], "big", signed=True)
        )
        if await tx.fetchrow("SELECT 1 FROM pg_namespace WHERE nspname = $1", self.schema) is None:
            await tx.execute(f'CREATE SCHEMA "{self.schema}"')

    async def tables(self, executor: Executor | None = None) -> list[str]:
        rows = await (executor or self.reader).fetch(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = $1 ORDER BY table_name",
            self.schema,
        )
        return [row[0] for row in rows]
