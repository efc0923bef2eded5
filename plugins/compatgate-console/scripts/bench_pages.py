"""Seed a billing ledger with N rows (default 1,000,000) and time the console's pages.

    uv run python plugins/compatgate-console/scripts/bench_pages.py --database sqlite
    uv run python plugins/compatgate-console/scripts/bench_pages.py --database postgresql \
        --postgres-url postgresql://postgres@127.0.0.1:5432/test

The rows spread over the last 30 days across 200 keys, 8 models and 3 providers (3 % errors).
The console is served as ``compatgate serve`` serves it (``Standalone``, uvicorn on loopback)
and each page is fetched over HTTP: once cold (the first view after start), then ``--repeat``
times warm; the script prints the cold time and the median of the warm ones, and the query
plans of the log and series queries (EXPLAIN). Not part of the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import re
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx2

from compatgate import Gateway
from compatgate.cli import Standalone
from compatgate.testing import serve
from compatgate_billing import KeyManager, KeySpec, Store
from compatgate_billing.store import LedgerEntry
from compatgate_billing.store.postgres import PostgresDatabase
from compatgate_billing.store.sqlite import SQLiteDatabase

SECRET = "bench-server-secret-0123456789abcdef"
ADMIN = "bench-admin-key-0123456789abcdef"
MODELS = ["gpt-4o", "gpt-4o-mini", "o3-mini", "claude-sonnet", "claude-haiku", "gemini-flash", "llama3", "qwen"]
PROVIDERS = ["openai", "anthropic", "local"]
DAY_MS = 86_400_000
COLUMNS = LedgerEntry.COLUMNS + ", reserved_micro, charged_micro"


def rows(count: int, key_ids: list[str], now: int) -> Any:
    rng = random.Random(7)
    for i in range(count):
        model = rng.choice(MODELS)
        error = rng.random() < 0.03
        prompt, completion = rng.randint(20, 2000), 0 if error else rng.randint(5, 800)
        cost = prompt * 2 + completion * 8
        yield (f"bench{i:012d}", f"req_{i:012d}", now - rng.randint(0, 30 * DAY_MS), rng.choice(key_ids),
               "chat.completions", model, PROVIDERS[MODELS.index(model) % 3], model,
               "error" if error else "ok", 502 if error else 200, rng.random() < 0.5, prompt, completion, 0, 0, 0,
               False, 0 if error else cost, rng.randint(80, 4000), rng.randint(50, 900), 
               "upstream unreachable" if error else None, None if error else "stop", None, 0, 0 if error else cost)


async def seed(store: Store, count: int, dsn: str = "") -> tuple[list[str], str]:
    manager = KeyManager(store, SECRET.encode())
    keys = []
    for i in range(200):
        key, secret = await manager.create(KeySpec.build(name=f"customer-{i:03d}", owner=f"team-{i % 17}"))
        keys.append((key.id, secret))
    now = time.time_ns() // 1_000_000
    started = time.perf_counter()
    placeholders = ", ".join(f"${i}" for i in range(1, COLUMNS.count(",") + 2))
    batch: list[tuple[Any, ...]] = []
    db = store.db
    if isinstance(db, PostgresDatabase):
        import asyncpg

        connection = await asyncpg.connect(dsn)  # COPY, without the store's statement timeout
        try:
            await connection.copy_records_to_table(
                "billing_usage", records=list(rows(count, [k for k, _ in keys], now)),
                columns=[c.strip() for c in COLUMNS.split(",")], schema_name=db.schema, timeout=None)
            await connection.execute(f'ANALYZE "{db.schema}".billing_usage')
        finally:
            await connection.close()
    else:
        assert isinstance(db, SQLiteDatabase)
        connection = sqlite3.connect(db.path)
        sql = f"INSERT INTO billing_usage ({COLUMNS}) VALUES ({placeholders.replace('$', '?')})"
        for row in rows(count, [k for k, _ in keys], now):
            batch.append(row)
            if len(batch) == 50_000:
                connection.executemany(sql, batch)
                connection.commit()
                batch.clear()
        connection.executemany(sql, batch)
        connection.commit()
        connection.execute("ANALYZE")
        connection.close()
    print(f"seeded {count:,} ledger rows in {time.perf_counter() - started:.1f} s", flush=True)
    return [k for k, _ in keys], keys[0][1]


async def explain(store: Store, key_id: str) -> None:
    now = time.time_ns() // 1_000_000
    queries = {
        "log, newest": ("SELECT id FROM billing_usage ORDER BY created_ms DESC, id DESC LIMIT 51", ()),
        "log, one key": ("SELECT id FROM billing_usage WHERE key_id = $1 ORDER BY created_ms DESC, id DESC LIMIT 51", (key_id,)),
        "log, one model": ("SELECT id FROM billing_usage WHERE model = $1 ORDER BY created_ms DESC, id DESC LIMIT 51", ("qwen",)),
        "log, errors": ("SELECT id FROM billing_usage WHERE status = $1 ORDER BY created_ms DESC, id DESC LIMIT 51", ("error",)),
        "series, last day": ("SELECT model, COUNT(*) FROM billing_usage WHERE created_ms >= $1 AND created_ms < $2 GROUP BY 1", (now - DAY_MS, now)),
        "series, one key, 30 days": ("SELECT model, COUNT(*) FROM billing_usage WHERE created_ms >= $1 AND created_ms < $2 AND key_id = $3 GROUP BY 1", (now - 30 * DAY_MS, now, key_id)),
    }
    for name, (sql, args) in queries.items():
        if isinstance(store.db, SQLiteDatabase):
            plan = await store.db.reader.fetch("EXPLAIN QUERY PLAN " + sql, *args)
            text = "; ".join(str(row[-1]) for row in plan)
        else:
            plan = await store.db.reader.fetch("EXPLAIN " + sql, *args)
            text = " | ".join(str(row[0]).strip() for row in plan if "Index" in row[0] or "Scan" in row[0])
        print(f"  {name}: {text}")


def time_pages(url: str, key_id: str, holder_key: str, repeat: int) -> None:
    operator = httpx2.Client(base_url=url, timeout=120)
    page = operator.get("/console/signin")
    token = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    assert operator.post("/console/signin", data={"csrf": token, "key": ADMIN}).status_code == 303
    holder = httpx2.Client(base_url=url, timeout=120)
    page = holder.get("/console/signin")
    token = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    assert holder.post("/console/signin", data={"csrf": token, "key": holder_key}).status_code == 303
    first = operator.get("/console/api/log").json()["next_cursor"]
    pages = [
        (operator, "/console/overview?range=hour&by=model"), (operator, "/console/overview?range=day&by=model"),
        (operator, "/console/overview?range=month&by=model"), (operator, "/console/overview?range=month&by=key"),
        (operator, "/console/overview?range=month&by=provider"), (operator, "/console/log"),
        (operator, f"/console/log?before={first}"), (operator, f"/console/log?key={key_id}"),
        (operator, "/console/log?model=qwen"), (operator, "/console/log?status=error"),
        (operator, "/console/log?model=qwen&status=error&since=7d"), (operator, "/console/keys"),
        (operator, "/console/keys?q=customer-19"), (operator, f"/console/keys/{key_id}"),
        (operator, "/console/models"), (operator, "/console/providers"), (holder, "/console/me"),
        (holder, "/console/me/log"),
    ]
    print(f"{'page':58} {'cold ms':>9} {'warm ms (median of ' + str(repeat) + ')':>26}")
    for client, path in pages:
        started = time.perf_counter()
        response = client.get(path)
        cold = (time.perf_counter() - started) * 1000
        assert response.status_code == 200, (path, response.status_code, response.text[:300])
        warm = []
        for _ in range(repeat):
            started = time.perf_counter()
            client.get(path)
            warm.append((time.perf_counter() - started) * 1000)
        print(f"{path:58} {cold:9.1f} {statistics.median(warm):26.1f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--postgres-url", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="console-bench-"))
    schema = f"console_bench_{uuid.uuid4().hex[:8]}"
    if args.database == "sqlite":
        settings: dict[str, Any] = {"database": f"sqlite:///{folder / 'billing.db'}"}
        store = Store(SQLiteDatabase(folder / "billing.db"))
    else:
        settings = {"database": args.postgres_url, "schema": schema}
        store = Store(PostgresDatabase(args.postgres_url, schema=schema, pool_size=2))

    async def prepare() -> tuple[list[str], str]:
        await store.open()
        try:
            keys, secret = await seed(store, args.rows, args.postgres_url)
            print("query plans:")
            await explain(store, keys[0])
            return keys, secret
        finally:
            await store.close()

    keys, holder_key = asyncio.run(prepare())
    config = {
        "gateway": {"api_keys": ["sk-static"], "access_log": "off"},
        "providers": {p: {"type": "openai", "base_url": "http://127.0.0.1:9/v1"} for p in PROVIDERS},
        "models": [{"name": m, "provider": PROVIDERS[i % 3]} for i, m in enumerate(MODELS)],
        "plugins": {"billing": {**settings, "secret": SECRET, "admin_key": ADMIN,
                                "prices": {"*": {"input": 2, "output": 8}}}, "console": {}},
    }
    try:
        with serve(Standalone(Gateway(config))) as url:
            time_pages(url, keys[0], holder_key, args.repeat)
    finally:
        if args.database == "postgresql":
            async def drop() -> None:
                import asyncpg

                connection = await asyncpg.connect(args.postgres_url)
                await connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
                await connection.close()

            asyncio.run(drop())


if __name__ == "__main__":
    sys.exit(main())
