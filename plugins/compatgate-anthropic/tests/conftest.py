"""Fixtures: a fake Anthropic upstream (every request it receives is checked against
Anthropic's request schema) and gateways served over real HTTP on loopback."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from compatgate.testing import FakeUpstream, OpenAISchema, fake_upstream, serve_gateway

# --import-mode=importlib puts no test folder on sys.path: make anthropic_support importable.
sys.path.insert(0, str(Path(__file__).resolve().parent))

from anthropic_support import PLUGINS, SHARED, UPSTREAM_KEY, Served, gateway_config


@pytest.fixture(scope="session")
def openai_schema() -> OpenAISchema:
    return OpenAISchema(SHARED / "spec" / "openai-openapi.yaml")


@pytest.fixture(scope="session")
def anthropic_schema() -> OpenAISchema:
    return OpenAISchema(SHARED / "spec" / "anthropic-openapi.yaml")


@pytest.fixture
def upstream(anthropic_schema: OpenAISchema) -> Iterator[tuple[FakeUpstream, str]]:
    with fake_upstream() as (fake, url):
        yield fake, url
    for received in fake.received:
        assert (received.method, received.path) == ("POST", "/v1/messages")
        assert received.headers["x-api-key"] == UPSTREAM_KEY
        assert received.headers["anthropic-version"]
        assert "authorization" not in received.headers
        anthropic_schema.validate("CreateMessageParams", received.json)


@pytest.fixture
def make_gateway(upstream: tuple[FakeUpstream, str]) -> Iterator[Callable[..., Served]]:
    with ExitStack() as stack:

        def make(config: dict[str, Any] | None = None, plugins: tuple[object, ...] = (), **options: Any) -> Served:
            config = config or gateway_config(upstream[1], **options)
            return stack.enter_context(serve_gateway(config, (*PLUGINS, *plugins), served=Served))

        yield make


@pytest.fixture
def gw(make_gateway: Callable[..., Served]) -> Served:
    return make_gateway()
