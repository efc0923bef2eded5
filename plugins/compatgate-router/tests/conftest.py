"""Fixtures: fake upstreams, gateways served on loopback with a ``[plugins.router]`` table, and
the Redis server the cooldown tests share (a unique key prefix per test)."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from compatgate.testing import (FakeUpstream, OpenAISchema, delete_redis_keys, fake_upstream,
                                require_service, serve_gateway)
from compatgate_router import Router

# --import-mode=importlib puts no test folder on sys.path: make router_support importable.
sys.path.insert(0, str(Path(__file__).resolve().parent))

from router_support import REDIS_URL, SHARED, Served, gateway_config


@pytest.fixture(scope="session")
def openai_schema() -> OpenAISchema:
    """The official OpenAI OpenAPI document (in the shared folder next to the repository)."""
    return OpenAISchema(SHARED / "spec" / "openai-openapi.yaml")


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The test Redis; unreachable: skipped, or failed when CI=true (CI must test Redis)."""
    return require_service("Redis", REDIS_URL, env="COMPATGATE_TEST_REDIS_URL")


@pytest.fixture
def key_prefix(request: pytest.FixtureRequest) -> Iterator[str]:
    """A Redis key prefix no other test uses; its keys are deleted afterwards."""
    prefix = f"compatgate-router-test:{uuid.uuid4().hex}"
    yield prefix
    if "redis_url" in request.fixturenames:
        delete_redis_keys(REDIS_URL, f"{{{prefix}}}*")


@pytest.fixture
def upstreams() -> Iterator[dict[str, tuple[FakeUpstream, str]]]:
    """Three fake upstreams, ``primary``, ``backup`` and ``third``: (fake, base URL)."""
    with ExitStack() as stack:
        yield {name: stack.enter_context(fake_upstream()) for name in ("primary", "backup", "third")}


@pytest.fixture
def make_gateway(upstreams: dict[str, tuple[FakeUpstream, str]]) -> Iterator[Callable[..., Served]]:
    """``make(router_table, urls=None, **provider_settings)``: a served gateway whose providers
    are the fake upstreams (or ``urls``), with the router and a usage log as its only plugins
    (entry points off: other plugins installed in the environment stay out of these tests)."""
    with ExitStack() as stack:

        def make(router: dict[str, Any] | None, urls: dict[str, str] | None = None, **provider: Any) -> Served:
            urls = urls or {name: url for name, (_, url) in upstreams.items()}
            config = gateway_config(urls, router, **provider)
            return stack.enter_context(serve_gateway(config, (Router,), served=Served))

        yield make
