"""pytest fixtures for testing gateways and plugins: a pytest plugin that comes with compatgate
(the ``pytest11`` entry point ``compatgate``), so that every suite — the core's, a plugin's in
this repository or elsewhere — starts with the same ones. A suite overrides any of them in its
``conftest.py`` (a conftest's fixture wins over a plugin's); ``pytest -p no:compatgate`` turns
them all off.

- ``upstream``: a fresh `FakeUpstream` served on loopback, as ``(fake, url)``.
- ``gateways``: ``gateways(config, plugins=(), **options)`` serves a gateway until the test
  ends (`serve_gateway`'s arguments: ``usage_log=False``, ``served=`` a `ServedGateway`
  subclass); a suite's own ``make_gateway`` is a line over it.
- ``gateway_config``: the configuration ``make_gateway`` serves by default: one OpenAI-compatible
  provider ``up`` at ``upstream`` (key ``sk-upstream-test``), the model ``gpt-4o`` on it and the
  client key ``sk-test``. ``serve_options``: the options ``make_gateway`` passes (``{}``).
- ``make_gateway``: ``make_gateway(config=None, plugins=(), **options)`` — ``gateways`` with
  ``gateway_config`` and ``serve_options`` as defaults; ``gw``: ``make_gateway()``.
- ``openai_schema``: the official OpenAI OpenAPI document as an `OpenAISchema` (once per
  session), read from ``COMPATGATE_OPENAI_SPEC``, else ``$COMPATGATE_SHARED/spec/openai-openapi.yaml``,
  else ``shared/spec/openai-openapi.yaml`` beside the rootdir; a test needing it is skipped when
  it is missing (failed when ``CI=true``).
- ``redis_url``, ``postgres_url``: the test Redis and PostgreSQL (once per session), from
  ``COMPATGATE_TEST_REDIS_URL`` (default ``redis://127.0.0.1:6379/0``) and
  ``COMPATGATE_TEST_POSTGRES_URL`` (default ``postgresql://postgres@127.0.0.1:5432/test``); a test needing
  one is skipped when it is unreachable (failed when ``CI=true``, see `require_service`).
- ``key_prefix``: a Redis key prefix no other test uses; its keys are deleted after the test
  when it used ``redis_url``.

The imports wait for the first fixture used: loading the plugin costs a pytest run nothing.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from . import FakeUpstream, OpenAISchema, ServedGateway

__all__ = [
    "gateway_config",
    "gateways",
    "gw",
    "key_prefix",
    "make_gateway",
    "openai_schema",
    "postgres_url",
    "redis_url",
    "serve_options",
    "upstream",
]

REDIS_URL = "redis://127.0.0.1:6379/0"
POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"
CLIENT_KEY = "sk-test"
UPSTREAM_KEY = "sk-upstream-test"

Gateways = Callable[..., "ServedGateway"]


@pytest.fixture
def upstream() -> Iterator[tuple[FakeUpstream, str]]:
    """A fresh `FakeUpstream` served on loopback: ``(fake, url)``."""
    from . import fake_upstream

    with fake_upstream() as served:
        yield served


@pytest.fixture
def gateways() -> Iterator[Gateways]:
    """``gateways(config, plugins=(), **options)``: a gateway served until the test ends."""
    from . import serve_gateway

    with ExitStack() as stack:

        def serve(config: Any, plugins: tuple[object, ...] = (), **options: Any) -> ServedGateway:
            served: ServedGateway = stack.enter_context(serve_gateway(config, plugins, **options))
            return served

        yield serve


@pytest.fixture
def gateway_config(upstream: tuple[FakeUpstream, str]) -> dict[str, Any]:
    """What `make_gateway` serves when given no configuration."""
    return {
        "gateway": {"api_keys": [CLIENT_KEY]},
        "providers": {"up": {"type": "openai", "base_url": f"{upstream[1]}/v1", "api_key": UPSTREAM_KEY}},
        "models": [{"name": "gpt-4o", "provider": "up"}],
    }


@pytest.fixture
def serve_options() -> dict[str, Any]:
    """What `make_gateway` passes to `serve_gateway` unless told otherwise (``served=...``,
    ``usage_log=False``)."""
    return {}


@pytest.fixture
def make_gateway(gateways: Gateways, gateway_config: dict[str, Any],
                 serve_options: dict[str, Any]) -> Callable[..., ServedGateway]:
    """``make_gateway(config=None, plugins=(), **options)``: a served gateway (the
    `gateway_config` by default)."""

    def make(config: Any = None, plugins: tuple[object, ...] = (), **options: Any) -> ServedGateway:
        return gateways(config or gateway_config, plugins, **{**serve_options, **options})

    return make


@pytest.fixture
def gw(make_gateway: Callable[..., ServedGateway]) -> ServedGateway:
    """A gateway served with the suite's default configuration."""
    return make_gateway()


@pytest.fixture(scope="session")
def openai_schema(request: pytest.FixtureRequest) -> OpenAISchema:
    """The official OpenAI OpenAPI document (see the module docstring for where it is read)."""
    from . import OpenAISchema

    given = os.environ.get("COMPATGATE_OPENAI_SPEC")
    shared = os.environ.get("COMPATGATE_SHARED")
    if given:
        path = Path(given)
    else:
        folder = Path(shared) if shared else request.config.rootpath.parent / "shared"
        path = folder / "spec" / "openai-openapi.yaml"
    if not path.is_file():
        reason = f"the OpenAI OpenAPI document is not at {path}; set COMPATGATE_OPENAI_SPEC or COMPATGATE_SHARED"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason} (CI=true: the tests that need it must run)")
        pytest.skip(reason)
    return OpenAISchema(path)


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The test Redis (``COMPATGATE_TEST_REDIS_URL``)."""
    from . import require_service

    url = os.environ.get("COMPATGATE_TEST_REDIS_URL", REDIS_URL)
    return require_service("Redis", url, env="COMPATGATE_TEST_REDIS_URL")


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """The test PostgreSQL (``COMPATGATE_TEST_POSTGRES_URL``): a connection is opened with
    asyncpg when it is installed, else a TCP connection proves the server listens."""
    from . import require_service

    url = os.environ.get("COMPATGATE_TEST_POSTGRES_URL", POSTGRES_URL)
    try:
        import asyncpg  # type: ignore[import-untyped]
    except ImportError:
        return require_service("PostgreSQL", url, env="COMPATGATE_TEST_POSTGRES_URL")

    async def connect() -> None:
        connection = await asyncpg.connect(url, timeout=5)
        await connection.close()

    return require_service("PostgreSQL", url, probe=lambda: asyncio.run(connect()),
                           env="COMPATGATE_TEST_POSTGRES_URL")


@pytest.fixture
def key_prefix(request: pytest.FixtureRequest) -> Iterator[str]:
    """A Redis key prefix no other test (or gateway) uses; its keys are deleted afterwards."""
    prefix = f"compatgate-test:{uuid.uuid4().hex}"
    yield prefix
    if "redis_url" in request.fixturenames:
        from . import delete_redis_keys

        delete_redis_keys(request.getfixturevalue("redis_url"), f"{{{prefix}}}*")
