"""Anthropic ``system`` and ``messages`` -> chat completions ``messages`` (the pivot).

- ``system`` (a string or text blocks) becomes the first system message; ``role: "system"``
  messages inside ``messages`` (as Claude Code sends them) stay system messages where they are
  (one between tool calls and their results follows the results: chat requires the ``tool``
  messages right after the calls).
- Consecutive messages of one role are merged first, as Anthropic does.
- A user turn's ``tool_result`` blocks become ``tool`` messages (before its other content, as
  chat requires them right after the assistant's ``tool_calls``): text content joined by
  newlines, ``is_error`` said as an ``Error: `` prefix; images in a result (chat tool messages
  carry text only) follow in the user message, introduced by a line naming the tool call.
- User blocks: text; images (base64 -> data URL, url -> URL); PDF documents -> ``file`` parts
  (base64) ; text documents, ``content`` documents and search results -> text (title first).
- Assistant turns: text joined, ``tool_use`` -> ``tool_calls`` (ids back to the upstream's, see
  `ids`), ``thinking`` blocks signed by the gateway for this model -> ``reasoning_content`` and
  the upstream state they carry (``thinking_blocks``, ``extra_content.google.thought_signature``);
  other thinking blocks are dropped, as are ``redacted_thinking`` blocks.
- Server-side blocks and ``cache_control`` have no chat form: dropped (reported, see `Notes`).
- Refused (400): Files API ids (``source.type: "file"``) and PDF URLs, which chat cannot carry.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from .checks import invalid
from .content import SERVER_BLOCKS
from .ids import upstream_tool_id
from .signing import Signer, ThinkingState, unseal

__all__ = ["Notes", "convert_messages", "system_message"]

Body = dict[str, Any]


@dataclass(slots=True)
class Notes:
    """What the conversion left out: paths of blocks dropped, and thinking blocks not restored."""

    ignored: list[str] = field(default_factory=list)
    dropped_thinking: int = 0


def system_message(system: Any) -> Body | None:
    """The system message for a ``system`` prompt (None when empty)."""
    if isinstance(system, str):
        return {"role": "system", "content": system} if system else None
    parts = [{"type": "text", "text": block["text"]} for block in system or ()]
    return {"role": "system", "content": parts} if parts else None


def convert_messages(messages: list[Any], signer: Signer, model: str, notes: Notes) -> list[Body]:
    converted: list[Body] = []
    waiting: list[Body] = []  # system messages between tool calls and their results
    for index, role, blocks in _turns(messages):
        if role == "system":
            message = system_message(blocks)
            if message is None:
                continue
            if waiting or converted and converted[-1].get("tool_calls"):
                waiting.append(message)  # chat needs the tool messages right after the calls
            else:
                converted.append(message)
        elif role == "user":
            tools, rest = _user(blocks, index, notes)
            converted += [*tools, *waiting, *rest]
            waiting = []
        else:
            converted += waiting
            waiting = []
            message = _assistant(blocks, index, signer, model, notes)
            if message is not None:
                converted.append(message)
    return converted + waiting


def _turns(messages: list[Any]) -> list[tuple[int, str, Any]]:
    """``(index of the first message, role, content)``, consecutive user or assistant messages
    merged (their content as a list of ``(path, block)``)."""
    turns: list[tuple[int, str, Any]] = []
    for index, message in enumerate(messages):
        role, content = message["role"], message["content"]
        if role == "system":
            turns.append((index, role, content))
            continue
        if isinstance(content, str):
            blocks = [(f"messages.{index}.content", {"type": "text", "text": content})] if content else []
        else:
            blocks = [(f"messages.{index}.content.{i}", block) for i, block in enumerate(content)]
        if turns and turns[-1][1] == role:
            turns[-1][2].extend(blocks)
        else:
            turns.append((index, role, blocks))
    return turns


# -- user turns -------------------------------------------------------------------------------


def _user(blocks: list[tuple[str, Mapping[str, Any]]], index: int, notes: Notes) -> tuple[list[Body], list[Body]]:
    """The tool messages of a user turn, and its user message (if any)."""
    tools: list[Body] = []
    parts: list[Body] = []  # the images of tool results first, then the user's own content
    own: list[Body] = []
    for path, block in blocks:
        kind = block["type"]
        if kind == "tool_result":
            message, images = _tool_result(block, path, notes)
            tools.append(message)
            if images:
                parts.append({"type": "text", "text": f"Images returned by the tool call {block['tool_use_id']}:"})
                parts.extend(images)
        elif kind in SERVER_BLOCKS:
            notes.ignored.append(f"{path} ({kind})")
        else:
            own.extend(_part(block, path))
    if not (parts or own):
        return tools, []
    from_string = len(blocks) == 1 and blocks[0][0].endswith(".content")  # the client sent a string
    content: Any = own[0]["text"] if from_string and not parts else parts + own
    return tools, [{"role": "user", "content": content}]


def _tool_result(block: Mapping[str, Any], path: str, notes: Notes) -> tuple[Body, list[Body]]:
    content = block.get("content")
    texts: list[str] = []
    images: list[Body] = []
    if isinstance(content, str):
        texts.append(content)
    else:
        for position, part in enumerate(content or ()):
            for converted in _part(part, f"{path}.content.{position}"):
                if converted["type"] == "text":
                    texts.append(converted["text"])
                else:
                    images.append(converted)
    text = "\n".join(texts)
    if block.get("is_error"):
        text = f"Error: {text}" if text else "Error"
    message = {"role": "tool", "tool_call_id": upstream_tool_id(block["tool_use_id"]), "content": text}
    return message, images


def _part(block: Mapping[str, Any], path: str) -> list[Body]:
    """The chat content parts for one user block (or block inside a tool result / document)."""
    kind = block["type"]
    if kind == "text":
        return [{"type": "text", "text": block["text"]}]
    if kind == "image":
        return [_image(block["source"], path)]
    if kind == "document":
        return _document(block, path)
    if kind == "search_result":
        text = "\n".join(part["text"] for part in block["content"])
        return [{"type": "text", "text": _titled((block["title"], block["source"]), text)}]
    if kind == "tool_reference":
        return [{"type": "text", "text": f"Tool available: {block['tool_name']}"}]
    raise invalid(f"{path}.type", f"'{kind}' blocks cannot be sent to this model.")  # validation stops these


def _image(source: Mapping[str, Any], path: str) -> Body:
    if source["type"] == "base64":
        url = f"data:{source['media_type']};base64,{source['data']}"
    elif source["type"] == "url":
        url = source["url"]
    else:
        raise invalid(f"{path}.source", "Files API ids cannot be sent to this model: send the image as "
                                        "base64 or as a URL.")
    return {"type": "image_url", "image_url": {"url": url}}


def _document(block: Mapping[str, Any], path: str) -> list[Body]:
    source = block["source"]
    heading = (block.get("title"), block.get("context"))
    if source["type"] == "base64":
        title = block.get("title") or "document.pdf"
        return [{"type": "file", "file": {"filename": title,
                                          "file_data": f"data:application/pdf;base64,{source['data']}"}}]
    if source["type"] == "text":
        return [{"type": "text", "text": _titled(heading, source["data"])}]
    if source["type"] == "content":
        inner = source["content"]
        if isinstance(inner, str):
            return [{"type": "text", "text": _titled(heading, inner)}]
        parts = [p for i, b in enumerate(inner) for p in _part(b, f"{path}.source.content.{i}")]
        title = _titled(heading, "")
        return ([{"type": "text", "text": title}] if title else []) + parts
    raise invalid(f"{path}.source", "Only base64 and text documents can be sent to this model (PDF URLs "
                                    "and Files API ids cannot): send the PDF as base64.")


def _titled(heading: tuple[Any, ...], text: str) -> str:
    lines = [line for line in heading if isinstance(line, str) and line]
    return "\n\n".join([*lines, text]) if text else "\n\n".join(lines)


# -- assistant turns --------------------------------------------------------------------------


def _assistant(blocks: list[tuple[str, Mapping[str, Any]]], index: int, signer: Signer, model: str,
               notes: Notes) -> Body | None:
    texts: list[str] = []
    reasoning: list[str] = []
    state = ThinkingState()
    calls: list[Body] = []
    for path, block in blocks:
        kind = block["type"]
        if kind == "text":
            texts.append(block["text"])
        elif kind == "tool_use":
            arguments = orjson.dumps(block["input"]).decode()
            calls.append({"id": upstream_tool_id(block["id"]), "type": "function",
                          "function": {"name": block["name"], "arguments": arguments}})
        elif kind == "thinking":
            restored = unseal(signer, block["signature"], model=model, thinking=block["thinking"])
            if restored is None:
                notes.dropped_thinking += 1
                continue
            state.merge(restored)
            if block["thinking"]:
                reasoning.append(block["thinking"])
        elif kind == "redacted_thinking":
            notes.dropped_thinking += 1
        else:
            notes.ignored.append(f"{path} ({kind})")
    if not (texts or calls or reasoning or state):
        return None
    message: Body = {"role": "assistant", "content": "".join(texts) if texts else (None if calls else "")}
    if reasoning:
        message["reasoning_content"] = "".join(reasoning)
    if state.blocks:
        message["thinking_blocks"] = state.blocks
    if state.message:
        message["extra_content"] = {"google": {"thought_signature": state.message}}
    for call in calls:
        signature = state.tools.get(call["id"])
        if signature:
            call["extra_content"] = {"google": {"thought_signature": signature}}
    if calls:
        message["tool_calls"] = calls
    return message
