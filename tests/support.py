"""What the core tests share: paths, keys, a usage-recording plugin, a served gateway."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from compatgate.testing import ServedGateway, UsageLog

# `UsageLog` is re-exported: the core tests import it from here.
__all__ = ["CLIENT_KEY", "FIXTURES", "ROOT", "SHARED", "UPSTREAM_KEY", "Served", "UsageLog",
           "gateway_config"]

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("COMPATGATE_SHARED", ROOT.parent / "shared"))
FIXTURES = SHARED / "fixtures"
UPSTREAM_KEY = "sk-upstream-SECRET-0123456789"
CLIENT_KEY = "sk-client-1"


def gateway_config(upstream_url: str, **gateway: Any) -> dict[str, Any]:
    return {
        "gateway": {"api_keys": [CLIENT_KEY], **gateway},
        "providers": {
            "up": {"type": "openai", "base_url": f"{upstream_url}/v1", "api_key": UPSTREAM_KEY,
                   "read_timeout": 5.0, "connect_timeout": 2.0},
        },
        "models": [
            {"name": "gpt-4o", "provider": "up", "upstream_model": "gpt-4o-2024-08-06"},
            {"name": "text-embedding-3-small", "provider": "up"},
            {"name": "gpt-3.5-turbo-instruct", "provider": "up"},
        ],
    }


class Served(ServedGateway):
    """A gateway served on loopback, with its usage log (``usage``, ``records(count)``) and an
    SDK client (``client(key=CLIENT_KEY)``)."""

    default_key = CLIENT_KEY
