"""What the core tests share: paths, keys, a usage-recording plugin, a served gateway."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import openai

from compatgate import Gateway, RequestContext, UsageRecord, hookimpl

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("COMPATGATE_SHARED", ROOT.parent / "shared"))
FIXTURES = SHARED / "fixtures"
UPSTREAM_KEY = "sk-upstream-SECRET-0123456789"
CLIENT_KEY = "sk-client-1"


class UsageLog:
    """A plugin that keeps every record_usage call of its gateway."""

    def __init__(self, gateway: Gateway) -> None:
        self.records: list[UsageRecord] = []

    @hookimpl
    def record_usage(self, ctx: RequestContext, record: UsageRecord) -> None:
        self.records.append(record)


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


class Served:
    """A gateway served on loopback, with its usage log and an SDK client."""

    def __init__(self, gateway: Gateway, url: str) -> None:
        self.gateway = gateway
        self.url = url
        self.usage: UsageLog = next(p for p in gateway.pm.get_plugins() if isinstance(p, UsageLog))

    def client(self, key: str = CLIENT_KEY, **kwargs: Any) -> openai.OpenAI:
        return openai.OpenAI(api_key=key, base_url=self.url, max_retries=0, timeout=10, **kwargs)

    def records(self, count: int = 1, timeout: float = 5.0) -> list[UsageRecord]:
        """The usage records, once at least ``count`` arrived (a stream records after its
        last byte, so the client may finish first)."""
        deadline = time.monotonic() + timeout
        while len(self.usage.records) < count and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(self.usage.records) >= count, f"expected {count} usage records, got {self.usage.records}"
        return self.usage.records
