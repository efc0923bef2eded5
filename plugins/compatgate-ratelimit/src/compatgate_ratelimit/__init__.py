"""compatgate-ratelimit: requests, tokens and concurrency limits for compatgate.

Limits per API key (defaults, tiers, per-key overrides, and overrides the key carries in
``Principal.metadata["ratelimit"]``), per model and per upstream provider; 429
``rate_limit_exceeded`` with ``Retry-After``; the OpenAI ``x-ratelimit-*`` headers on every
response. Counters live in memory (one process) or in Redis (any number of processes, one
atomic round trip per admission). Configure ``[plugins.ratelimit]``; see the README.
"""

from .backend import (
    Backend,
    BackendUnavailable,
    Correction,
    Decision,
    Plan,
    Pool,
    PoolState,
    Window,
    WindowState,
)
from .headers import format_duration, rate_limit_headers
from .memory import MemoryBackend
from .plugin import STATE_KEY, Admission, RateLimit, RateLimiterUnavailable
from .redis_backend import RedisBackend
from .scopes import METADATA_KEY, Scope, build_plan, estimate_cost, key_limits, request_scopes
from .settings import Limits, Settings, parse_settings

__all__ = [
    "METADATA_KEY",
    "STATE_KEY",
    "Admission",
    "Backend",
    "BackendUnavailable",
    "Correction",
    "Decision",
    "Limits",
    "MemoryBackend",
    "Plan",
    "Pool",
    "PoolState",
    "RateLimit",
    "RateLimiterUnavailable",
    "RedisBackend",
    "Scope",
    "Settings",
    "Window",
    "WindowState",
    "build_plan",
    "estimate_cost",
    "format_duration",
    "key_limits",
    "parse_settings",
    "rate_limit_headers",
    "request_scopes",
]
