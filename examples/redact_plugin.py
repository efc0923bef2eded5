"""A small third-party plugin: redact e-mail addresses from prompts and tag the usage.

Use it directly, ``Gateway("compatgate.toml", plugins=[RedactEmails])``, or package it as
``compatgate-redact`` with an entry point in the ``compatgate`` group::

    [project.entry-points.compatgate]
    redact = "compatgate_redact:RedactEmails"

Being a class, it is instantiated once per gateway (``RedactEmails(gateway)``), so its counters
belong to that gateway alone. Its table in the configuration::

    [plugins.redact]
    replacement = "[email]"
"""

from __future__ import annotations

import logging
import re
from typing import Any

from compatgate import Gateway, RequestContext, UsageRecord, hookimpl

EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
logger = logging.getLogger("compatgate.redact")


class RedactEmails:
    def __init__(self, gateway: Gateway) -> None:
        self.replacement = str(gateway.config.plugin("redact").get("replacement", "[email]"))
        self.redacted_by_key: dict[str, int] = {}

    @hookimpl
    def transform_request(self, ctx: RequestContext, body: dict[str, Any]) -> dict[str, Any] | None:
        if ctx.endpoint != "chat.completions":
            return None
        count = 0
        messages = []
        for message in body.get("messages", []):
            content = message.get("content")
            if isinstance(content, str):
                content, n = EMAIL.subn(self.replacement, content)
                count += n
            elif isinstance(content, list):
                parts = []
                for part in content:
                    if isinstance(part, dict) and isinstance(part.get("text"), str):
                        text, n = EMAIL.subn(self.replacement, part["text"])
                        part, count = {**part, "text": text}, count + n
                    parts.append(part)
                content = parts
            messages.append({**message, "content": content})
        ctx.state["redact"] = count
        return {**body, "messages": messages} if count else None

    @hookimpl
    def record_usage(self, ctx: RequestContext, record: UsageRecord) -> None:
        count = ctx.state.get("redact", 0)
        if count and record.key_id:
            self.redacted_by_key[record.key_id] = self.redacted_by_key.get(record.key_id, 0) + count
            logger.info("request %s: %d e-mail address(es) redacted", record.request_id, count)
