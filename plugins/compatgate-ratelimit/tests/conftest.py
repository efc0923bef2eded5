"""Fixtures: a fake upstream, gateways served on loopback with a rate-limit table for the memory
or the Redis backend, and the Redis server the tests share (a unique key prefix per test)."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from compatgate_ratelimit import RateLimit

from compatgate.testing import (FakeUpstream, delete_redis_keys, fake_upstream, require_service,
                                serve_gateway)

# --import-mode=importlib puts no test folder on sys.path: make ratelimit_support importable.
sys.path.insert(0, str(Path(__file__).resolve().parent))

from ratelimit_support import REDIS_URL, Served, gateway_config


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The test Redis; unreachable: skipped, or failed when CI=true (CI must test Redis)."""
    return require_service("Redis", REDIS_URL, env="COMPATGATE_TEST_REDIS_URL")


@pytest.fixture
def key_prefix(request: pytest.FixtureRequest) -> Iterator[str]:
    """A key prefix no other test (or gateway) uses; its keys are deleted afterwards."""
    prefix = f"compatgate-test:{uuid.uuid4().hex}"
    yield prefix
    if "redis_url" in request.fixturenames:
        delete_redis_keys(REDIS_URL, f"{{{prefix}}}*")


@pytest.fixture(params=["memory", "redis"])
def backend(request: pytest.FixtureRequest, key_prefix: str) -> dict[str, Any]:
    """The backend part of a ``[plugins.ratelimit]`` table: each behavioural test runs on both."""
    if request.param == "memory":
        return {"backend": "memory"}
    url = request.getfixturevalue("redis_url")
    return {"backend": "redis", "redis_url": url, "key_prefix": key_prefix}


@pytest.fixture
def upstream() -> Iterator[tuple[FakeUpstream, str]]:
    with fake_upstream() as served:
        yield served


@pytest.fixture
def make_gateway(upstream: tuple[FakeUpstream, str]) -> Iterator[Callable[..., Served]]:
    """``make(ratelimit_table, plugins=(), entrypoints=False, **gateway_settings)``: a served
    gateway with the RateLimit plugin (then ``plugins``, which run first; a RateLimit subclass
    among them is the plugin instead). By default the
    installed entry points are not loaded, so that other plugins cannot change what is measured;
    with ``entrypoints=True`` the plugin comes from its entry point, as in production."""
    with ExitStack() as stack:

        def make(
            ratelimit: dict[str, Any] | None,
            plugins: tuple[object, ...] = (),
            entrypoints: bool = False,
            **settings: Any,
        ) -> Served:
            config = gateway_config(
                upstream[1], ratelimit, load_entrypoints=entrypoints, **settings
            )
            given = any(isinstance(p, type) and issubclass(p, RateLimit) for p in plugins)
            own = plugins if entrypoints or given else (RateLimit, *plugins)
            return stack.enter_context(serve_gateway(config, own, served=Served))

        yield make
