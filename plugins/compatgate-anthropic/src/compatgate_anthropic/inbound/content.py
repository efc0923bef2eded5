"""Validation of Anthropic ``messages`` and ``system``: roles, content blocks, their fields, and
the pairing of ``tool_use`` with ``tool_result`` that every upstream requires.

Blocks the conversion reads are checked field by field with Anthropic's rules (non-empty text,
image media types, tool ids ``^[a-zA-Z0-9_-]+$``...) and refuse unknown fields, as Anthropic
does. Server-side blocks (``server_tool_use``, ``web_search_tool_result``, ``compaction``...)
are accepted as they are: the conversion drops them (see `messages`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from .checks import boolean, invalid, known_keys, mapping, optional_string, string

__all__ = ["IMAGE_TYPES", "ROLES", "SERVER_BLOCKS", "check_messages", "check_system", "check_text_blocks"]

ROLES = ("user", "assistant", "system")
IMAGE_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")
#: Blocks that only Anthropic's servers produce and read: accepted, dropped by the conversion.
SERVER_BLOCKS = frozenset({
    "server_tool_use", "web_search_tool_result", "web_fetch_tool_result", "code_execution_tool_result",
    "bash_code_execution_tool_result", "text_editor_code_execution_tool_result",
    "tool_search_tool_result", "mcp_tool_use", "mcp_tool_result", "container_upload", "compaction",
    "advisor_tool_result",
})
_TOOL_ID = re.compile(r"[a-zA-Z0-9_-]+")
_CACHE_TTLS = ("5m", "1h")
_MAX_MESSAGES = 100_000


def check_messages(messages: Any) -> None:
    if not isinstance(messages, list):
        raise invalid("messages", "Input should be a valid list.")
    if not messages:
        raise invalid("messages", "At least one message is required.")
    if len(messages) > _MAX_MESSAGES:
        raise invalid("messages", f"At most {_MAX_MESSAGES} messages are accepted.")
    for index, message in enumerate(messages):
        path = f"messages.{index}"
        message = mapping(message, path)
        known_keys(message, ("role", "content"), path)
        role = message.get("role")
        if role not in ROLES:
            raise invalid(f"{path}.role", f"Input should be 'user', 'assistant' or 'system' (got {role!r}).")
        if "content" not in message:
            raise invalid(f"{path}.content", "Field required.")
        content = message["content"]
        if role == "system":
            check_system(content, f"{path}.content")
        elif isinstance(content, list):
            for position, block in enumerate(content):
                _block(block, f"{path}.content.{position}", role)
        elif not isinstance(content, str):
            raise invalid(f"{path}.content", "Input should be a valid string or a list of content blocks.")
        if not content and not (role == "assistant" and index == len(messages) - 1):
            raise invalid(f"{path}.content", "All messages must have non-empty content except for the "
                                             "optional final assistant message.")
    _check_pairing(messages)


def check_system(system: Any, path: str) -> None:
    """A system prompt: a string or a list of text blocks."""
    if isinstance(system, str):
        return
    if not isinstance(system, list):
        raise invalid(path, "Input should be a valid string or a list of text blocks.")
    check_text_blocks(system, path)


def check_text_blocks(blocks: Sequence[Any], path: str) -> None:
    for position, block in enumerate(blocks):
        here = f"{path}.{position}"
        if mapping(block, here).get("type") != "text":
            raise invalid(f"{here}.type", "Input should be 'text'.")
        _text(block, here)


# -- blocks -------------------------------------------------------------------------------


def _block(block: Any, path: str, role: str) -> None:
    block = mapping(block, path)
    kind = block.get("type")
    if kind in SERVER_BLOCKS:
        return
    check = _BLOCKS.get(kind) if isinstance(kind, str) else None
    if check is None:
        expected = ", ".join(sorted((*_BLOCKS, *SERVER_BLOCKS)))
        raise invalid(f"{path}.type", f"Input tag {kind!r} found using 'type' does not match any of the "
                                      f"expected tags: {expected}.")
    allowed_roles = _ROLE_OF.get(kind)
    if allowed_roles is not None and role not in allowed_roles:
        raise invalid(f"{path}.type", f"'{kind}' blocks may only appear in {allowed_roles[0]} messages.")
    check(block, path)


def _text(block: Mapping[str, Any], path: str) -> None:
    known_keys(block, ("type", "text", "cache_control", "citations"), path)
    string(block.get("text"), f"{path}.text")
    if not block["text"]:
        raise invalid(f"{path}.text", "Text content blocks must be non-empty.")
    _cache_control(block, path)


def _reference(kind: Any, source: Mapping[str, Any], here: str) -> bool:
    """Check a source that points elsewhere (a URL or an uploaded file's id), the same for
    images and documents; False for a source of another kind."""
    if kind == "url":
        known_keys(source, ("type", "url"), here)
        _url(source.get("url"), f"{here}.url")
    elif kind == "file":
        known_keys(source, ("type", "file_id"), here)
        string(source.get("file_id"), f"{here}.file_id", empty=False)
    else:
        return False
    return True


def _image(block: Mapping[str, Any], path: str) -> None:
    known_keys(block, ("type", "source", "cache_control"), path)
    source = mapping(block.get("source"), f"{path}.source")
    kind = source.get("type")
    here = f"{path}.source"
    if kind == "base64":
        known_keys(source, ("type", "media_type", "data"), here)
        if source.get("media_type") not in IMAGE_TYPES:
            raise invalid(f"{here}.media_type", f"Input should be {', '.join(IMAGE_TYPES)}.")
        string(source.get("data"), f"{here}.data", empty=False)
    elif not _reference(kind, source, here):
        raise invalid(f"{here}.type", "Input should be 'base64', 'url' or 'file'.")
    _cache_control(block, path)


def _document(block: Mapping[str, Any], path: str) -> None:
    known_keys(block, ("type", "source", "cache_control", "citations", "context", "title"), path)
    optional_string(block.get("title"), f"{path}.title")
    optional_string(block.get("context"), f"{path}.context")
    source = mapping(block.get("source"), f"{path}.source")
    kind = source.get("type")
    here = f"{path}.source"
    if kind == "base64":
        known_keys(source, ("type", "media_type", "data"), here)
        if source.get("media_type") != "application/pdf":
            raise invalid(f"{here}.media_type", "Input should be 'application/pdf'.")
        string(source.get("data"), f"{here}.data", empty=False)
    elif kind == "text":
        known_keys(source, ("type", "media_type", "data"), here)
        if source.get("media_type") != "text/plain":
            raise invalid(f"{here}.media_type", "Input should be 'text/plain'.")
        string(source.get("data"), f"{here}.data")
    elif kind == "content":
        known_keys(source, ("type", "content"), here)
        content = source.get("content")
        if not isinstance(content, (str, list)):
            raise invalid(f"{here}.content", "Input should be a valid string or a list of blocks.")
        for position, part in enumerate(content if isinstance(content, list) else ()):
            _nested(part, f"{here}.content.{position}", ("text", "image"))
    elif not _reference(kind, source, here):
        raise invalid(f"{here}.type", "Input should be 'base64', 'text', 'content', 'url' or 'file'.")
    _cache_control(block, path)


def _search_result(block: Mapping[str, Any], path: str) -> None:
    known_keys(block, ("type", "source", "title", "content", "cache_control", "citations"), path)
    string(block.get("source"), f"{path}.source")
    string(block.get("title"), f"{path}.title")
    content = block.get("content")
    if not isinstance(content, list):
        raise invalid(f"{path}.content", "Input should be a valid list.")
    check_text_blocks(content, f"{path}.content")
    _cache_control(block, path)


def _thinking(block: Mapping[str, Any], path: str) -> None:
    known_keys(block, ("type", "thinking", "signature"), path)
    string(block.get("thinking"), f"{path}.thinking")
    string(block.get("signature"), f"{path}.signature")


def _redacted_thinking(block: Mapping[str, Any], path: str) -> None:
    known_keys(block, ("type", "data"), path)
    string(block.get("data"), f"{path}.data")


def _tool_use(block: Mapping[str, Any], path: str) -> None:
    known_keys(block, ("type", "id", "name", "input", "cache_control", "caller"), path)
    _tool_id(block.get("id"), f"{path}.id")
    string(block.get("name"), f"{path}.name", empty=False, limit=200)
    mapping(block.get("input"), f"{path}.input")
    _cache_control(block, path)


def _tool_result(block: Mapping[str, Any], path: str) -> None:
    known_keys(block, ("type", "tool_use_id", "content", "is_error", "cache_control"), path)
    _tool_id(block.get("tool_use_id"), f"{path}.tool_use_id")
    if block.get("is_error") is not None:
        boolean(block["is_error"], f"{path}.is_error")
    content = block.get("content")
    if isinstance(content, list):
        for position, part in enumerate(content):
            _nested(part, f"{path}.content.{position}", ("text", "image", "document", "search_result",
                                                         "tool_reference"))
    elif content is not None and not isinstance(content, str):
        raise invalid(f"{path}.content", "Input should be a valid string or a list of content blocks.")
    _cache_control(block, path)


def _tool_reference(block: Mapping[str, Any], path: str) -> None:
    known_keys(block, ("type", "tool_name", "cache_control"), path)
    string(block.get("tool_name"), f"{path}.tool_name", empty=False)


def _nested(part: Any, path: str, kinds: tuple[str, ...]) -> None:
    kind = mapping(part, path).get("type")
    if kind not in kinds:
        raise invalid(f"{path}.type", f"Input should be one of {', '.join(kinds)} (got {kind!r}).")
    _BLOCKS[kind](part, path)


def _url(value: Any, path: str) -> None:
    url = string(value, path, empty=False)
    if not url.startswith(("https://", "http://")):
        raise invalid(path, "Input should be an http(s) URL.")


def _tool_id(value: Any, path: str) -> None:
    if not isinstance(value, str) or not _TOOL_ID.fullmatch(value):
        raise invalid(path, "String should match pattern '^[a-zA-Z0-9_-]+$'.")


def _cache_control(block: Mapping[str, Any], path: str) -> None:
    control = block.get("cache_control")
    if control is None:
        return
    here = f"{path}.cache_control"
    known_keys(mapping(control, here), ("type", "ttl"), here)
    if control.get("type") != "ephemeral":
        raise invalid(f"{here}.type", "Input should be 'ephemeral'.")
    if control.get("ttl") is not None and control["ttl"] not in _CACHE_TTLS:
        raise invalid(f"{here}.ttl", "Input should be '5m' or '1h'.")


_BLOCKS = {
    "text": _text,
    "image": _image,
    "document": _document,
    "search_result": _search_result,
    "thinking": _thinking,
    "redacted_thinking": _redacted_thinking,
    "tool_use": _tool_use,
    "tool_result": _tool_result,
    "tool_reference": _tool_reference,
}
_ROLE_OF = {
    "thinking": ("assistant",),
    "redacted_thinking": ("assistant",),
    "tool_use": ("assistant",),
    "tool_result": ("user",),
    "tool_reference": ("user",),
}


# -- tool_use / tool_result pairing -----------------------------------------------------------


def _check_pairing(messages: list[Any]) -> None:
    """Every ``tool_use`` of an assistant turn is answered by a ``tool_result`` in the next user
    turn, and every ``tool_result`` answers one. Consecutive messages of one role make one turn,
    as Anthropic merges them; system messages in between are skipped."""
    turns: list[tuple[int, str, list[Mapping[str, Any]]]] = []
    for index, message in enumerate(messages):
        if message["role"] == "system":
            continue
        content = message["content"]
        blocks = [b for b in content if isinstance(b, Mapping)] if isinstance(content, list) else []
        if turns and turns[-1][1] == message["role"]:
            turns[-1][2].extend(blocks)
        else:
            turns.append((index, message["role"], blocks))
    seen: set[str] = set()
    for position, (index, role, blocks) in enumerate(turns):
        if role == "assistant":
            calls = [b["id"] for b in blocks if b.get("type") == "tool_use"]
            for call in calls:
                if call in seen:
                    raise invalid(f"messages.{index}", f"tool_use ids must be unique: {call!r} appears twice.")
                seen.add(call)
            following = turns[position + 1] if position + 1 < len(turns) else None
            if following is None:
                continue
            answered = {b["tool_use_id"] for b in following[2] if b.get("type") == "tool_result"}
            missing = [call for call in calls if call not in answered]
            if missing:
                raise invalid(f"messages.{index}", "`tool_use` ids were found without `tool_result` blocks "
                              f"immediately after: {', '.join(missing)}. Each `tool_use` block must have a "
                              "corresponding `tool_result` block in the next message.")
            continue
        previous = turns[position - 1] if position else None
        called = {b["id"] for b in previous[2] if b.get("type") == "tool_use"} if previous else set()
        unexpected = [b["tool_use_id"] for b in blocks
                      if b.get("type") == "tool_result" and b["tool_use_id"] not in called]
        if unexpected:
            raise invalid(f"messages.{index}.content", "unexpected `tool_use_id` found in `tool_result` "
                          f"blocks: {', '.join(unexpected)}. Each `tool_result` block must have a "
                          "corresponding `tool_use` block in the previous message.")
