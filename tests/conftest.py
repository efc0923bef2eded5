"""The core suite's fixtures beside those of `compatgate.testing.fixtures` (upstream, gateways,
make_gateway, gw, openai_schema...): its configuration and served-gateway class, and the
recordings."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import support

from compatgate.testing import FakeUpstream


@pytest.fixture
def gateway_config(upstream: tuple[FakeUpstream, str]) -> dict[str, Any]:
    """What ``make_gateway()`` serves: `support.gateway_config` at the fake upstream."""
    return support.gateway_config(upstream[1])


@pytest.fixture
def serve_options() -> dict[str, Any]:
    return {"served": support.Served}


@pytest.fixture(scope="session")
def fixture_bytes() -> Callable[[str], bytes]:
    def read(name: str) -> bytes:
        return (support.FIXTURES / name).read_bytes()

    return read
