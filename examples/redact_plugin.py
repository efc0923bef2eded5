"""A small third-party plugin: redact e-mail addresses from prompts and tag the usage.

It redacts what users write to ``/chat/completions`` (``messages``), ``/completions``
(``prompt``) and ``/responses`` (``input``, ``instructions``), and counts the redactions per
key. Try it without packaging: ``compatgate serve --config compatgate.toml --plugin
examples/redact_plugin.py:RedactEmails``.

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
# Where each endpoint carries what the user wrote; the other endpoints are left alone.
PROMPT_FIELDS = {
    "chat.completions": ("messages",),
    "completions": ("prompt",),
    "responses": ("input", "instructions"),
}
TEXT_KEYS = {"content", "text", "output"}  # in messages, Responses items and content parts
logger = logging.getLogger("compatgate.redact")


class RedactEmails:
    """Redacts the prompts of chat completions (``messages``), legacy completions (``prompt``)
    and Responses (``input`` and ``instructions``) before they leave the gateway."""

    def __init__(self, gateway: Gateway) -> None:
        self.replacement = str(gateway.config.plugin("redact").get("replacement", "[email]"))
        self.redacted_by_key: dict[str, int] = {}

    @hookimpl
    def transform_request(self, ctx: RequestContext, body: dict[str, Any]) -> dict[str, Any] | None:
        fields = PROMPT_FIELDS.get(ctx.endpoint, ())
        counter = [0]
        redacted = {key: self._redact(body[key], counter) for key in fields if key in body}
        ctx.state["redact"] = counter[0]
        return {**body, **redacted} if counter[0] else None

    def _redact(self, value: Any, counter: list[int]) -> Any:
        """``value`` with every e-mail address replaced: a string, a list of them (or of
        messages, items or content parts), or a message/part whose text is in ``content``,
        ``text`` or ``output``."""
        if isinstance(value, str):
            text, count = EMAIL.subn(self.replacement, value)
            counter[0] += count
            return text
        if isinstance(value, list):
            return [self._redact(item, counter) for item in value]
        if isinstance(value, dict):
            return {k: self._redact(v, counter) if k in TEXT_KEYS else v for k, v in value.items()}
        return value  # token ids, images, numbers

    @hookimpl
    def record_usage(self, ctx: RequestContext, record: UsageRecord) -> None:
        count = ctx.state.get("redact", 0)
        if count and record.key_id:
            self.redacted_by_key[record.key_id] = self.redacted_by_key.get(record.key_id, 0) + count
            logger.info("request %s: %d e-mail address(es) redacted", record.request_id, count)
