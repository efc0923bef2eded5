"""Fixtures beside those of `compatgate.testing.fixtures` (postgres_url...): databases (an SQLite
file, a fresh PostgreSQL schema), a fake upstream answering chat, the console served as
``compatgate serve`` serves it."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from compatgate.testing import FakeUpstream, fake_upstream

sys.path.insert(0, str(Path(__file__).resolve().parent))

from console_support import Database, upstream_handler


def _postgres(url: str) -> Iterator[Database]:
    schema = f"console_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    try:
        yield Database(url, schema)
    finally:
        import asyncpg

        async def drop() -> None:
            connection = await asyncpg.connect(url, timeout=5)
            try:
                await connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            finally:
                await connection.close()

        asyncio.run(drop())


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """Each test using it runs on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        yield Database(f"sqlite:///{tmp_path / 'billing.db'}")
    else:
        yield from _postgres(request.getfixturevalue("postgres_url"))


@pytest.fixture
def sqlite_db(tmp_path: Path) -> Database:
    return Database(f"sqlite:///{tmp_path / 'billing.db'}")


@pytest.fixture
def upstream() -> Iterator[tuple[FakeUpstream, str]]:
    with fake_upstream() as (fake, url):
        fake.handler = upstream_handler
        yield fake, url
