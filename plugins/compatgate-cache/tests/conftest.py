"""Fixtures: a fake OpenAI upstream, gateways with a ``[plugins.cache]`` table on the memory or
the Redis backend (each behavioural test runs on both), the test Redis with a key prefix per
test, and the OpenAI schema."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from compatgate.testing import (
    FakeUpstream,
    OpenAISchema,
    delete_redis_keys,
    fake_upstream,
    require_service,
    serve_gateway,
)

# --import-mode=importlib puts no test folder on sys.path: make cache_support importable.
sys.path.insert(0, str(Path(__file__).resolve().parent))

from cache_support import REDIS_URL, SPEC, Served, answering, config


@pytest.fixture(scope="session")
def schema() -> OpenAISchema:
    return OpenAISchema(SPEC)


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The test Redis; unreachable: skipped, or failed when CI=true (CI must test Redis)."""
    return require_service("Redis", REDIS_URL, env="COMPATGATE_TEST_REDIS_URL")


@pytest.fixture
def key_prefix(request: pytest.FixtureRequest) -> Iterator[str]:
    prefix = f"compatgate-test-cache:{uuid.uuid4().hex}"
    yield prefix
    if "redis_url" in request.fixturenames:
        delete_redis_keys(REDIS_URL, f"{prefix}:*")


@pytest.fixture(params=["memory", "redis"])
def backend(request: pytest.FixtureRequest, key_prefix: str) -> dict[str, Any]:
    """The backend part of a ``[plugins.cache]`` table."""
    if request.param == "memory":
        return {"backend": "memory"}
    url = request.getfixturevalue("redis_url")
    return {"backend": "redis", "redis_url": url, "key_prefix": key_prefix}


@pytest.fixture
def upstream() -> Iterator[tuple[FakeUpstream, str]]:
    with fake_upstream() as served:
        answering(served[0])
        yield served


@pytest.fixture
def make_gateway(upstream: tuple[FakeUpstream, str], backend: dict[str, Any]) -> Iterator[Callable[..., Served]]:
    """``make(cache=None, plugins=(), **other_plugin_tables)``: a served gateway whose cache
    table is ``{**backend, **cache}`` (the plugin comes from its entry point, as installed)."""
    with ExitStack() as stack:

        def make(cache: dict[str, Any] | None = None, plugins: tuple[object, ...] = (), **tables: Any) -> Served:
            table = {**backend, **(cache or {})}
            return stack.enter_context(serve_gateway(config(upstream[1], table, **tables), plugins, served=Served))

        yield make
