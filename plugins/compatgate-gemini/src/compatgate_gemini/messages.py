"""OpenAI ``messages`` -> Gemini ``systemInstruction`` and ``contents``.

- ``system``/``developer`` messages, wherever they are, become ``systemInstruction`` parts;
- ``user`` -> ``user`` and ``assistant`` -> ``model`` turns, consecutive turns of the same
  role merged (Gemini wants them alternating);
- assistant ``tool_calls`` -> ``functionCall`` parts (the id is kept when Gemini made it, its
  ``thoughtSignature`` restored from ``extra_content``);
- ``tool`` messages -> ``functionResponse`` parts of a user turn, named after the tool call
  they answer (OpenAI gives only its id), the content as a JSON object (``{"output": ...}``
  around anything that is not one);
- image, audio and file parts -> ``inlineData`` (data URLs) or ``fileData`` (other URLs).
"""

from __future__ import annotations

import binascii
import mimetypes
import re
from collections.abc import Mapping
from typing import Any

import orjson

from compatgate import InvalidRequestError
from compatgate.pivot import thought_signature

from .signatures import SKIP_VALIDATOR
from .tools import ToolNames, is_generated_id

__all__ = ["convert_messages"]

Part = dict[str, Any]
Content = dict[str, Any]

_DATA_URL = re.compile(r"data:([\w.+-]+/[\w.+-]+)((?:;[\w.+-]+=[^;,]*)*);base64,(.*)", re.DOTALL)
_AUDIO = {"wav": "audio/wav", "mp3": "audio/mp3", "flac": "audio/flac", "ogg": "audio/ogg",
          "aac": "audio/aac", "aiff": "audio/aiff", "pcm16": "audio/pcm"}


def convert_messages(
    messages: list[Any], names: ToolNames, *, remote_files: bool, fill_signatures: bool
) -> tuple[Content | None, list[Content]]:
    """``(systemInstruction, contents)`` for ``messages``."""
    calls = _tool_call_names(messages, names)
    system: list[Part] = []
    contents: list[Content] = []
    for index, message in enumerate(messages):
        where = f"messages[{index}]"
        role = message.get("role")
        if role in ("system", "developer"):
            system += _text_parts(message.get("content"), where)
            continue
        if role == "user":
            turn, parts = "user", _user_parts(message.get("content"), where, remote_files)
        elif role == "assistant":
            turn, parts = "model", _assistant_parts(message, where, names, fill_signatures)
        elif role == "tool":
            turn, parts = "user", [_function_response(message, where, calls)]
        elif role == "function":
            name = message.get("name")
            if not isinstance(name, str) or not name:
                raise InvalidRequestError(f"'{where}.name' is required for a function message.", param=f"{where}.name")
            turn, parts = "user", [_response_part(names.to_gemini(name), None, message.get("content"))]
        else:
            raise InvalidRequestError(f"'{where}.role' {role!r} is not supported.", param=f"{where}.role")
        if not parts:
            continue
        if contents and contents[-1]["role"] == turn:
            contents[-1]["parts"] += parts
        else:
            contents.append({"role": turn, "parts": parts})
    if not contents:
        raise InvalidRequestError(
            "'messages' must contain at least one user or assistant message for Gemini.", param="messages"
        )
    return ({"parts": system} if system else None), contents


def _tool_call_names(messages: list[Any], names: ToolNames) -> dict[str, str]:
    """The Gemini function name of every tool call id in the history."""
    found: dict[str, str] = {}
    for message in messages:
        if message.get("role") != "assistant":
            continue
        for call in message.get("tool_calls") or ():
            function = call.get("function") if isinstance(call, Mapping) else None
            if isinstance(function, Mapping) and isinstance(call.get("id"), str) and isinstance(function.get("name"), str):
                found[call["id"]] = names.to_gemini(function["name"])
    return found


def _text_parts(content: Any, where: str) -> list[Part]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"text": content}] if content else []
    if not isinstance(content, list):
        raise InvalidRequestError(f"'{where}.content' must be a string or an array.", param=f"{where}.content")
    parts = []
    for index, part in enumerate(content):
        kind = part.get("type") if isinstance(part, Mapping) else None
        key = "refusal" if kind == "refusal" else "text"
        if kind not in ("text", "refusal") or not isinstance(part.get(key), str):
            raise InvalidRequestError(
                f"'{where}.content[{index}]' must be a text part here (got {kind!r}).", param=f"{where}.content[{index}]"
            )
        if part[key]:
            parts.append({"text": part[key]})
    return parts


