"""The ledger: one row per request, idempotent writes, written off the response path, flushed
when the gateway stops gracefully, retried entry by entry when a batch fails."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx2
from billing_support import MESSAGES, Served, billing_config, chat_answer
from billing_support import ledger_entry as entry
from compatgate_billing import KeyManager, KeySpec, LedgerEntry, LedgerWriter, Store

from compatgate import Gateway
from compatgate.testing import serve


def test_the_same_entry_written_twice_is_one_row(db):
    async def work(store: Store) -> tuple[Any, ...]:
        key, _ = await KeyManager(store, b"s" * 32).create(KeySpec.build(budget_micro=1000))
        assert await store.reserve("e1", key.id, 300, "me", 60_000)
        first = entry("e1", key.id, 120)
        written = await store.settle([first, first])  # a batch holding it twice
        again = await store.settle([first])  # a retried write
        return written, again, await store.get_key(key.id)

    written, again, key = db.run(work)
    assert (written, again) == (1, 0)
    assert (key.balance_micro, key.reserved_micro, key.spent_micro) == (880, 0, 120)
    assert db.fetch(
        "SELECT COUNT(*), SUM(charged_micro), SUM(reserved_micro) FROM billing_usage"
    ) == [(1, 120, 300)]


def test_two_requests_sharing_a_client_request_id_are_both_billed(gw: Served, upstream, db):
    fake, _ = upstream
    fake.handler = fake.json_reply(chat_answer(10, 10))
    key_id, key = gw.create_key(budget=1)
    for _ in range(2):
        response = httpx2.post(
            f"{gw.url}/chat/completions",
            timeout=10,
            headers={"authorization": f"Bearer {key}", "x-request-id": "client-chosen-id"},
            json={"model": "gpt-4o", "messages": MESSAGES, "max_tokens": 10},
        )
        assert (
            response.status_code == 200 and response.headers["x-request-id"] == "client-chosen-id"
        )
    rows = db.wait_for_rows(2)
    assert [r[1] for r in rows] == ["client-chosen-id"] * 2 and rows[0][0] != rows[1][0]
    assert db.key(key_id).spent_micro == 2 * 30 == sum(r[5] for r in rows)


def test_graceful_shutdown_writes_what_is_queued(upstream, db):
    fake, url = upstream
    fake.handler = fake.json_reply(chat_answer(10, 10))
    # The writer waits up to 30 s to fill a batch: entries are still queued when the gateway stops.
    gateway = Gateway(billing_config(url, db, batch_seconds=30))
    with serve(gateway) as base:
        gw = Served(gateway, base)
        key_id, key = gw.create_key(budget=1)
        started = time.monotonic()
        for _ in range(5):
            gw.client(key).chat.completions.create(model="gpt-4o", messages=MESSAGES, max_tokens=10)
        assert time.monotonic() - started < 5  # answered without waiting for the ledger
        assert db.fetch("SELECT COUNT(*) FROM billing_usage") == [(0,)]
        assert gw.billing.writer is not None and gw.billing.writer.pending == 5
        stopping = time.monotonic()
    assert time.monotonic() - stopping < 10
    rows = db.fetch("SELECT status, charged_micro FROM billing_usage")
    assert rows == [("ok", 30)] * 5
    key_row = db.key(key_id)
    assert (key_row.spent_micro, key_row.reserved_micro) == (150, 0)
    assert db.fetch("SELECT COUNT(*) FROM billing_reservations") == [(0,)]


class FlakyStore:
    """Fails every batch of more than one entry, and always fails entries with cost 13."""

    def __init__(self) -> None:
        self.rows: dict[str, LedgerEntry] = {}
        self.released: list[str] = []

    async def settle(self, entries: list[LedgerEntry]) -> int:
        if len(entries) > 1 or entries[0].cost_micro == 13:
            raise ConnectionError("database away")
        new = entries[0].id not in self.rows
        self.rows[entries[0].id] = entries[0]
        return int(new)

    async def release(self, reservation_id: str) -> bool:
        self.released.append(reservation_id)
        return True


def test_a_failed_batch_is_retried_entry_by_entry(caplog):
    async def main() -> tuple[FlakyStore, LedgerWriter]:
        store = FlakyStore()
        writer = LedgerWriter(store, queue_size=4, linger=0.05)  # type: ignore[arg-type]
        writer.start()
        for i in range(6):
            await writer.submit(entry(f"e{i}", "k", 13 if i == 4 else 1))
        await writer.close(timeout=10)
        return store, writer

    store, writer = asyncio.run(main())
    assert sorted(store.rows) == ["e0", "e1", "e2", "e3", "e5"]
    assert (writer.written, writer.failed, store.released) == (5, 1, ["e4"])
    assert "could not write the ledger entry of request req_e4" in caplog.text
