"""OpenAI ``messages`` -> Anthropic ``system`` and ``messages``.

- ``system`` and ``developer`` messages, wherever they are, become the top-level ``system``
  text blocks, in order.
- ``tool`` messages become ``tool_result`` blocks of a user turn; consecutive turns of the same
  role are merged (so several tool results make one turn, with the ``tool_result`` blocks
  first, as Anthropic requires).
- Assistant ``tool_calls`` become ``tool_use`` blocks (``arguments`` parsed: ``""`` -> ``{}``,
  invalid JSON -> 400); ``thinking_blocks`` (as this plugin returns them) go back first.
- Content parts: text, ``image_url`` (data URL -> base64 source with its media type, http(s)
  URL -> URL source), ``file`` with ``file_data`` (PDF or plain text -> document).
  ``cache_control`` on a part, a message (its last block) and OpenAI's
  ``prompt_cache_breakpoint`` on a part become Anthropic ``cache_control``.

Every refusal is an `InvalidRequestError` naming the offending place (``messages[2].content``).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Mapping
from typing import Any

import orjson

from compatgate import InvalidRequestError

__all__ = ["convert_messages", "tool_id"]

Block = dict[str, Any]
Converter = Callable[[Mapping[str, Any], str], Block | None]

_IMAGE_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")
_DATA_URL = re.compile(r"data:(?P<type>[^;,]*)(?P<params>(?:;[^;,]*)*),(?P<data>.*)", re.DOTALL)
_NOT_ID = re.compile(r"[^a-zA-Z0-9_-]")
_UNCACHEABLE = ("thinking", "redacted_thinking")


def convert_messages(messages: list[Any]) -> tuple[list[Block], list[dict[str, Any]]]:
    """The ``system`` blocks and the merged user/assistant turns for ``messages``."""
    system: list[Block] = []
    turns: list[dict[str, Any]] = []
    for index, message in enumerate(messages):
        where = f"messages[{index}]"
        role = message.get("role")
        if role in ("system", "developer"):
            system.extend(_cached(message, _parts(message.get("content"), where, _SYSTEM_PARTS), where))
            continue
        if role == "user":
            blocks = _parts(_required(message, "content", where), where, _USER_PARTS)
        elif role == "assistant":
            blocks = _assistant(message, where)
        elif role == "tool":
            blocks, role = [_tool_result(message, where)], "user"
        else:
            raise _invalid(f"The role {role!r} of '{where}' is not supported by Claude models "
                           "(use system, developer, user, assistant or tool).", f"{where}.role")
        blocks = _cached(message, blocks, where)
        if not blocks:
            if role == "assistant":
                continue  # an assistant turn that said nothing: dropping it loses nothing
            raise _invalid(f"'{where}' has no content; Claude needs non-empty content in every "
                           "user message.", f"{where}.content")
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
    if not turns:
        raise _invalid("Claude needs at least one user or assistant message besides the system "
                       "messages.", "messages")
    for turn in turns:
        if turn["role"] == "user":
            content = turn["content"]
            turn["content"] = [b for b in content if b["type"] == "tool_result"] + [
                b for b in content if b["type"] != "tool_result"
            ]
    return system, turns


def tool_id(value: str) -> str:
    """A tool call id as Anthropic accepts it (``[a-zA-Z0-9_-]+``); other characters -> ``_``,
    the same way for a ``tool_use`` and its ``tool_result``."""
    return _NOT_ID.sub("_", value)


# -- messages -----------------------------------------------------------------------------


def _assistant(message: Mapping[str, Any], where: str) -> list[Block]:
    for name in ("audio", "function_call"):
        if message.get(name) is not None:
            raise _invalid(f"'{where}.{name}' cannot be sent to Claude models"
                           f"{'; use tool_calls' if name == 'function_call' else ''}.", f"{where}.{name}")
    blocks = _thinking(message.get("thinking_blocks"), f"{where}.thinking_blocks")
    blocks += _parts(message.get("content"), where, _ASSISTANT_PARTS)
    refusal = message.get("refusal")
    if isinstance(refusal, str) and refusal:
        blocks.append({"type": "text", "text": refusal})
    calls = message.get("tool_calls")
    if calls is not None and not isinstance(calls, list):
        raise _invalid(f"'{where}.tool_calls' must be an array.", f"{where}.tool_calls")
    for position, call in enumerate(calls or ()):
        blocks.append(_tool_use(call, f"{where}.tool_calls[{position}]"))
    return blocks


def _tool_use(call: Any, where: str) -> Block:
    if not isinstance(call, dict) or call.get("type", "function") != "function":
        raise _invalid(f"'{where}' must be a function tool call.", where)
    function = call.get("function")
    if not isinstance(function, dict) or not isinstance(function.get("name"), str) or not function["name"]:
        raise _invalid(f"'{where}.function.name' is required.", f"{where}.function.name")
    call_id = call.get("id")
    if not isinstance(call_id, str) or not call_id:
        raise _invalid(f"'{where}.id' is required.", f"{where}.id")
    block: Block = {
        "type": "tool_use",
        "id": tool_id(call_id),
        "name": function["name"],
        "input": _arguments(function.get("arguments"), f"{where}.function.arguments"),
    }
    return _with_cache_control(block, call, where)


def _arguments(arguments: Any, where: str) -> dict[str, Any]:
    if isinstance(arguments, dict):
        return arguments
    if arguments is None or isinstance(arguments, str) and not arguments.strip():
        return {}
    if not isinstance(arguments, str):
        raise _invalid(f"'{where}' must be a string of JSON.", where)
    try:
        value = orjson.loads(arguments)
    except orjson.JSONDecodeError as exc:
        raise _invalid(f"'{where}' is not valid JSON ({exc}); Claude needs the arguments of "
                       "earlier tool calls as a JSON object.", where) from None
    if not isinstance(value, dict):
        raise _invalid(f"'{where}' must be a JSON object for Claude models.", where)
    return value


def _tool_result(message: Mapping[str, Any], where: str) -> Block:
    call_id = message.get("tool_call_id")
    if not isinstance(call_id, str) or not call_id:
        raise _invalid(f"'{where}.tool_call_id' is required for tool messages.", f"{where}.tool_call_id")
    block: Block = {"type": "tool_result", "tool_use_id": tool_id(call_id)}
    content = message.get("content")
    if isinstance(content, str):
        if content:
            block["content"] = content
    else:
        parts = _parts(content, where, _TOOL_PARTS)
        if parts:
            block["content"] = parts
    return block


def _thinking(entries: Any, where: str) -> list[Block]:
    if entries is None:
        return []
    if not isinstance(entries, list):
        raise _invalid(f"'{where}' must be an array.", where)
    blocks: list[Block] = []
    for position, entry in enumerate(entries):
        here = f"{where}[{position}]"
        kind = entry.get("type") if isinstance(entry, dict) else None
        if kind == "thinking" and _strings(entry, "thinking", "signature"):
            blocks.append(
                {"type": "thinking", "thinking": entry["thinking"], "signature": entry["signature"]}
            )
        elif kind == "redacted_thinking" and _strings(entry, "data"):
            blocks.append({"type": "redacted_thinking", "data": entry["data"]})
        else:
            raise _invalid(f"'{here}' must be a thinking block (type, thinking, signature) or a "
                           "redacted_thinking block (type, data), as the response gave it.", here)
    return blocks


def _strings(entry: Mapping[str, Any], *names: str) -> bool:
    return all(isinstance(entry.get(name), str) for name in names)


# -- content parts ------------------------------------------------------------------------


def _parts(content: Any, where: str, converters: Mapping[str, Converter]) -> list[Block]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    if not isinstance(content, list):
        raise _invalid(f"'{where}.content' must be a string or an array of content parts.",
                       f"{where}.content")
    blocks: list[Block] = []
    for position, part in enumerate(content):
        here = f"{where}.content[{position}]"
        kind = part.get("type") if isinstance(part, dict) else None
        convert = converters.get(kind) if isinstance(kind, str) else None
        if convert is None:
            allowed = ", ".join(converters)
            raise _invalid(f"'{here}' has type {kind!r}; Claude models accept {allowed} here.",
                           f"{here}.type")
        block = convert(part, here)
        if block is not None:
            blocks.append(_with_cache_control(block, part, here))
    return blocks


def _text(part: Mapping[str, Any], where: str) -> Block | None:
    text = part.get("text")
    if not isinstance(text, str):
        raise _invalid(f"'{where}.text' must be a string.", f"{where}.text")
    return {"type": "text", "text": text} if text else None  # Claude refuses empty text blocks


def _refusal(part: Mapping[str, Any], where: str) -> Block | None:
    return _text({"text": part.get("refusal")}, where)


def _image(part: Mapping[str, Any], where: str) -> Block:
    image = part.get("image_url")
    url = image.get("url") if isinstance(image, dict) else image
    here = f"{where}.image_url.url"
    if not isinstance(url, str):
        raise _invalid(f"'{here}' must be a string.", here)
    if url.startswith(("https://", "http://")):
        return {"type": "image", "source": {"type": "url", "url": url}}
    media_type, data = _data_url(url, here)
    if media_type not in _IMAGE_TYPES:
        raise _invalid(f"'{here}' is a {media_type or 'typeless'} image; Claude models accept "
                       f"{', '.join(_IMAGE_TYPES)}.", here)
    return {"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}}


def _file(part: Mapping[str, Any], where: str) -> Block:
    file = part.get("file")
    if not isinstance(file, dict) or not isinstance(file.get("file_data"), str):
        raise _invalid(f"'{where}.file' needs file_data (a data URL): OpenAI file ids cannot be "
                       "used with Claude models.", f"{where}.file")
    here = f"{where}.file.file_data"
    media_type, data = _data_url(file["file_data"], here)
    if media_type == "application/pdf":
        source: Block = {"type": "base64", "media_type": media_type, "data": data}
    elif media_type == "text/plain":
        try:
            text = base64.b64decode(data, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise _invalid(f"'{here}' is not base64-encoded UTF-8 text.", here) from None
        source = {"type": "text", "media_type": media_type, "data": text}
    else:
        raise _invalid(f"'{here}' is {media_type or 'untyped'}; Claude models accept "
                       "application/pdf and text/plain files.", here)
    block: Block = {"type": "document", "source": source}
    filename = file.get("filename")
    if isinstance(filename, str) and 0 < len(filename) <= 500:
        block["title"] = filename
    return block


def _audio(part: Mapping[str, Any], where: str) -> Block:
    raise _invalid(f"'{where}' is audio input, which Claude models do not accept.", f"{where}.type")


def _data_url(url: str, where: str) -> tuple[str, str]:
    match = _DATA_URL.fullmatch(url)
    if match is None:
        raise _invalid(f"'{where}' must be an http(s) URL or a base64 data URL.", where)
    if ";base64" not in match["params"].lower():
        raise _invalid(f"'{where}' must be base64-encoded (data:<type>;base64,...).", where)
    return match["type"].lower(), match["data"]


_SYSTEM_PARTS = {"text": _text}
_USER_PARTS = {"text": _text, "image_url": _image, "file": _file, "input_audio": _audio}
_ASSISTANT_PARTS = {"text": _text, "refusal": _refusal}
_TOOL_PARTS = {"text": _text, "image_url": _image}


# -- cache control -----------------------------------------------------------------------


def _cache_control(source: Mapping[str, Any], where: str) -> Block | None:
    control = source.get("cache_control")
    if control is not None:
        if not isinstance(control, dict):
            raise _invalid(f"'{where}.cache_control' must be an object.", f"{where}.cache_control")
        return dict(control)
    if source.get("prompt_cache_breakpoint") is not None:  # OpenAI's explicit breakpoint
        return {"type": "ephemeral"}
    return None


def _with_cache_control(block: Block, source: Mapping[str, Any], where: str) -> Block:
    control = _cache_control(source, where)
    if control is not None:
        block["cache_control"] = control
    return block


def _cached(message: Mapping[str, Any], blocks: list[Block], where: str) -> list[Block]:
    """``blocks`` with a message-level ``cache_control`` put on the last block that takes one."""
    control = _cache_control(message, where)
    if control is not None:
        for block in reversed(blocks):
            if block["type"] not in _UNCACHEABLE:
                block["cache_control"] = control
                break
    return blocks


def _required(message: Mapping[str, Any], name: str, where: str) -> Any:
    if message.get(name) is None:
        raise _invalid(f"Missing required parameter: '{where}.{name}'.", f"{where}.{name}")
    return message[name]


def _invalid(message: str, param: str) -> InvalidRequestError:
    return InvalidRequestError(message, param=param)
