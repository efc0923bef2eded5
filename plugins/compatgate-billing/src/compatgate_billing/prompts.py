"""The prompt a ledger row keeps when the gateway's ``[gateway] log_prompts`` is on.

Off by default: the ledger then holds no prompt text at all. On, each row of a virtual key's
request keeps the request's ``messages``, ``prompt`` or ``input`` (the fields the access log
shows) as JSON, cut to `PROMPT_CHARS` characters, so that the console's request log can show it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

__all__ = ["PROMPT_CHARS", "prompt_text"]

PROMPT_CHARS = 8192
_FIELDS = ("messages", "prompt", "input", "instructions")


def prompt_text(body: Mapping[str, Any] | None) -> str | None:
    """The prompt fields of ``body`` as JSON (at most `PROMPT_CHARS` characters), None when
    it has none."""
    if not body:
        return None
    fields = {name: body[name] for name in _FIELDS if name in body}
    if not fields:
        return None
    text = orjson.dumps(fields, default=str).decode()
    return text if len(text) <= PROMPT_CHARS else text[: PROMPT_CHARS - 1] + "…"
