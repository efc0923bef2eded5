"""Fixtures beside those of `compatgate.testing.fixtures` (upstream, gateways...): gateways
served with a ``[plugins.prometheus]`` table."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from compatgate.testing import FakeUpstream

# --import-mode=importlib puts no test folder on sys.path: make prometheus_support importable.
sys.path.insert(0, str(Path(__file__).resolve().parent))

from prometheus_support import Served, gateway_config


@pytest.fixture
def make_gateway(upstream: tuple[FakeUpstream, str], gateways: Callable[..., Served]) -> Callable[..., Served]:
    """``make(prometheus={...})``: a served gateway with that ``[plugins.prometheus]`` table
    (None: no table), the plugin coming from its entry point."""

    def make(prometheus: dict[str, Any] | None = None, *, config: dict[str, Any] | None = None,
             plugins: tuple[object, ...] = ()) -> Served:
        return gateways(config or gateway_config(upstream[1], prometheus), plugins, usage_log=False, served=Served)

    return make
