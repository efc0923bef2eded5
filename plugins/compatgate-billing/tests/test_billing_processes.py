"""Real ``compatgate serve`` processes sharing one database: 200 concurrent requests from two
processes never spend more than the budget, a graceful stop loses no ledger entry, and the
reservations of a SIGKILLed process are released after the TTL."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

import openai
from billing_support import (
    ADMIN_KEY,
    MESSAGES,
    SERVER_SECRET,
    Database,
    billing_config,
    gateway_processes,
    worst_case_answer,
    worst_case_micro,
    write_config,
)
from compatgate_billing import KeyManager, KeySpec, Store

from compatgate.testing import Received

REQUESTS = 200
AFFORDABLE = 50
MAX_TOKENS = 50


def create_key(db: Database, budget_micro: int) -> tuple[str, str]:
    """``(id, full key)`` of a new key with ``budget_micro``, made directly in the database (the
    CLI and the admin API have tests of their own)."""

    async def create(store: Store) -> tuple[str, str]:
        key, secret = await KeyManager(store, SERVER_SECRET.encode()).create(
            KeySpec.build(budget_micro=budget_micro)
        )
        return key.id, secret

    return db.run(create)


def ask_all(urls: list[str], key: str, count: int) -> list[Any]:
    """``count`` chat completions at once, spread over ``urls``, through the async SDK."""

    async def main() -> list[Any]:
        clients = [
            openai.AsyncOpenAI(api_key=key, base_url=url, max_retries=0, timeout=60) for url in urls
        ]
        try:
            calls = [
                clients[i % len(clients)].chat.completions.create(
                    model="gpt-4o", messages=MESSAGES, max_tokens=MAX_TOKENS
                )
                for i in range(count)
            ]
            return await asyncio.gather(*calls, return_exceptions=True)
        finally:
            for client in clients:
                await client.close()

    return asyncio.run(main())


def test_two_processes_never_spend_more_than_the_budget(db: Database, upstream, tmp_path: Path):
    fake, url = upstream
    fake.handler = worst_case_answer(delay=0.02)  # every request costs exactly what it reserves
    cost = worst_case_micro(MAX_TOKENS)
    budget = cost * AFFORDABLE
    # The writer batches for up to a second, so entries are still queued when the processes stop.
    config = write_config(billing_config(url, db, batch_seconds=1.0), tmp_path)
    with gateway_processes(config, 2) as processes:
        key_id, key = create_key(db, budget)
        started = time.monotonic()
        results = ask_all([p.url for p in processes], key, REQUESTS)
        elapsed = time.monotonic() - started
    failures = [r for r in results if isinstance(r, Exception)]
    assert all(
        isinstance(f, openai.RateLimitError) and f.code == "insufficient_quota" for f in failures
    ), failures[:3]
    assert (REQUESTS - len(failures), len(failures)) == (AFFORDABLE, REQUESTS - AFFORDABLE)
    assert len(fake.received) == AFFORDABLE

    rows = db.wait_for_rows(REQUESTS, timeout=2)  # written before the processes exited
    charged = sum(row[5] for row in rows)
    stored = db.key(key_id)
    assert stored.spent_micro == charged == budget, (stored, charged, budget)
    assert sum(row[4] for row in rows if row[3] == "ok") == charged
    assert (stored.balance_micro, stored.reserved_micro) == (0, 0)
    assert db.fetch("SELECT COUNT(*) FROM billing_reservations") == [(0,)]
    statuses = sorted(row[10] for row in rows)
    assert statuses == [200] * AFFORDABLE + [429] * (REQUESTS - AFFORDABLE)
    for process in processes:
        assert key not in process.output() and SERVER_SECRET not in process.output()
    print(f"{REQUESTS} requests through 2 processes on {db.url.split(':')[0]}: {elapsed:.2f} s")


def test_a_killed_process_releases_its_reservations_after_the_ttl(
    db: Database, upstream, tmp_path: Path
):
    fake, url = upstream
    answer = worst_case_answer()

    async def handler(request: Received, send: Any) -> None:
        if len(fake.received) == 1:  # the first request hangs until its gateway dies
            deadline = time.monotonic() + 20
            while not fake.hung_up.is_set() and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            return
        await answer(request, send)

    fake.handler = handler
    ttl = 3.0  # renewed every second: a live process keeps its reservation even when busy
    config = write_config(billing_config(url, db, reservation_ttl_seconds=ttl), tmp_path)
    cost = worst_case_micro(MAX_TOKENS)
    with gateway_processes(config, 2) as (doomed, survivor):
        key_id, key = create_key(db, cost)  # room for one request at a time
        errors: list[BaseException] = []

        def hanging() -> None:
            try:
                ask_all([doomed.url], key, 1)
            except BaseException as exc:  # noqa: BLE001
                errors.append(exc)

        thread = threading.Thread(target=hanging, daemon=True)
        thread.start()
        deadline = time.monotonic() + 10
        while len(fake.received) < 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(fake.received) == 1 and db.key(key_id).reserved_micro == cost

        survivor_sdk = openai.OpenAI(api_key=key, base_url=survivor.url, max_retries=0, timeout=20)

        def ask() -> bool:
            try:
                survivor_sdk.chat.completions.create(
                    model="gpt-4o", messages=MESSAGES, max_tokens=MAX_TOKENS
                )
                return True
            except openai.RateLimitError:
                return False

        assert not ask()  # the budget is held by the request in flight
        doomed.kill()
        killed = time.monotonic()
        assert not ask()  # the dead process's reservation has not expired yet
        while not ask():
            assert time.monotonic() - killed < ttl + 8, "the reservation was never released"
            time.sleep(0.1)
        released_after = time.monotonic() - killed
        thread.join(10)
    assert 0.5 < released_after < ttl + 8
    rows = db.wait_for_rows(3)
    assert [r[10] for r in rows][-1] == 200 and all(r[5] == 0 for r in rows[:-1])
    stored = db.key(key_id)
    assert (stored.spent_micro, stored.reserved_micro, stored.balance_micro) == (cost, 0, 0)
    assert ADMIN_KEY not in survivor.output()
