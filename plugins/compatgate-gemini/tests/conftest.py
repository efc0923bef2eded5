"""Fixtures: a fake Gemini upstream and gateways served over real HTTP on loopback."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from compatgate.testing import FakeUpstream, OpenAISchema, fake_upstream

# --import-mode=importlib puts no test folder on sys.path: make gemini_support importable.
sys.path.insert(0, str(Path(__file__).resolve().parent))

from gemini_support import SPEC, Served, gemini_config, serve_counting  # noqa: E402


@pytest.fixture(scope="session")
def openai_schema() -> OpenAISchema:
    return OpenAISchema(SPEC)


@pytest.fixture(scope="module")
def _shared_upstream() -> Iterator[tuple[FakeUpstream, str]]:
    with fake_upstream() as served:
        yield served


@pytest.fixture
def upstream_served(_shared_upstream: tuple[FakeUpstream, str]) -> tuple[FakeUpstream, str]:
    """The fake Gemini upstream (shared by a module's tests, reset for each) and its URL."""
    fake = _shared_upstream[0]
    fake.handler = None
    fake.received.clear()
    fake.disconnects = 0
    fake.hung_up.clear()
    return _shared_upstream


@pytest.fixture
def upstream(upstream_served: tuple[FakeUpstream, str]) -> FakeUpstream:
    return upstream_served[0]


@pytest.fixture
def make_gateway(upstream_served: tuple[FakeUpstream, str]) -> Iterator[Callable[..., Served]]:
    """``make(**provider_options)``, or ``make(config)``: a gateway served on loopback."""
    with ExitStack() as stack:

        def make(config: dict[str, Any] | None = None, **options: Any) -> Served:
            return stack.enter_context(serve_counting(config or gemini_config(upstream_served[1], **options)))

        yield make


@pytest.fixture(scope="module")
def _shared_gateway(_shared_upstream: tuple[FakeUpstream, str]) -> Iterator[Served]:
    with serve_counting(gemini_config(_shared_upstream[1])) as served:
        yield served


@pytest.fixture
def gw(_shared_gateway: Served, upstream: FakeUpstream) -> Served:
    """A gateway with the default configuration (shared by a module's tests, its usage log
    emptied for each)."""
    _shared_gateway.reset()
    return _shared_gateway
