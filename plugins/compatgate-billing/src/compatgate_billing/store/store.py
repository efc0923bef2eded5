"""Everything billing keeps, on either database: keys, credits, reservations and the ledger.

The two statements that guard money, on both databases:

- `reserve` is ONE statement: it inserts the reservation only if the key's row shows
  ``balance_micro - reserved_micro >= amount``, and a trigger adds the amount to
  ``reserved_micro`` inside that same statement. On SQLite the statement holds the database's
  write lock from its first read to its commit; on PostgreSQL the key's row is locked
  (``FOR UPDATE``) and, when another transaction changed it meanwhile, the condition is
  evaluated again on the newest version. Either way no two reservations can both see the same
  free money.
- `settle` (one transaction per batch) writes the ledger row first (``ON CONFLICT DO NOTHING``:
  a write retried adds nothing), deletes the reservation (the trigger gives it back), and
  charges the real cost, at most what the key has free, so the balance never goes below what
  other requests hold.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

from .db import Database, Executor
from .models import BalanceError, CreditEntry, KeyRecord, LedgerEntry
from .schema import VERSION_TABLE, migrations
from .totals import usage_totals

__all__ = ["Store", "StoreError", "now_ms"]

_KEY_COLUMNS = KeyRecord.COLUMNS
_CREDIT_COLUMNS = "id, key_id, kind, amount_micro, balance_after_micro, note, created_ms"


class StoreError(Exception):
    """The database cannot be used as it is (e.g. a schema newer than this plugin)."""


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class Store:
    """The billing tables of one database (see `Database` for the dialects)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def open(self, *, migrate: bool = True) -> None:
        await self.db.open()
        if migrate:
            try:
                await self.migrate()
            except BaseException:
                await self.db.close()
                raise

    async def close(self) -> None:
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
        (see the module's documentation); False when the free balance cannot cover it."""
        now = self.db.now
        rows = await self.db.writer.fetch(
            "INSERT INTO billing_reservations (id, key_id, amount_micro, owner, created_ms, expires_ms) "
            f"SELECT CAST($1 AS TEXT), id, CAST($2 AS BIGINT), CAST($3 AS TEXT), {now}, {now} + $4 "
            "FROM billing_keys WHERE id = $5 AND status = 'active' AND balance_micro - reserved_micro >= $2 "
            f"{self.db.for_update} RETURNING id",
            reservation_id,
            amount_micro,
            owner,
            ttl_ms,
            key_id,
        )
        return bool(rows)

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
        were new (an entry already written is skipped entirely)."""
        written = 0
        async with self.db.transaction() as tx:
            for entry in entries:
                written += await self._settle(tx, entry)
        return written

    async def _settle(self, tx: Executor, entry: LedgerEntry) -> int:
        placeholders = ", ".join(f"${i}" for i in range(1, 22))
        inserted = await tx.fetchrow(
            f"INSERT INTO billing_usage ({LedgerEntry.COLUMNS}) VALUES ({placeholders}) "
            "ON CONFLICT (id) DO NOTHING RETURNING id",
            *entry.values(),
        )
        if inserted is None:
            return 0
        released = await tx.fetchrow(
            "DELETE FROM billing_reservations WHERE id = $1 RETURNING amount_micro", entry.id
        )
        reserved = int(released[0]) if released else 0
        charged = 0
        if entry.cost_micro > 0:
            key = await tx.fetchrow(
                f"SELECT balance_micro, reserved_micro, unlimited FROM billing_keys WHERE id = $1 {self.db.for_update}",
                entry.key_id,
            )
            if key is not None:
                free = max(int(key[0]) - int(key[1]), 0)
                charged = entry.cost_micro if key[2] else min(entry.cost_micro, free)
            if charged:
                await tx.execute(
                    "UPDATE billing_keys SET balance_micro = balance_micro - $2, spent_micro = spent_micro + $2 "
                    "WHERE id = $1",
                    entry.key_id,
                    charged,
                )
        if reserved or charged:
            await tx.execute(
                "UPDATE billing_usage SET reserved_micro = $2, charged_micro = $3 WHERE id = $1",
                entry.id,
                reserved,
                charged,
            )
        return 1

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
