"""Shared fixtures: a fake upstream and gateways served over real HTTP on loopback."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import pytest
from support import FIXTURES, SHARED, Served, UsageLog, gateway_config

from compatgate import Gateway
from compatgate.testing import FakeUpstream, OpenAISchema, serve


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
    fake = FakeUpstream()
    with serve(fake) as url:
        yield fake, url


@pytest.fixture
def make_gateway(upstream: tuple[FakeUpstream, str]) -> Iterator[Callable[..., Served]]:
    with ExitStack() as stack:

        def make(config: dict[str, Any] | None = None, plugins: tuple[object, ...] = ()) -> Served:
            gateway = Gateway(config or gateway_config(upstream[1]), plugins=(UsageLog, *plugins))
            return Served(gateway, stack.enter_context(serve(gateway)))

        yield make


@pytest.fixture
def gw(make_gateway: Callable[..., Served]) -> Served:
    return make_gateway()
