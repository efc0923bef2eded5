"""Gemini ``systemInstruction`` + ``contents`` -> OpenAI chat ``messages`` (the pivot).

- ``systemInstruction`` text parts -> one ``system`` message;
- consecutive contents of one role are one turn (the google-genai SDK records every streamed
  chunk as its own ``model`` content); ``user`` (and the legacy ``function``) turns -> a
  ``user`` message, ``model`` turns -> an ``assistant`` message;
- ``text`` -> text; ``inlineData`` -> ``image_url`` data URL (images), ``input_audio`` (WAV,
  MP3), else a ``file`` part with a data URL; ``fileData`` -> ``image_url`` (images, or no
  type given) or a ``file`` part naming the URI as ``file_id``;
- ``functionCall`` -> ``tool_calls``: Gemini's ``id`` when the part has one, else a stable id
  (``call_`` + 24 hex of a hash of the turn's position, the call's position and its name: the
  same id every time the history is sent again);
- ``functionResponse`` -> a ``tool`` message (content: the ``response`` object as JSON),
  placed before the turn's other parts; it answers the pending call of the previous model
  turn with the same ``id``, else the first pending call with the same name (Gemini
  clients answer in order): a response that answers no call is a 400;
- ``thought: true`` parts are dropped (they are model output; what an upstream needs back
  rides in the ``thoughtSignature``); ``thoughtSignature``: gateway envelopes made for this
  model are opened and their state restored (``thinking_blocks``, ``reasoning_content`` of a
  tool-calling turn, ``extra_content.google.thought_signature`` on the tool call or message),
  any other signature is dropped;
- ``executableCode``/``codeExecutionResult`` (from Gemini's hosted code execution) -> fenced
  text in the assistant message.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import orjson

from compatgate import InvalidRequestError

from .envelope import Signer, unseal

__all__ = ["to_messages"]

Message = dict[str, Any]
_AUDIO = {"audio/wav": "wav", "audio/x-wav": "wav", "audio/wave": "wav", "audio/mp3": "mp3", "audio/mpeg": "mp3"}


def to_messages(request: Mapping[str, Any], *, model: str, signer: Signer) -> list[Message]:
    """The pivot ``messages`` of a validated, camelCase request."""
    messages: list[Message] = []
    system = request.get("systemInstruction")
    if system is not None:
        texts = _texts(system["parts"], "systemInstruction")
        if texts:
            messages.append({"role": "system", "content": _text_content(texts)})
    pending: list[tuple[str, str]] = []  # (id, name) of the calls awaiting a response
    for role, parts in _turns(request["contents"]):
        if role == "model":
            message = _assistant(parts, len(messages), model, signer)
            pending = [(c["id"], c["function"]["name"]) for c in message.get("tool_calls", ())]
            messages.append(message)
        else:
            messages += _user(parts, pending)
    return messages


def _turns(contents: list[Mapping[str, Any]]) -> list[tuple[str, list[tuple[str, Mapping[str, Any]]]]]:
    """Consecutive contents of one role merged: ``(role, [(where, part)...])``."""
    turns: list[tuple[str, list[tuple[str, Mapping[str, Any]]]]] = []
    for index, content in enumerate(contents):
        role = "model" if content.get("role") == "model" else "user"
        parts = [(f"contents[{index}].parts[{number}]", part) for number, part in enumerate(content["parts"])]
        if turns and turns[-1][0] == role:
            turns[-1][1].extend(parts)
        else:
            turns.append((role, parts))
    return turns


def _texts(parts: list[Mapping[str, Any]], where: str) -> list[str]:
    texts = []
    for index, part in enumerate(parts):
        if not isinstance(part.get("text"), str):
            raise InvalidRequestError(f"'{where}.parts[{index}]': a system instruction holds text parts only.",
                                      param=f"{where}.parts[{index}]")
        if part["text"]:
            texts.append(part["text"])
    return texts


def _text_content(texts: list[str]) -> str | list[dict[str, Any]]:
    return texts[0] if len(texts) == 1 else [{"type": "text", "text": text} for text in texts]


# -- user turns -----------------------------------------------------------------------------


def _user(parts: list[tuple[str, Mapping[str, Any]]], pending: list[tuple[str, str]]) -> list[Message]:
    answers: list[Message] = []
    content: list[dict[str, Any]] = []
    for where, part in parts:
        if part.get("thought") is True:
            continue
        answer = part.get("functionResponse")
        if answer is not None:
            answers.append(_tool_message(answer, pending, where))
        elif isinstance(part.get("text"), str):
            if part["text"]:
                content.append({"type": "text", "text": part["text"]})
        elif part.get("inlineData") is not None:
            content.append(_inline(part["inlineData"]))
        elif part.get("fileData") is not None:
            content.append(_file(part["fileData"]))
        else:
            kind = next(iter(k for k in part if k not in ("thought", "thoughtSignature")), "?")
            raise InvalidRequestError(f"'{where}': {kind} parts cannot be sent by the user to this model.",
                                      param=where)
    if not content:
        return answers
    if all(item["type"] == "text" for item in content):
        user: Any = _text_content([item["text"] for item in content])
    else:
        user = content
    return [*answers, {"role": "user", "content": user}]


def _tool_message(answer: Mapping[str, Any], pending: list[tuple[str, str]], where: str) -> Message:
    name, call_id = answer["name"], answer.get("id")
    match = next((p for p in pending if call_id and p[0] == call_id), None)
    match = match or next((p for p in pending if p[1] == name), None)
    if match is None:
        raise InvalidRequestError(
            f"'{where}.functionResponse' answers {name!r}, but the model turn before it has no "
            "unanswered functionCall of that name.", param=f"{where}.functionResponse")
    if answer.get("parts"):
        raise InvalidRequestError(f"'{where}.functionResponse.parts' (multimodal function responses) "
                                  "cannot be converted for this model.", param=f"{where}.functionResponse.parts")
    pending.remove(match)
    return {"role": "tool", "tool_call_id": match[0], "content": dump(answer.get("response") or {}, where)}


def _inline(blob: Mapping[str, Any]) -> dict[str, Any]:
    mime, data = blob["mimeType"].lower(), blob["data"]
    if mime.startswith("image/"):
        return {"type": "image_url", "image_url": {"url": f"data:{mime};base64,{data}"}}
    if mime in _AUDIO:
        return {"type": "input_audio", "input_audio": {"data": data, "format": _AUDIO[mime]}}
    extension = mime.rsplit("/", 1)[-1].split("+")[0] or "bin"
    name = blob.get("displayName") if isinstance(blob.get("displayName"), str) else f"file.{extension}"
    return {"type": "file", "file": {"file_data": f"data:{mime};base64,{data}", "filename": name}}


def _file(file: Mapping[str, Any]) -> dict[str, Any]:
    mime = file.get("mimeType")
    if not isinstance(mime, str) or mime.lower().startswith("image/"):
        return {"type": "image_url", "image_url": {"url": file["fileUri"]}}
    return {"type": "file", "file": {"file_id": file["fileUri"]}}


# -- model turns ----------------------------------------------------------------------------


def _assistant(parts: list[tuple[str, Mapping[str, Any]]], position: int, model: str, signer: Signer) -> Message:
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    blocks: list[dict[str, Any]] = []
    reasoning: list[str] = []
    message_signature: str | None = None
    for where, part in parts:
        state = unseal(part.get("thoughtSignature"), signer, model)
        call = part.get("functionCall")
        if call is not None:
            calls.append(_tool_call(call, position, len(calls), where))
            if state is not None and state.signature is not None:
                calls[-1]["extra_content"] = {"google": {"thought_signature": state.signature}}
        elif part.get("thought") is True:
            pass
        elif isinstance(part.get("text"), str):
            texts.append(part["text"])
        elif part.get("executableCode") is not None:
            code = part["executableCode"]
            texts.append(f"\n```{str(code.get('language', '')).lower()}\n{code.get('code', '')}\n```\n")
        elif part.get("codeExecutionResult") is not None:
            texts.append(f"\n```\n{part['codeExecutionResult'].get('output', '')}\n```\n")
        else:
            kind = next(iter(k for k in part if k not in ("thought", "thoughtSignature")), "?")
            raise InvalidRequestError(f"'{where}': model turns with {kind} parts cannot be sent to this model.",
                                      param=where)
        if state is not None:
            blocks += state.thinking_blocks
            if state.reasoning is not None:
                reasoning.append(state.reasoning)
            if call is None and state.signature is not None:
                message_signature = state.signature
    message: Message = {"role": "assistant", "content": "".join(texts) or None}
    if calls:
        message["tool_calls"] = calls
        if reasoning:
            message["reasoning_content"] = "".join(reasoning)
    if blocks:
        message["thinking_blocks"] = blocks
    if message_signature is not None:
        message["extra_content"] = {"google": {"thought_signature": message_signature}}
    return message


def _tool_call(call: Mapping[str, Any], position: int, number: int, where: str) -> dict[str, Any]:
    name = call["name"]
    call_id = call.get("id") or stable_id(position, number, name)
    arguments = dump(call.get("args") or {}, f"{where}.functionCall.args")
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def stable_id(position: int, number: int, name: str) -> str:
    """The id of a call Gemini gave none: the same each time the history is sent."""
    return "call_" + hashlib.sha256(f"{position}:{number}:{name}".encode()).hexdigest()[:24]


def dump(value: Any, where: str) -> str:
    """``value`` as compact JSON (a 400 when it is too deeply nested to encode)."""
    try:
        return orjson.dumps(value).decode()
    except orjson.JSONEncodeError:
        raise InvalidRequestError(f"'{where}' is nested too deeply.", param=where) from None
