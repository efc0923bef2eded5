"""What the store needs of a database: statements written once with ``$1`` parameters, run by
a dialect's adapter (`SQLiteDatabase`, `PostgresDatabase`)."""

from __future__ import annotations

from collections.abc import Generator
from contextlib import AbstractAsyncContextManager
from typing import Any, Literal, Protocol, TypeVar

__all__ = ["Database", "Executor", "Row", "Steps"]

Row = tuple[Any, ...]
T = TypeVar("T")

# A transaction written once for both dialects: a generator that yields ``(sql, args)``
# statements, is sent each one's rows, and returns its result. `Database.run_steps` drives it,
# on SQLite all in the writer's thread (one hop, one commit), on PostgreSQL statement by statement.
Steps = Generator[tuple[str, tuple[Any, ...]], list[Row], T]


class Executor(Protocol):
    """Runs statements: on their own (each its own transaction) or inside a transaction."""

    async def fetch(self, sql: str, *args: Any) -> list[Row]: ...

    async def fetchrow(self, sql: str, *args: Any) -> Row | None: ...

    async def execute(self, sql: str, *args: Any) -> None: ...


class Database(Protocol):
    """One database. ``reader`` runs reads that need no transaction, ``writer`` single
    statements that write (each atomic), `transaction` several statements atomically.
    ``for_update`` is the row-lock clause of a ``SELECT`` (empty where the database serialises
    writers), ``skip_locked`` the clause that skips rows another transaction locked,
    ``day`` an expression for the UTC day (``YYYY-MM-DD``) of ``created_ms``, ``now`` the
    database's clock in Unix milliseconds (reservations expire by it, so that replicas on
    machines whose clocks differ agree on when). With ``coalesce_writes`` the store puts the
    writes that queue up while a transaction runs into the next one (see `WriteQueue`)."""

    for_update: str
    skip_locked: str
    day: str
    now: str
    coalesce_writes: bool

    @property
    def dialect(self) -> Literal["sqlite", "postgresql"]: ...

    @property
    def reader(self) -> Executor: ...

    @property
    def writer(self) -> Executor: ...

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    def transaction(self) -> AbstractAsyncContextManager[Executor]: ...

    async def run_steps(self, steps: Steps[T]) -> T:
        """Run ``steps`` (see `Steps`) as one transaction; return what they return."""
        ...

    async def lookup(self, sql: str, *args: Any) -> list[Row]:
        """A short read on the request path (authentication)."""
        ...

    async def lock_for_migration(self, tx: Executor) -> None:
        """Inside a transaction: wait until no other process migrates, make the namespace."""
        ...

    async def tables(self, executor: Executor | None = None) -> list[str]:
        """The names of the tables in the store's namespace (read through ``executor``, by
        default the reader)."""
        ...
