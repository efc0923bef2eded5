"""Answers from a cache (``UsageRecord.cached``, set by a `wrap_upstream` plugin such as
compatgate-cache): billed at ``cache_hit_fraction`` of their cost and marked ``cached`` in the
ledger; a database at schema version 1 gains the column without losing a row."""

from __future__ import annotations

from typing import Any

import pytest
from billing_support import MESSAGES, Database, Served, billing_config, chat_answer
from compatgate_billing.store.schema import SCHEMA_VERSION, VERSION_TABLE, migrations

from compatgate import ConfigError, Gateway, Reply, RequestContext, hookimpl
from compatgate.testing import FakeUpstream, serve_gateway


class FakeCache:
    """Answers a request sending ``x-test-cache: hit`` itself (a hit of 10 + 5 tokens), and
    sends the others upstream as misses."""

    @hookimpl
    def wrap_upstream(self, ctx: RequestContext, call: Any) -> Any:
        async def cached(ctx: RequestContext, body: dict[str, Any]) -> Any:
            if ctx.request.headers.get("x-test-cache") == "hit":
                ctx.cache = "hit"
                return Reply(chat_answer(10, 5))
            ctx.cache = "miss"
            return await call(ctx, body)

        return cached


@pytest.mark.parametrize("fraction, hit_cost", [(None, 0), (0.25, 5), (1, 20)])
def test_a_cache_hit_is_billed_at_its_fraction(upstream, db: Database, fraction, hit_cost):
    upstream[0].handler = FakeUpstream.json_reply(chat_answer(10, 5))  # 10 × 1 + 5 × 2 = 20 micro
    extra = {} if fraction is None else {"cache_hit_fraction": fraction}
    with serve_gateway(billing_config(upstream[1], db, **extra), [FakeCache()], usage_log=False, served=Served) as gw:
        key_id, key = gw.create_key(budget=1)
        client = gw.client(key)
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES, max_tokens=10)
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES, max_tokens=10,
                                       extra_headers={"x-test-cache": "hit"})  # fmt: skip
        db.wait_for_rows(2)
        rows = db.fetch("SELECT cached, cost_micro, charged_micro, prompt_tokens FROM billing_usage ORDER BY created_ms")
        assert [(bool(r[0]), r[1], r[2], r[3]) for r in rows] == [(False, 20, 20, 10), (True, hit_cost, hit_cost, 10)]
        assert db.key(key_id).spent_micro == 20 + hit_cost
        totals = gw.admin("GET", "/usage?group_by=key").json()["data"]
        assert [(t["requests"], t["cache_hits"], t["charged_micro"]) for t in totals] == [(2, 1, 20 + hit_cost)]


@pytest.mark.parametrize("value", [-0.1, 1.5, "half", 0.0000001])
def test_cache_hit_fraction_is_checked(tmp_path, value):
    config = billing_config("http://127.0.0.1:1", Database(f"sqlite:///{tmp_path / 'b.db'}"), cache_hit_fraction=value)
    with pytest.raises(ConfigError, match="cache_hit_fraction"):
        Gateway(config)


def test_a_version_1_ledger_gains_the_cached_column(db: Database):
    dialect = "sqlite" if db.schema is None else "postgresql"

    async def version_1(store: Any) -> None:
        async with store.db.transaction() as tx:
            await store.db.lock_for_migration(tx)
            await tx.execute(f"CREATE TABLE {VERSION_TABLE} (version INTEGER NOT NULL, applied_ms BIGINT NOT NULL)")
            for statement in migrations(dialect)[0]:
                await tx.execute(statement)
            await tx.execute(f"INSERT INTO {VERSION_TABLE} (version, applied_ms) VALUES (1, 0)")
            await tx.execute(
                "INSERT INTO billing_usage (id, request_id, created_ms, key_id, endpoint, model, status, "
                "status_code, streamed, prompt_tokens, completion_tokens, cached_tokens, cache_write_tokens, "
                "reasoning_tokens, estimated, cost_micro, latency_ms) VALUES ('old', 'req_old', 1, 'k', "
                "'chat.completions', 'gpt-4o', 'ok', 200, FALSE, 1, 1, 0, 0, 0, FALSE, 3, 5)"
            )

    db.run(version_1, migrate=False)
    db.run(lambda store: store.migrate())
    assert db.fetch(f"SELECT MAX(version) FROM {VERSION_TABLE}") == [(SCHEMA_VERSION,)]
    assert SCHEMA_VERSION >= 2
    assert [(r[0], bool(r[1]), r[2]) for r in db.fetch("SELECT id, cached, cost_micro FROM billing_usage")] == [
        ("old", False, 3)
    ]
