"""Shared fixtures: a fake upstream and gateways served over real HTTP on loopback."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import pytest
from support import FIXTURES, SHARED, Served, gateway_config

from compatgate.testing import FakeUpstream, OpenAISchema, fake_upstream, serve_gateway


@pytest.fixture(scope="session")
def openai_schema() -> OpenAISchema:
    return OpenAISchema(SHARED / "spec" / "openai-openapi.yaml")


@pytest.fixture(scope="session")
def fixture_bytes() -> Callable[[str], bytes]:
    def read(name: str) -> bytes:
        return (FIXTURES / name).read_bytes()

    return read


@pytest.fixture
def upstream() -> Iterator[tuple[FakeUpstream, str]]:
    with fake_upstream() as served:
        yield served


@pytest.fixture
def make_gateway(upstream: tuple[FakeUpstream, str]) -> Iterator[Callable[..., Served]]:
    with ExitStack() as stack:

        def make(config: dict[str, Any] | None = None, plugins: tuple[object, ...] = ()) -> Served:
            config = config or gateway_config(upstream[1])
            return stack.enter_context(serve_gateway(config, plugins, served=Served))

        yield make


@pytest.fixture
def gw(make_gateway: Callable[..., Served]) -> Served:
    return make_gateway()
