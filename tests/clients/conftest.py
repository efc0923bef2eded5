"""Fixtures of the client tests: the installed clients, a sandbox per test, the target."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from .runner import Sandbox, require_clients
from .targets import TARGETS, Target


@pytest.fixture(scope="session")
def clients_base() -> Path:
    """The installed clients (installed on first use when npm is there; see `require_clients`)."""
    return require_clients()


@pytest.fixture
def sandbox(clients_base: Path, tmp_path: Path) -> Sandbox:
    return Sandbox(clients_base, tmp_path)


@pytest.fixture(params=sorted(TARGETS))
def target(request: pytest.FixtureRequest) -> Target:
    """Where the client is pointed: "direct" (at the fake of its protocol); the lead adds
    "gateway" to `TARGETS`."""
    label = re.sub(r"[^A-Za-z0-9_.-]+", "-", request.node.name).strip("-")
    return TARGETS[request.param](label)
