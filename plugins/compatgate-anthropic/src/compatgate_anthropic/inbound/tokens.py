"""A local estimate of the input tokens of an Anthropic request, for ``count_tokens`` on
upstreams without a counter of their own, and for ``message_start`` before the upstream says.

The estimate (`count_tokens_estimate`) is `compatgate.usage.estimate_tokens` (one token per four
characters, rounded up) of: the system prompt, every text, thinking text, tool call (name and
input JSON), tool result, search result (title, source, text) and text
document (title, context, text), sixteen characters of framing per message, and the
tools' JSON (name, description, schema); plus 1,600 tokens per image (Anthropic's figure for an
image at its largest unscaled size) and 2,000 per PDF page (the middle of Anthropic's 1,500-3,000
per page; pages counted from the PDF's page objects, at least one). It is rough: real tokenizers
differ by model, by language and for code, by tens of percent.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from typing import Any

import orjson

from compatgate.usage import estimate_tokens

__all__ = ["IMAGE_TOKENS", "PDF_PAGE_TOKENS", "count_tokens_answer", "count_tokens_estimate"]

IMAGE_TOKENS = 1600
PDF_PAGE_TOKENS = 2000
_FRAMING = 16
_PAGE = re.compile(rb"/Type\s*/Page(?![a-zA-Z])")


class _Tally:
    __slots__ = ("characters", "tokens")

    def __init__(self) -> None:
        self.characters = 0
        self.tokens = 0


def count_tokens_estimate(body: Mapping[str, Any]) -> int:
    """The estimated input tokens of a validated Messages or count_tokens body (at least 1)."""
    tally = _Tally()
    _content(body.get("system"), tally)
    for message in body.get("messages") or ():
        tally.characters += _FRAMING
        if isinstance(message, Mapping):
            _content(message.get("content"), tally)
    for tool in body.get("tools") or ():
        if isinstance(tool, Mapping):
            described = {k: tool[k] for k in ("name", "description", "input_schema") if k in tool}
            tally.characters += len(orjson.dumps(described))
    return max(1, estimate_tokens(tally.characters) + tally.tokens)


def count_tokens_answer(tokens: int) -> dict[str, int]:
    """The body of a ``count_tokens`` answer."""
    return {"input_tokens": tokens}


def _content(content: Any, tally: _Tally) -> None:
    if isinstance(content, str):
        tally.characters += len(content)
    elif isinstance(content, list):
        for block in content:
            if isinstance(block, Mapping):
                _block(block, tally)


def _block(block: Mapping[str, Any], tally: _Tally) -> None:
    kind = block.get("type")
    if kind == "text":
        _content(block.get("text"), tally)
    elif kind == "thinking":
        _content(block.get("thinking"), tally)
    elif kind == "image":
        tally.tokens += IMAGE_TOKENS
    elif kind == "tool_use":
        tally.characters += len(str(block.get("name", ""))) + len(orjson.dumps(block.get("input")))
    elif kind == "tool_result":
        _content(block.get("content"), tally)
    elif kind == "search_result":
        for name in ("title", "source", "content"):
            _content(block.get(name), tally)
    elif kind == "document":
        _document(block, tally)


def _document(block: Mapping[str, Any], tally: _Tally) -> None:
    source = block.get("source")
    if not isinstance(source, Mapping):
        return
    for name in ("title", "context"):
        _content(block.get(name), tally)
    if source.get("type") == "text":
        _content(source.get("data"), tally)
    elif source.get("type") == "content":
        _content(source.get("content"), tally)
    elif source.get("type") == "base64" and isinstance(source.get("data"), str):
        try:
            pdf = base64.b64decode(source["data"])
        except (binascii.Error, ValueError):
            pdf = b""
        tally.tokens += PDF_PAGE_TOKENS * max(1, len(_PAGE.findall(pdf)))
    else:
        tally.tokens += PDF_PAGE_TOKENS  # a URL or file id: one page, for want of better
