"""Fixtures: a fake upstream, databases (an SQLite file, a fresh PostgreSQL schema), gateways
served over real HTTP on loopback."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from compatgate.testing import (
    FakeUpstream,
    OpenAISchema,
    fake_upstream,
    require_service,
    serve_gateway,
)

# --import-mode=importlib puts no test folder on sys.path: make billing_support importable.
sys.path.insert(0, str(Path(__file__).resolve().parent))

from billing_support import POSTGRES_URL, SPEC, Database, Served, billing_config, postgres_database


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """The test PostgreSQL; unreachable: skipped, or failed when CI=true."""
    import asyncpg

    async def probe() -> None:
        connection = await asyncpg.connect(POSTGRES_URL, timeout=5)
        await connection.close()

    return require_service("PostgreSQL", POSTGRES_URL, probe=lambda: asyncio.run(probe()),
                           env="COMPATGATE_TEST_POSTGRES_URL")


@pytest.fixture(scope="session")
def openai_schema() -> OpenAISchema:
    return OpenAISchema(SPEC)


@pytest.fixture
def sqlite_db(tmp_path: Path) -> Database:
    return Database(f"sqlite:///{tmp_path / 'billing.db'}")


@pytest.fixture
def postgres_db(postgres_url: str) -> Iterator[Database]:
    yield from postgres_database(postgres_url)


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """Each test using it runs on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        yield Database(f"sqlite:///{tmp_path / 'billing.db'}")
    else:
        yield from postgres_database(request.getfixturevalue("postgres_url"))


@pytest.fixture
def upstream() -> Iterator[tuple[FakeUpstream, str]]:
    with fake_upstream() as served:
        yield served


@pytest.fixture
def make_gateway(
    upstream: tuple[FakeUpstream, str], db: Database
) -> Iterator[Callable[..., Served]]:
    """``make(**billing_settings)`` or ``make(config=...)``: a gateway on ``db``, served."""
    with ExitStack() as stack:

        def make(config: dict[str, Any] | None = None, **billing: Any) -> Served:
            config = config or billing_config(upstream[1], db, **billing)
            return stack.enter_context(serve_gateway(config, usage_log=False, served=Served))

        yield make


@pytest.fixture
def gw(make_gateway: Callable[..., Served]) -> Served:
    return make_gateway()
