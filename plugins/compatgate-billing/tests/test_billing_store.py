"""The store on both databases: migrations, atomic reservations from several connections,
expiry and renewal, balance changes and the usage totals."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from billing_support import Database
from billing_support import ledger_entry as entry
from compatgate_billing import KeyManager, KeySpec, Store
from compatgate_billing.store import BalanceError, StoreError
from compatgate_billing.store.schema import SCHEMA_VERSION, VERSION_TABLE


def test_migrations_run_once_and_a_newer_schema_is_refused(db: Database):
    async def work(store: Store) -> int:
        assert await store.migrate() == SCHEMA_VERSION  # a second time: nothing to do
        return len(await store.db.tables())

    assert db.run(work) == 5
    versions = db.fetch(f"SELECT version FROM {VERSION_TABLE} ORDER BY version")
    assert versions == [(v,) for v in range(1, SCHEMA_VERSION + 1)]  # each applied once

    async def bump(store: Store) -> None:
        await store.db.writer.execute(
            f"INSERT INTO {VERSION_TABLE} (version, applied_ms) VALUES (99, 0)"
        )

    db.run(bump, migrate=False)
    with pytest.raises(StoreError, match="schema version 99"):
        db.run(lambda store: asyncio.sleep(0))


def test_reservations_are_atomic_across_connections(db: Database):
    """Forty reservations of 100 against a balance of 1000, from two stores at once (two pools
    on PostgreSQL, two sets of connections on SQLite): exactly ten succeed."""

    async def main() -> tuple[list[bool], Any]:
        stores = [db.store(), db.store()]
        for store in stores:
            await store.open()
        try:
            key, _ = await KeyManager(stores[0], b"s" * 32).create(KeySpec.build(budget_micro=1000))
            attempts = [
                stores[i % 2].reserve(f"r{i}", key.id, 100, f"owner{i % 2}", 60_000)
                for i in range(40)
            ]
            results = await asyncio.gather(*attempts)
            return results, await stores[0].get_key(key.id)
        finally:
            for store in stores:
                await store.close()

    results, key = asyncio.run(main())
    assert results.count(True) == 10
    assert (key.balance_micro, key.reserved_micro) == (1000, 1000)
    assert db.fetch("SELECT COUNT(*), SUM(amount_micro) FROM billing_reservations") == [(10, 1000)]


def test_expired_reservations_are_swept_and_live_ones_renewed(db: Database):
    async def work(store: Store) -> tuple[int, Any, Any]:
        key, _ = await KeyManager(store, b"s" * 32).create(KeySpec.build(budget_micro=1000))
        assert await store.reserve("dead", key.id, 300, "dead-process", 50)
        assert await store.reserve("live", key.id, 200, "live-process", 50)
        await store.renew("live-process", 60_000)
        await asyncio.sleep(0.1)
        held = await store.get_key(key.id)
        swept = await store.sweep()
        return swept, held, await store.get_key(key.id)

    swept, held, after = db.run(work)
    assert held.reserved_micro == 500 and swept == 1
    assert (after.reserved_micro, after.available_micro) == (200, 800)


def test_adjustments_cannot_take_what_is_reserved(db: Database):
    async def work(store: Store) -> Any:
        key, _ = await KeyManager(store, b"s" * 32).create(KeySpec.build(budget_micro=1000))
        assert await store.reserve("r", key.id, 700, "me", 60_000)
        with pytest.raises(BalanceError):
            await store.add_credit(key.id, -301, "adjustment", None)
        key, credit = await store.add_credit(key.id, -300, "adjustment", "refund")
        assert credit.balance_after_micro == 700 and credit.kind == "adjustment"
        return key

    key = db.run(work)
    assert (key.balance_micro, key.credited_micro, key.available_micro) == (700, 700, 0)


def test_usage_totals_by_key_model_and_day(db: Database):
    day = 86_400_000
    start = 1_767_225_600_000  # 2026-01-01T00:00:00Z

    async def work(store: Store) -> dict[str, Any]:
        manager = KeyManager(store, b"s" * 32)
        a, _ = await manager.create(KeySpec.build(budget_micro=10_000))
        b, _ = await manager.create(KeySpec.build())
        await store.settle(
            [
                entry("1", a.id, 100, created_ms=start + 10),
                entry(
                    "2",
                    a.id,
                    50,
                    created_ms=start + 20,
                    model="gpt-4o-mini",
                    status="aborted",
                    estimated=True,
                ),
                entry("3", a.id, 10, created_ms=start + day + 5),
                entry("4", b.id, 7, created_ms=start + day + 6, status="error", status_code=429),
            ]
        )
        return {
            "all": await store.usage_totals(),
            "by_key_day": await store.usage_totals(["key", "day"]),
            "by_model": await store.usage_totals(
                ["model"], since_ms=start + 15, until_ms=start + day
            ),
            "key_b": await store.usage_totals(["key"], key_id=b.id),
            "none": await store.usage_totals(["model"], since_ms=start + 10 * day),
            "ids": (a.id, b.id),
        }

    totals = db.run(work)
    a, b = totals["ids"]
    [everything] = totals["all"]
    assert (
        everything["requests"] == 4
        and everything["cost_micro"] == 167
        and everything["charged_micro"] == 167
    )
    assert (
        everything["ok"],
        everything["errors"],
        everything["aborted"],
        everything["estimated"],
    ) == (2, 1, 1, 1)
    by_key_day = {(t["key_id"], t["day"]): t["cost_micro"] for t in totals["by_key_day"]}
    assert by_key_day == {(a, "2026-01-01"): 150, (a, "2026-01-02"): 10, (b, "2026-01-02"): 7}
    assert [(t["model"], t["requests"]) for t in totals["by_model"]] == [("gpt-4o-mini", 1)]
    assert [(t["key_id"], t["prompt_tokens"]) for t in totals["key_b"]] == [(b, 10)]
    assert totals["none"] == []
