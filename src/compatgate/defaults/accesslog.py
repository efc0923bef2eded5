"""Default plugin: one access-log line per API request on the ``compatgate.access`` logger.

``[gateway] access_log`` chooses ``"text"`` (the default), ``"json"`` (one JSON object a line)
or ``"off"``. A line holds the request id, key id (never the key), model, provider, status,
outcome, latency, time to first token, tokens and attempts; the prompt only when
``[gateway] log_prompts = true``. Nothing is formatted when the logger does not emit INFO.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson

from ..context import RequestContext
from ..hookspecs import hookimpl
from ..usage import UsageRecord

logger = logging.getLogger("compatgate.access")


@hookimpl(trylast=True)
def record_usage(ctx: RequestContext, record: UsageRecord) -> None:
    settings = ctx.gateway.config.gateway
    if settings.access_log == "off" or not logger.isEnabledFor(logging.INFO):
        return
    entry = access_entry(record)
    if settings.log_prompts:
        entry["prompt"] = {k: ctx.body[k] for k in ("messages", "prompt", "input") if k in ctx.body}
    if settings.access_log == "json":
        logger.info(orjson.dumps(entry).decode())
    else:
        logger.info(" ".join(f"{key}={_text(value)}" for key, value in entry.items()))


def access_entry(record: UsageRecord) -> dict[str, Any]:
    """The fields of one access-log line."""
    usage = record.usage
    return {
        "request_id": record.request_id,
        "endpoint": record.endpoint,
        "key_id": record.key_id,
        "model": record.model,
        "provider": record.provider,
        "status": record.status_code,
        "outcome": record.outcome,
        "streamed": record.streamed,
        "latency_ms": round(record.latency_ms, 2),
        "ttft_ms": None if record.time_to_first_token_ms is None else round(record.time_to_first_token_ms, 2),
        "prompt_tokens": usage.prompt_tokens if usage else None,
        "completion_tokens": usage.completion_tokens if usage else None,
        "cached_tokens": usage.cached_tokens if usage else None,
        "estimated": usage.estimated if usage else None,
        "attempts": len(record.attempts),
        "error": record.error,
        "error_code": record.error_code,
    }


def _text(value: Any) -> str:
    """A value of the text format: quoted (JSON, so control characters are escaped and a value
    can never forge a line or a field) when it is empty, has spaces, quotes, ``=`` or anything
    unprintable."""
    if isinstance(value, str) and (not value or not value.isprintable() or any(c in value for c in ' "=')):
        return orjson.dumps(value).decode()
    return "-" if value is None else str(value)
