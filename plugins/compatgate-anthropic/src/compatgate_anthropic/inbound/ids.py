"""Identifiers of the Anthropic answers the gateway builds.

Anthropic requires tool ids matching ``^[a-zA-Z0-9_-]+$``; chat upstreams use other characters
(Kimi's ``functions.get_weather:0``). `tool_id` keeps a conforming id as it is and encodes any
other one reversibly (``toolu_b64_`` + base64url), and `upstream_tool_id` decodes it, so the
id the client echoes in its ``tool_result`` reaches the upstream exactly as the upstream made
it, with nothing stored in the gateway.
"""

from __future__ import annotations

import base64
import binascii
import re
import uuid

__all__ = ["message_id", "new_tool_id", "tool_id", "upstream_tool_id"]

_VALID = re.compile(r"[a-zA-Z0-9_-]+")
_ENCODED = "toolu_b64_"


def message_id(chat_id: object = None) -> str:
    """An Anthropic message id: ``msg_`` + the upstream's id when it has one (kept as it is
    when it already starts with ``msg_``), else ``msg_`` + 24 random hex digits."""
    if isinstance(chat_id, str) and chat_id:
        return chat_id if chat_id.startswith("msg_") else f"msg_{chat_id}"
    return f"msg_{uuid.uuid4().hex[:24]}"


def new_tool_id() -> str:
    """A fresh tool id, for a tool call the upstream gave none."""
    return f"toolu_{uuid.uuid4().hex[:24]}"


def tool_id(upstream_id: object) -> str:
    """The Anthropic tool id for an upstream tool call id (a fresh one when it has none)."""
    if not isinstance(upstream_id, str) or not upstream_id:
        return new_tool_id()
    if _VALID.fullmatch(upstream_id) and not upstream_id.startswith(_ENCODED):
        return upstream_id
    encoded = base64.urlsafe_b64encode(upstream_id.encode("utf-8")).rstrip(b"=").decode("ascii")
    return _ENCODED + encoded


def upstream_tool_id(anthropic_id: str) -> str:
    """The upstream's tool call id for an id `tool_id` made (other ids are returned as they are)."""
    if not anthropic_id.startswith(_ENCODED):
        return anthropic_id
    encoded = anthropic_id[len(_ENCODED):]
    try:
        return base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode("utf-8")
    except (binascii.Error, ValueError):
        return anthropic_id
