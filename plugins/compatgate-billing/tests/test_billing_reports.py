"""The dashboard queries (`LedgerReports`), key changes (`update_key`, `set_budget`,
`search_keys`), and what the ledger keeps for the request log (finish reason; the prompt only
with ``log_prompts``), on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import httpx2
import pytest
from billing_support import MESSAGES, Served, billing_config, chat_answer
from billing_support import ledger_entry as entry
from compatgate_billing import KeyManager, KeySpec, OperationError, Store
from compatgate_billing.changes import KeyChanges, search_keys, set_budget, update_key
from compatgate_billing.reports import LedgerReports, LogFilter

from compatgate.testing import serve_gateway


async def _two_keys(store: Store) -> tuple[str, str]:
    manager = KeyManager(store, b"s" * 32)
    first, _ = await manager.create(KeySpec.build(name="Alpha team", owner="alice"))
    second, _ = await manager.create(KeySpec.build(name="beta", owner="bob", budget_micro=5000))
    return first.id, second.id


def test_log_filters_and_pages_newest_first(db):
    async def work(store: Store) -> Any:
        a, b = await _two_keys(store)
        entries = [
            entry(f"e{i:02d}", a if i % 2 else b, 10, created_ms=1_000_000 + i * 1000,
                  model="gpt-4o" if i % 3 else "gpt-4o-mini",
                  status="error" if i % 5 == 0 else "ok", finish_reason="stop")
            for i in range(20)
        ]
        await store.settle(entries)
        reports = LedgerReports(store)
        everything = await reports.log(LogFilter(), limit=7)
        pages = [everything]
        while len(pages[-1]) == 7:
            pages.append(await reports.log(LogFilter(), limit=7, before=pages[-1][-1].cursor))
        of_a = await reports.log(LogFilter(key_id=a), limit=100)
        mini_errors = await reports.log(LogFilter(model="gpt-4o-mini", status="error"), limit=100)
        window = await reports.log(LogFilter(since_ms=1_005_000, until_ms=1_008_000), limit=100)
        exported = [row async for row in reports.export(LogFilter(key_id=b), batch=3)]
        return a, b, pages, of_a, mini_errors, window, exported

    a, b, pages, of_a, mini_errors, window, exported = db.run(work)
    ids = [row.id for page in pages for row in page]
    assert ids == [f"e{i:02d}" for i in reversed(range(20))]
    assert {row.key_id for row in of_a} == {a} and len(of_a) == 10
    assert [row.id for row in mini_errors] == ["e15", "e00"]
    assert [row.id for row in window] == ["e07", "e06", "e05"]
    assert [row.id for row in exported] == [f"e{i:02d}" for i in reversed(range(0, 20, 2))]
    row = pages[0][0]
    assert (row.finish_reason, row.prompt, row.total_tokens, row.charged_micro) == ("stop", None, 15, 10)


def test_series_by_bucket_and_dimension(db):
    async def work(store: Store) -> Any:
        a, b = await _two_keys(store)
        await store.settle([
            entry("e1", a, 100, created_ms=10_000, model="m1", provider="p1"),
            entry("e2", a, 200, created_ms=19_999, model="m2", provider="p1", status="error"),
            entry("e3", b, 300, created_ms=20_000, model="m1", provider=None),
            entry("e4", b, 400, created_ms=45_000, model="m1", provider="p2", status="aborted"),
            entry("e5", b, 999, created_ms=50_000, model="m1"),  # outside the range
        ])
        reports = LedgerReports(store)
        by_model = await reports.series(10_000, 50_000, 10_000, by="model")
        by_provider = await reports.series(10_000, 50_000, 40_000, by="provider")
        of_b = await reports.series(10_000, 50_000, 10_000, key_id=b)
        return by_model, by_provider, of_b

    by_model, by_provider, of_b = db.run(work)
    assert sorted((r.bucket, r.group, r.requests, r.errors, r.cost_micro) for r in by_model) == [
        (0, "m1", 1, 0, 100), (0, "m2", 1, 1, 200), (1, "m1", 1, 0, 300), (3, "m1", 1, 0, 400)]
    assert sorted((r.group, r.requests, r.tokens) for r in by_provider) == [
        ("", 1, 15), ("p1", 2, 30), ("p2", 1, 15)]
    assert sorted((r.bucket, r.requests, r.aborted, r.charged_micro) for r in of_b) == [
        (1, 1, 0, 300), (3, 1, 1, 400)]
    with pytest.raises(ValueError):
        LogFilter(status="weird")


def test_upstream_errors_are_5xx_and_429_of_a_provider(db):
    async def work(store: Store) -> list[str]:
        a, _ = await _two_keys(store)
        await store.settle([
            entry("ok", a, 1, status="ok"),
            entry("bad-request", a, 0, status="error", status_code=400),
            entry("limited", a, 0, status="error", status_code=429, error="slow down"),
            entry("down", a, 0, status="error", status_code=502, error="unreachable"),
            entry("no-provider", a, 0, status="error", status_code=503, provider=None),
        ])
        return [row.id for row in await LedgerReports(store).upstream_errors(0)]

    assert sorted(db.run(work)) == ["down", "limited"]


def test_update_key_set_budget_and_search(db):
    async def work(store: Store) -> Any:
        a, b = await _two_keys(store)
        changed = await update_key(store, a, KeyChanges(
            name="Renamed", expires_ms=4_102_444_800_000, allowed_models=("gpt-4o*",),
            metadata={"ratelimit": {"rpm": 5}}))
        unchanged = await update_key(store, a, KeyChanges())
        cleared = await update_key(store, a, KeyChanges(expires_ms=None, allowed_models=None))
        budgeted = await set_budget(store, a, 2_000_000, note="first budget")
        with pytest.raises(OperationError):
            await set_budget(store, b, 10)
        with pytest.raises(OperationError):
            await update_key(store, a, KeyChanges(allowed_models=("",)))
        unlimited = await set_budget(store, b, None)
        found = [k.id for k in await search_keys(store, "ALPH")]
        renamed = [k.id for k in await search_keys(store, "renamed")]
        by_owner = [k.id for k in await search_keys(store, "bob")]
        wildcard = await search_keys(store, "%")
        newest_first = [k.id for k in await search_keys(store)]
        credits = await store.credits(a)
        return a, b, changed, unchanged, cleared, budgeted, unlimited, found, renamed, by_owner, \
            wildcard, newest_first, credits

    (a, b, changed, unchanged, cleared, budgeted, unlimited, found, renamed, by_owner, wildcard,
     newest_first, credits) = db.run(work)
    assert (changed.name, changed.owner, changed.allowed_models, changed.metadata) == (
        "Renamed", "alice", ("gpt-4o*",), {"ratelimit": {"rpm": 5}})
    assert changed.expires_ms == 4_102_444_800_000 and unchanged.name == "Renamed"
    assert (cleared.expires_ms, cleared.allowed_models) == (None, None)
    assert (budgeted.unlimited, budgeted.balance_micro, budgeted.available_micro) == (False, 2_000_000, 2_000_000)
    assert credits[0].kind == "budget" and credits[0].balance_after_micro == 2_000_000
    assert unlimited.unlimited is True
    assert (found, renamed, by_owner, wildcard, newest_first) == ([], [a], [b], [], [b, a])


def test_the_ledger_keeps_finish_reasons_and_prompts_only_with_log_prompts(upstream, db):
    fake, url = upstream
    fake.handler = fake.json_reply(chat_answer(10, 5))
    for log_prompts in (False, True):
        config = billing_config(url, db)
        config["gateway"]["log_prompts"] = log_prompts
        with serve_gateway(config, usage_log=False, served=Served) as gw:
            _, key = gw.create_key()
            response = httpx2.post(f"{gw.url}/chat/completions", timeout=10,
                                   headers={"authorization": f"Bearer {key}"},
                                   json={"model": "gpt-4o", "messages": MESSAGES})
            assert response.status_code == 200
    rows = db.wait_for_rows(2)
    stored = db.fetch("SELECT finish_reason, prompt FROM billing_usage ORDER BY created_ms")
    assert len(rows) == 2 and [r[0] for r in stored] == ["stop", "stop"]
    assert stored[0][1] is None
    assert stored[1][1] == '{"messages":[{"role":"user","content":"Say something."}]}'
