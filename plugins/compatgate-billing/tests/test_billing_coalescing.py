"""The cheap request path keeps the guarantees: writes that share a transaction (SQLite) still
fail alone and never overspend; a batch charges a key in order, from what it has free; the key
lookup sees a rotation, a disabling or a deletion made by another process at once."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from billing_support import Database
from billing_support import ledger_entry as entry
from compatgate_billing import KeyManager, KeySpec, Store
from compatgate_billing.keys import parse_key, verify


def test_a_failing_batch_does_not_fail_the_reservations_it_shared_a_transaction_with(db: Database):
    async def work(store: Store) -> tuple[Any, ...]:
        key, _ = await KeyManager(store, b"s" * 32).create(KeySpec.build(budget_micro=1000))
        bad = entry("bad", key.id, 10, status="nonsense")  # violates the CHECK constraint
        results = await asyncio.gather(
            store.reserve("r1", key.id, 300, "me", 60_000),
            store.settle([bad]),
            store.reserve("r2", key.id, 300, "me", 60_000),
            store.settle([entry("good", key.id, 10)]),
            return_exceptions=True,
        )
        return results, await store.get_key(key.id)

    results, key = db.run(work)
    assert results[0] is True and results[2] is True and results[3] == 1
    assert isinstance(results[1], Exception)
    assert (key.balance_micro, key.reserved_micro, key.spent_micro) == (990, 600, 10)
    assert db.fetch("SELECT id, charged_micro FROM billing_usage") == [("good", 10)]


def test_concurrent_reservations_of_one_store_never_overspend(db: Database):
    async def work(store: Store) -> tuple[list[bool], Any]:
        key, _ = await KeyManager(store, b"s" * 32).create(KeySpec.build(budget_micro=1000))
        results = await asyncio.gather(
            *(store.reserve(f"r{i}", key.id, 70, "me", 60_000) for i in range(50))
        )
        return results, await store.get_key(key.id)

    results, key = db.run(work)
    assert results.count(True) == 14
    assert (key.balance_micro, key.reserved_micro) == (1000, 980)


def test_a_batch_charges_each_entry_what_the_key_has_free_in_order(db: Database):
    async def work(store: Store) -> tuple[Any, ...]:
        manager = KeyManager(store, b"s" * 32)
        key, _ = await manager.create(KeySpec.build(budget_micro=1000))
        assert await store.reserve("a", key.id, 400, "me", 60_000)
        assert await store.reserve("b", key.id, 400, "me", 60_000)
        assert await store.reserve("held", key.id, 100, "other", 60_000)  # not settled here
        written = await store.settle(
            [entry("a", key.id, 500), entry("a", key.id, 500), entry("b", key.id, 600)]
        )
        again = await store.settle([entry("b", key.id, 600)])
        return written, again, await store.get_key(key.id)

    written, again, key = db.run(work)
    assert (written, again) == (2, 0)
    # a: 900 free after its release -> 500; b: 1000 - 500 - 100 held = 400 free -> 400
    assert db.fetch("SELECT id, reserved_micro, charged_micro FROM billing_usage ORDER BY id") == [
        ("a", 400, 500),
        ("b", 400, 400),
    ]
    assert (key.balance_micro, key.reserved_micro, key.spent_micro) == (100, 100, 900)


@pytest.mark.parametrize("change", ["rotate", "disable", "delete"])
def test_the_lookup_sees_another_stores_change_at_once(db: Database, change: str):
    secret = b"s" * 32

    async def work(store: Store) -> tuple[Any, Any]:
        key, full = await KeyManager(store, secret).create(KeySpec.build(budget_micro=1000))
        key_id, key_secret = parse_key(full)  # type: ignore[misc]
        row = await store.auth_row(key_id)
        assert row is not None and verify(secret, key_id, key_secret, row[0]) and row[1] == "active"
        other = db.store()  # as the CLI in another process would
        await other.open()
        try:
            manager = KeyManager(other, secret)
            if change == "rotate":
                await manager.rotate(key_id)
            elif change == "disable":
                await manager.set_enabled(key_id, False)
            else:
                await manager.delete(key_id)
        finally:
            await other.close()
        row = await store.auth_row(key_id)
        return row, verify(secret, key_id, key_secret, row[0] if row else None)

    row, matches = db.run(work)
    if change == "disable":
        assert matches and row[1] == "disabled"
    else:
        assert not matches


def test_a_busy_inline_lookup_is_done_in_the_readers_thread(tmp_path):
    import sqlite3

    from compatgate_billing.store.sqlite import SQLiteDatabase

    class Busy:
        def execute(self, *args: Any) -> Any:
            raise sqlite3.OperationalError("database is locked")

        def close(self) -> None:
            pass

    async def main() -> tuple[Any, Any]:
        store = Store(SQLiteDatabase(tmp_path / "billing.db"))
        await store.open()
        try:
            key, _ = await KeyManager(store, b"s" * 32).create(KeySpec.build(budget_micro=1000))
            inline = await store.auth_row(key.id)
            store.db._inline = Busy()  # type: ignore[attr-defined]
            return inline, await store.auth_row(key.id)
        finally:
            await store.close()

    inline, threaded = asyncio.run(main())
    assert inline is not None and inline == threaded
