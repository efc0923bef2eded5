"""Fixtures beside those of `compatgate.testing.fixtures` (upstream, gateways, redis_url,
key_prefix...): the backend part of a rate-limit table, for the memory and the Redis backend,
and gateways served on loopback with a ``[plugins.ratelimit]`` table."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from compatgate_ratelimit import RateLimit

from compatgate.testing import FakeUpstream

# --import-mode=importlib puts no test folder on sys.path: make ratelimit_support importable.
sys.path.insert(0, str(Path(__file__).resolve().parent))

from ratelimit_support import Served, gateway_config


@pytest.fixture(params=["memory", "redis"])
def backend(request: pytest.FixtureRequest, key_prefix: str) -> dict[str, Any]:
    """The backend part of a ``[plugins.ratelimit]`` table: each behavioural test runs on both."""
    if request.param == "memory":
        return {"backend": "memory"}
    url = request.getfixturevalue("redis_url")
    return {"backend": "redis", "redis_url": url, "key_prefix": key_prefix}


@pytest.fixture
def make_gateway(upstream: tuple[FakeUpstream, str], gateways: Callable[..., Served]) -> Callable[..., Served]:
    """``make(ratelimit_table, plugins=(), entrypoints=False, **gateway_settings)``: a served
    gateway with the RateLimit plugin (then ``plugins``, which run first; a RateLimit subclass
    among them is the plugin instead). By default the
    installed entry points are not loaded, so that other plugins cannot change what is measured;
    with ``entrypoints=True`` the plugin comes from its entry point, as in production."""

    def make(
        ratelimit: dict[str, Any] | None,
        plugins: tuple[object, ...] = (),
        entrypoints: bool = False,
        **settings: Any,
    ) -> Served:
        config = gateway_config(upstream[1], ratelimit, load_entrypoints=entrypoints, **settings)
        given = any(isinstance(p, type) and issubclass(p, RateLimit) for p in plugins)
        own = plugins if entrypoints or given else (RateLimit, *plugins)
        return gateways(config, own, served=Served)

    return make