def _user_parts(content: Any, where: str, remote_files: bool) -> list[Part]:
    if content is None or isinstance(content, str):
        return _text_parts(content, where)
    if not isinstance(content, list):
        raise InvalidRequestError(f"'{where}.content' must be a string or an array.", param=f"{where}.content")
    parts: list[Part] = []
    for index, part in enumerate(content):
        place = f"{where}.content[{index}]"
        kind = part.get("type") if isinstance(part, Mapping) else None
        if kind == "text":
            parts += _text_parts([part], where)
        elif kind == "image_url":
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, Mapping) else image
            parts.append(_media(url, place, remote_files, None))
        elif kind == "input_audio":
            audio = part.get("input_audio")
            if not isinstance(audio, Mapping) or not isinstance(audio.get("data"), str):
                raise InvalidRequestError(f"'{place}.input_audio.data' is required.", param=place)
            mime = _AUDIO.get(str(audio.get("format")), f"audio/{audio.get('format')}")
            parts.append({"inlineData": {"mimeType": mime, "data": audio["data"]}})
        elif kind == "file":
            file = part.get("file")
            if not isinstance(file, Mapping):
                raise InvalidRequestError(f"'{place}.file' must be an object.", param=place)
            url = file.get("file_data") or file.get("file_id")
            name = file.get("filename") if isinstance(file.get("filename"), str) else None
            parts.append(_media(url, place, remote_files, name))
        else:
            raise InvalidRequestError(f"'{place}': content parts of type {kind!r} are not supported.", param=place)
    return parts


def _media(url: Any, where: str, remote_files: bool, filename: str | None) -> Part:
    """``inlineData`` for a data URL, ``fileData`` for a URL Gemini can fetch."""
    if not isinstance(url, str) or not url:
        raise InvalidRequestError(f"'{where}' needs a URL.", param=where)
    match = _DATA_URL.fullmatch(url)
    if match:
        data = match.group(3).strip()
        try:
            binascii.a2b_base64(data, strict_mode=True)
        except binascii.Error:
            raise InvalidRequestError(f"'{where}': the data URL is not valid base64.", param=where) from None
        return {"inlineData": {"mimeType": match.group(1), "data": data}}
    if url.startswith("data:"):
        raise InvalidRequestError(f"'{where}': only base64 data URLs (data:<type>;base64,...) are supported.", param=where)
    if not url.startswith(("https://", "http://", "gs://", "files/")):
        raise InvalidRequestError(
            f"'{where}': expected a data URL or an http(s) URL, got {url[:40]!r}.", param=where
        )
    if not remote_files:
        raise InvalidRequestError(
            f"'{where}': this Gemini provider takes files as data URLs only (remote_files = false).", param=where
        )
    file: Part = {"fileUri": url}
    mime = mimetypes.guess_type(filename or url.split("?", 1)[0])[0]
    if mime:
        file["mimeType"] = mime
    return {"fileData": file}


def _assistant_parts(message: Mapping[str, Any], where: str, names: ToolNames, fill: bool) -> list[Part]:
    parts = _text_parts(message.get("content"), where)
    text_signature = thought_signature(message)
    if text_signature and parts:
        parts[-1]["thoughtSignature"] = text_signature
    calls = message.get("tool_calls") or []
    if not isinstance(calls, list):
        raise InvalidRequestError(f"'{where}.tool_calls' must be an array.", param=f"{where}.tool_calls")
    # Google's skip value for a step that lost its signatures: on its first call, only when no
    # call of the message carries one.
    fill = fill and not any(thought_signature(call) for call in calls)
    for index, call in enumerate(calls):
        place = f"{where}.tool_calls[{index}]"
        function = call.get("function") if isinstance(call, Mapping) else None
        if not isinstance(function, Mapping) or not isinstance(function.get("name"), str):
            raise InvalidRequestError(f"'{place}.function.name' is required.", param=f"{place}.function.name")
        arguments = function.get("arguments") or "{}"
        try:
            args = orjson.loads(arguments) if isinstance(arguments, str) else arguments
        except orjson.JSONDecodeError:
            args = None
        if not isinstance(args, dict):
            raise InvalidRequestError(
                f"'{place}.function.arguments' must be a JSON object for Gemini.", param=f"{place}.function.arguments"
            )
        payload: dict[str, Any] = {"name": names.to_gemini(function["name"]), "args": args}
        call_id = call.get("id")
        if isinstance(call_id, str) and call_id and not is_generated_id(call_id):
            payload["id"] = call_id
        part: Part = {"functionCall": payload}
        signature = thought_signature(call) or (SKIP_VALIDATOR if fill and index == 0 else None)
        if signature:
            part["thoughtSignature"] = signature
        parts.append(part)
    return parts


def _function_response(message: Mapping[str, Any], where: str, calls: dict[str, str]) -> Part:
    call_id = message.get("tool_call_id")
    if not isinstance(call_id, str) or not call_id:
        raise InvalidRequestError(f"'{where}.tool_call_id' is required.", param=f"{where}.tool_call_id")
    name = calls.get(call_id)
    if name is None:
        raise InvalidRequestError(
            f"'{where}.tool_call_id' {call_id!r} does not match any tool call of an earlier assistant "
            "message; Gemini needs the function name, which only that tool call gives.",
            param=f"{where}.tool_call_id",
        )
    return _response_part(name, None if is_generated_id(call_id) else call_id, message.get("content"))


def _response_part(name: str, call_id: str | None, content: Any) -> Part:
    if isinstance(content, list):
        content = "".join(p.get("text", "") for p in content if isinstance(p, Mapping) and isinstance(p.get("text"), str))
    value: Any = content if content is not None else ""
    if isinstance(value, str):
        try:
            value = orjson.loads(value)
        except orjson.JSONDecodeError:
            pass
    payload: dict[str, Any] = {"name": name, "response": value if isinstance(value, dict) else {"output": value}}
    if call_id is not None:
        payload["id"] = call_id
    return {"functionResponse": payload}
