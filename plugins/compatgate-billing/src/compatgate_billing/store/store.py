"""Everything billing keeps, on either database: keys, credits, reservations and the ledger.

The two statements that guard money, on both databases:

- `reserve` is ONE statement: it inserts the reservation only if the key's row shows
  ``balance_micro - reserved_micro >= amount``, and a trigger adds the amount to
  ``reserved_micro`` inside that same statement. On SQLite the statement holds the database's
  write lock from its first read to its commit; on PostgreSQL the key's row is locked
  (``FOR UPDATE``) and, when another transaction changed it meanwhile, the condition is
  evaluated again on the newest version. Either way no two reservations can both see the same
  free money.
- `settle` (one transaction per batch) skips an entry whose ledger row exists (a write
  retried adds nothing), deletes the reservation (the trigger gives it back), and charges the
  real cost, at most what the key has free, so the balance never goes below what other
  requests hold; the row is inserted with what was reserved and charged.

On SQLite (``coalesce_writes``), the writes that queue up while a transaction runs go together
into the next one (`WriteQueue`, in coalesce.py), each statement as above.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

from .coalesce import WriteQueue
from .db import Database, Executor, Row, Steps
from .models import BalanceError, CreditEntry, KeyRecord, LedgerEntry
from .schema import VERSION_TABLE, migrations
from .totals import usage_totals

__all__ = ["AUTH_COLUMNS", "Store", "StoreError", "now_ms"]

_KEY_COLUMNS = KeyRecord.COLUMNS
_CREDIT_COLUMNS = "id, key_id, kind, amount_micro, balance_after_micro, note, created_ms"
# What authentication reads of a key (not its balances, which change with every request).
AUTH_COLUMNS = "secret_hash, status, expires_ms, allowed_models, metadata, unlimited"
_INSERT_USAGE = (
    f"INSERT INTO billing_usage ({LedgerEntry.COLUMNS}, reserved_micro, charged_micro) VALUES "
    f"({', '.join(f'${i}' for i in range(1, len(LedgerEntry.COLUMNS.split(',')) + 3))}) "
    "ON CONFLICT (id) DO NOTHING RETURNING id"
)
_EXISTS = "SELECT 1 FROM billing_usage WHERE id = $1"
_RELEASE = "DELETE FROM billing_reservations WHERE id = $1 RETURNING amount_micro, key_id"
_CHARGE = (
    "UPDATE billing_keys SET balance_micro = balance_micro - $2, spent_micro = spent_micro + $2 "
    "WHERE id = $1"
)


class StoreError(Exception):
    """The database cannot be used as it is (e.g. a schema newer than this plugin)."""


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class Store:
    """The billing tables of one database (see `Database` for the dialects)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._reserve_sql = (
            "INSERT INTO billing_reservations (id, key_id, amount_micro, owner, created_ms, expires_ms) "
            f"SELECT CAST($1 AS TEXT), id, CAST($2 AS BIGINT), CAST($3 AS TEXT), {db.now}, {db.now} + $4 "
            "FROM billing_keys WHERE id = $5 AND status = 'active' AND balance_micro - reserved_micro >= $2 "
            f"{db.for_update} RETURNING id"
        )
        self._charge_sql = (
            "SELECT balance_micro, reserved_micro, unlimited FROM billing_keys WHERE id = $1 "
            f"{db.for_update}"
        )
        self._auth_sql = f"SELECT {AUTH_COLUMNS} FROM billing_keys WHERE id = $1"
        # SQLite: writes queued while a transaction runs go together into the next one
        self._queue = WriteQueue(db.run_steps, self._settle_steps, self._reserve_steps)

    async def open(self, *, migrate: bool = True) -> None:
        await self.db.open()
        if migrate:
            try:
                await self.migrate()
            except BaseException:
                await self.db.close()
                raise

    async def close(self) -> None:
        await self._queue.drain()  # let what is queued commit first
        await self.db.close()

    async def migrate(self) -> int:
        """Bring the schema to the newest version (once, whoever races); return that version."""
        steps = migrations(self.db.dialect)
        async with self.db.transaction() as tx:
            await self.db.lock_for_migration(tx)
            if VERSION_TABLE not in await self.db.tables(tx):
                await tx.execute(
                    f"CREATE TABLE {VERSION_TABLE} (version INTEGER NOT NULL, applied_ms BIGINT NOT NULL)"
                )
            row = await tx.fetchrow(f"SELECT MAX(version) FROM {VERSION_TABLE}")
            current = int(row[0]) if row and row[0] is not None else 0
            if current > len(steps):
                raise StoreError(
                    f"the billing database is at schema version {current}, newer than this "
                    f"compatgate-billing knows ({len(steps)}): upgrade compatgate-billing"
                )
            for version in range(current + 1, len(steps) + 1):
                for statement in steps[version - 1]:
                    await tx.execute(statement)
                await tx.execute(
                    f"INSERT INTO {VERSION_TABLE} (version, applied_ms) VALUES ($1, $2)",
                    version,
                    now_ms(),
                )
        return len(steps)

    # -- keys ---------------------------------------------------------------------------------

    async def get_key(self, key_id: str, executor: Executor | None = None) -> KeyRecord | None:
        row = await (executor or self.db.reader).fetchrow(
            f"SELECT {_KEY_COLUMNS} FROM billing_keys WHERE id = $1", key_id
        )
        return KeyRecord.from_row(row) if row is not None else None

    async def auth_row(self, key_id: str) -> Row | None:
        """The `AUTH_COLUMNS` of a key, read on every request (one indexed read; on SQLite
        inline on the event loop, see `SQLiteDatabase.lookup`)."""
        rows = await self.db.lookup(self._auth_sql, key_id)
        return rows[0] if rows else None

    async def list_keys(
        self, *, owner: str | None = None, include_deleted: bool = False
    ) -> list[KeyRecord]:
        clauses, args = [], []
        if owner is not None:
            args.append(owner)
            clauses.append(f"owner = ${len(args)}")
        if not include_deleted:
            clauses.append("status <> 'deleted'")
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = await self.db.reader.fetch(
            f"SELECT {_KEY_COLUMNS} FROM billing_keys {where} ORDER BY created_ms, id", *args
        )
        return [KeyRecord.from_row(row) for row in rows]

    async def create_key(
        self, key: KeyRecord, secret_hash: str, budget_micro: int | None
    ) -> KeyRecord:
        """Insert ``key`` (its balances are set from ``budget_micro``; None: unlimited) and its
        initial ``budget`` credit entry."""
        budget = budget_micro or 0
        async with self.db.transaction() as tx:
            await tx.execute(
                f"INSERT INTO billing_keys ({_KEY_COLUMNS}) "
                "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, 0, 0, $13)",
                key.id,
                key.name,
                key.owner,
                key.status,
                key.created_ms,
                key.updated_ms,
                key.expires_ms,
                _json(list(key.allowed_models)) if key.allowed_models is not None else None,
                _json(key.metadata),
                budget_micro is None,
                budget,
                budget,
                secret_hash,
            )
            if budget:
                await self._credit_entry(tx, key.id, "budget", budget, budget, None, key.created_ms)
            created = await self.get_key(key.id, tx)
        assert created is not None
        return created

    async def set_status(self, key_id: str, status: str) -> KeyRecord | None:
        """Disable or enable a key that is not deleted; None when there is no such key."""
        return await self._update_key(key_id, "status = $2", status)

    async def set_secret_hash(self, key_id: str, secret_hash: str) -> KeyRecord | None:
        return await self._update_key(key_id, "secret_hash = $2", secret_hash)

    async def delete_key(self, key_id: str) -> KeyRecord | None:
        """Mark the key deleted and forget its digest; its ledger and credits stay."""
        return await self._update_key(key_id, "status = 'deleted', secret_hash = NULL")

    async def _update_key(self, key_id: str, assignments: str, *values: Any) -> KeyRecord | None:
        n = len(values) + 2
        row = await self.db.writer.fetchrow(
            f"UPDATE billing_keys SET {assignments}, updated_ms = ${n} "
            f"WHERE id = $1 AND status <> 'deleted' RETURNING {_KEY_COLUMNS}",
            key_id,
            *values,
            now_ms(),
        )
        return KeyRecord.from_row(row) if row is not None else None

    # -- credits ------------------------------------------------------------------------------

    async def add_credit(
        self, key_id: str, amount_micro: int, kind: str, note: str | None
    ) -> tuple[KeyRecord, CreditEntry]:
        """Add ``amount_micro`` (negative for a downward ``adjustment``) to a key's balance and
        record it. `BalanceError` when it would leave less than what requests hold; KeyError
        when the key does not exist or is deleted."""
        now = now_ms()
        async with self.db.transaction() as tx:
            row = await tx.fetchrow(
                "UPDATE billing_keys SET balance_micro = balance_micro + $2, credited_micro = credited_micro + $2, "
                "updated_ms = $3 WHERE id = $1 AND status <> 'deleted' "
                f"AND (unlimited OR balance_micro + $2 >= reserved_micro) RETURNING {_KEY_COLUMNS}",
                key_id,
                amount_micro,
                now,
            )
            if row is None:
                key = await self.get_key(key_id, tx)
                if key is None or key.status == "deleted":
                    raise KeyError(key_id)
                raise BalanceError(
                    f"the balance would fall below zero: {key.available_micro} micro-units are free"
                )
            key = KeyRecord.from_row(row)
            entry = await self._credit_entry(
                tx, key_id, kind, amount_micro, key.balance_micro, note, now
            )
        return key, entry

    async def _credit_entry(
        self,
        tx: Executor,
        key_id: str,
        kind: str,
        amount: int,
        after: int,
        note: str | None,
        now: int,
    ) -> CreditEntry:
        row = await tx.fetchrow(
            "INSERT INTO billing_credits (key_id, kind, amount_micro, balance_after_micro, note, created_ms) "
            f"VALUES ($1, $2, $3, $4, $5, $6) RETURNING {_CREDIT_COLUMNS}",
            key_id,
            kind,
            amount,
            after,
            note,
            now,
        )
        assert row is not None
        return CreditEntry(*row)

    async def credits(self, key_id: str, limit: int = 50) -> list[CreditEntry]:
        """The key's newest credit entries, newest first."""
        rows = await self.db.reader.fetch(
            f"SELECT {_CREDIT_COLUMNS} FROM billing_credits WHERE key_id = $1 ORDER BY id DESC LIMIT $2",
            key_id,
            limit,
        )
        return [CreditEntry(*row) for row in rows]

    # -- reservations -------------------------------------------------------------------------

    async def reserve(
        self, reservation_id: str, key_id: str, amount_micro: int, owner: str, ttl_ms: int
    ) -> bool:
        """Hold ``amount_micro`` of an active key's free balance for one request, atomically
        (see the module's documentation); False when the free balance cannot cover it.

        Where the database asks for it (SQLite: ``coalesce_writes``), the reservations that
        arrive while one transaction runs are made together in the next one: each is still its
        own statement, evaluated after the ones before it, and committed before this returns."""
        args = (reservation_id, amount_micro, owner, ttl_ms, key_id)
        if not self.db.coalesce_writes:
            rows = await self.db.writer.fetch(self._reserve_sql, *args)
            return bool(rows)
        return await self._queue.reserve(args)

    def _reserve_steps(self, batch: list[tuple[Any, ...]]) -> Steps[list[bool]]:
        results = []
        for args in batch:
            rows = yield self._reserve_sql, args
            results.append(bool(rows))
        return results

    async def renew(self, owner: str, ttl_ms: int) -> None:
        """Push back the expiry of every reservation ``owner`` (a live process) holds."""
        await self.db.writer.execute(
            f"UPDATE billing_reservations SET expires_ms = {self.db.now} + $2 WHERE owner = $1",
            owner,
            ttl_ms,
        )

    async def sweep(self) -> int:
        """Delete the expired reservations (those of processes that died); the trigger gives
        their amounts back. Returns how many."""
        rows = await self.db.writer.fetch(
            "DELETE FROM billing_reservations WHERE id IN (SELECT id FROM billing_reservations "
            f"WHERE expires_ms <= {self.db.now} {self.db.skip_locked}) RETURNING id"
        )
        return len(rows)

    async def release(self, reservation_id: str) -> bool:
        rows = await self.db.writer.fetch(
            "DELETE FROM billing_reservations WHERE id = $1 RETURNING id", reservation_id
        )
        return bool(rows)

    async def release_owner(self, owner: str) -> int:
        rows = await self.db.writer.fetch(
            "DELETE FROM billing_reservations WHERE owner = $1 RETURNING id", owner
        )
        return len(rows)

    # -- the ledger ---------------------------------------------------------------------------

    async def settle(self, entries: Sequence[LedgerEntry]) -> int:
        """Write ``entries`` and settle their reservations in one transaction; returns how many
        were new (an entry already written is skipped entirely). Where the database coalesces
        writes (SQLite), the batch shares its transaction with the other writes then queued."""
        if not self.db.coalesce_writes:
            return await self.db.run_steps(self._settle_steps(entries))
        return await self._queue.settle(entries)

    def _settle_steps(self, entries: Sequence[LedgerEntry]) -> Steps[int]:
        """Per entry not yet written (one that is, a retried write, is skipped entirely): release
        its reservation, price the charge (at most what the key then has free, unless it is
        unlimited) and insert the ledger row with it; the charges are applied to the keys once
        per batch. A key's row is read once per batch: the transaction holds it (SQLite's write
        lock; PostgreSQL's row lock, ``FOR UPDATE``), so nothing but this batch changes it
        meanwhile, and the batch follows its own changes in ``held``."""
        written = 0
        held: dict[str, list[Any] | None] = {}  # key id -> [balance, reserved, unlimited, charged]
        for entry in entries:
            if (yield _EXISTS, (entry.id,)):  # written before (a retry): skipped entirely
                continue
            released = yield _RELEASE, (entry.id,)
            reserved = 0
            if released:
                reserved = int(released[0][0])
                owner = held.get(released[0][1])
                if owner is not None:
                    owner[1] -= reserved  # what the trigger just did to reserved_micro
            key = held.get(entry.key_id)
            charged = 0
            if entry.cost_micro > 0:
                if entry.key_id not in held:
                    rows = yield self._charge_sql, (entry.key_id,)
                    key = held[entry.key_id] = (
                        [int(rows[0][0]), int(rows[0][1]), bool(rows[0][2]), 0] if rows else None
                    )
                if key is not None:
                    free = max(key[0] - key[1], 0)
                    charged = entry.cost_micro if key[2] else min(entry.cost_micro, free)
            inserted = yield _INSERT_USAGE, (*entry.values(), reserved, charged)
            if not inserted:  # a concurrent write of the same entry won: it charges, not this one
                continue
            written += 1
            if charged:
                assert key is not None
                key[0] -= charged
                key[3] += charged
        for key_id, key in held.items():
            if key is not None and key[3]:
                yield _CHARGE, (key_id, key[3])
        return written

    async def usage_totals(
        self,
        group_by: Sequence[str] = (),
        *,
        since_ms: int | None = None,
        until_ms: int | None = None,
        key_id: str | None = None,
    ) -> list[dict[str, Any]]:
        """Totals of the ledger grouped by any of ``key``, ``model``, ``day`` (UTC), for
        requests from ``since_ms`` (included) to ``until_ms`` (excluded)."""
        return await usage_totals(
            self.db, group_by, since_ms=since_ms, until_ms=until_ms, key_id=key_id
        )


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)
