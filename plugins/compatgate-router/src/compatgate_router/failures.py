"""What a failed try means: its reason, how long the upstream asked us to wait, the backoff.

Reasons: ``unreachable`` (no connection), ``timeout`` (504, or a provider timeout),
``429``, ``5xx``, ``context_length_exceeded`` (the upstream's error code); anything else —
a 4xx client error, a gateway error that is not an upstream's — has no reason: it is never
retried and never falls back.
"""

from __future__ import annotations

import math
import random
import time
from email.utils import parsedate_to_datetime

from compatgate import GatewayError, UpstreamError, UpstreamTimeoutError, UpstreamUnavailableError

__all__ = ["backoff", "reason", "retry_after"]


def reason(error: GatewayError) -> str | None:
    """The reason ``error`` gives to retry or fall back, None for a client error."""
    if not isinstance(error, UpstreamError):
        return None
    if error.code == "context_length_exceeded":
        return "context_length_exceeded"
    if isinstance(error, UpstreamTimeoutError) or error.status_code == 504:
        return "timeout"
    if isinstance(error, UpstreamUnavailableError):
        return "unreachable"
    if error.status_code == 429:
        return "429"
    if error.status_code >= 500:
        return "5xx"
    return None


def retry_after(error: GatewayError) -> float | None:
    """The seconds the upstream's ``Retry-After`` (seconds or an HTTP date) asks for."""
    value = error.headers.get("retry-after")
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
    return max(0.0, seconds) if math.isfinite(seconds) else None


def backoff(retry: int, base: float, most: float, rng: random.Random) -> float:
    """The wait before the ``retry``-th retry of a deployment already tried (0 for the first):
    ``min(most, base * 2 ** retry)``, scaled by a random factor in [0.5, 1] (jitter)."""
    return min(most, base * 2.0 ** min(retry, 30)) * rng.uniform(0.5, 1.0)
