"""Fixtures: a fake upstream, databases (an SQLite file, a fresh PostgreSQL schema), gateways
served over real HTTP on loopback."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from compatgate import Gateway
from compatgate.testing import FakeUpstream, OpenAISchema, serve

# --import-mode=importlib puts no test folder on sys.path: make billing_support importable.
sys.path.insert(0, str(Path(__file__).resolve().parent))

from billing_support import POSTGRES_URL, SPEC, Database, Served, billing_config

_postgres_error: list[str | None] = []


def _postgres_unreachable() -> str | None:
    """Why PostgreSQL cannot be used (None when it can); asked once per session."""
    if not _postgres_error:
        import asyncpg

        async def probe() -> None:
            connection = await asyncpg.connect(POSTGRES_URL, timeout=5)
            await connection.close()

        try:
            asyncio.run(probe())
            _postgres_error.append(None)
        except Exception as exc:  # noqa: BLE001 - any failure means: not reachable
            _postgres_error.append(f"{type(exc).__name__}: {exc}")
    return _postgres_error[0]


def postgres_database() -> Iterator[Database]:
    """A schema of its own in the test PostgreSQL database, dropped afterwards. Skips when
    PostgreSQL is unreachable, except under CI=true, where that is a failure."""
    error = _postgres_unreachable()
    if error is not None:
        message = f"PostgreSQL at {POSTGRES_URL} is unreachable ({error}); set COMPATGATE_TEST_POSTGRES_URL"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    schema = f"billing_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    try:
        yield Database(POSTGRES_URL, schema)
    finally:
        import asyncpg

        async def drop() -> None:
            connection = await asyncpg.connect(POSTGRES_URL, timeout=5)
            try:
                await connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            finally:
                await connection.close()

        asyncio.run(drop())


@pytest.fixture(scope="session")
def openai_schema() -> OpenAISchema:
    return OpenAISchema(SPEC)


@pytest.fixture
def sqlite_db(tmp_path: Path) -> Database:
    return Database(f"sqlite:///{tmp_path / 'billing.db'}")


@pytest.fixture
def postgres_db() -> Iterator[Database]:
    yield from postgres_database()


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """Each test using it runs on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        yield Database(f"sqlite:///{tmp_path / 'billing.db'}")
    else:
        yield from postgres_database()


@pytest.fixture
def upstream() -> Iterator[tuple[FakeUpstream, str]]:
    fake = FakeUpstream()
    with serve(fake) as url:
        yield fake, url


@pytest.fixture
def make_gateway(
    upstream: tuple[FakeUpstream, str], db: Database
) -> Iterator[Callable[..., Served]]:
    """``make(**billing_settings)`` or ``make(config=...)``: a gateway on ``db``, served."""
    with ExitStack() as stack:

        def make(config: dict[str, Any] | None = None, **billing: Any) -> Served:
            gateway = Gateway(config or billing_config(upstream[1], db, **billing))
            served = Served(gateway, stack.enter_context(serve(gateway)))
            stack.callback(served.http.close)
            return served

        yield make


@pytest.fixture
def gw(make_gateway: Callable[..., Served]) -> Served:
    return make_gateway()
