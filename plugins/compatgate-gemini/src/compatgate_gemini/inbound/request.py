"""A Gemini ``GenerateContentRequest`` -> an OpenAI chat completions request (the pivot).

``generationConfig``: ``temperature``, ``topP`` -> ``top_p``, ``maxOutputTokens`` ->
``max_completion_tokens``, ``stopSequences`` -> ``stop``, ``candidateCount`` -> ``n``,
``seed``, ``presencePenalty``/``frequencyPenalty``, ``responseMimeType`` + ``responseSchema``
/ ``responseJsonSchema`` -> ``response_format``, ``thinkingConfig`` -> ``reasoning_effort``
(see `EFFORT_BUDGETS`). ``tools[].functionDeclarations`` -> function tools; ``toolConfig`` ->
``tool_choice``. Contents: see `contents`.

What the pivot cannot carry but that does not change what the conversation means is dropped
and *reported* in `ChatRequest.dropped` (the core says so in a header and its log): hosted
tools (``googleSearch``, ``codeExecution``, ``urlContext``...), ``safetySettings``, ``topK``
(OpenAI refuses it; the Gemini CLI always sends it), ``mediaResolution``. What would change the
answer is a 400: ``cachedContent`` (a cache on Google's side), log probabilities, speech or
image output, output types other than text and JSON, and any field it does not know.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from compatgate import InvalidRequestError

from .contents import to_messages
from .envelope import Signer
from .names import camel_case
from .schema import to_json_schema
from .validate import validate

__all__ = ["EFFORT_BUDGETS", "ChatRequest", "to_chat", "wants_thoughts"]

# thinkingBudget -> reasoning_effort: the upper bound of each effort's budgets (0: none; -1,
# Gemini's "dynamic", sends no effort: the upstream's default).
EFFORT_BUDGETS = (("none", 0), ("minimal", 512), ("low", 1024), ("medium", 8192))
_LEVELS = {"MINIMAL": "minimal", "LOW": "low", "MEDIUM": "medium", "HIGH": "high"}
_CONVERTED = {"contents", "systemInstruction", "tools", "toolConfig", "generationConfig", "model"}
_IGNORED = {"labels"}  # billing metadata of Vertex AI
_GENERATION = {"temperature": "temperature", "topP": "top_p", "maxOutputTokens": "max_completion_tokens",
               "seed": "seed", "presencePenalty": "presence_penalty", "frequencyPenalty": "frequency_penalty"}
_GENERATION_READ = {"stopSequences", "candidateCount", "responseMimeType", "responseSchema",
                    "responseJsonSchema", "responseModalities", "thinkingConfig", *_GENERATION}
_GENERATION_DROPPED = {"topK", "mediaResolution"}


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """The pivot request, and what of the Gemini request it leaves out (paths such as
    ``tools[1].googleSearch``, ``generationConfig.topK``, ``safetySettings``)."""

    body: dict[str, Any]
    dropped: tuple[str, ...] = ()


def to_chat(body: Mapping[str, Any], *, model: str, stream: bool, signer: Signer) -> ChatRequest:
    """The OpenAI chat completions request for a Gemini request sent to ``model`` (the name the
    client used: gateway envelopes made for it are opened)."""
    validate(body)
    request = camel_case(body)
    dropped: list[str] = []
    for key in request:
        if key == "cachedContent":
            raise InvalidRequestError(
                f"'cachedContent' refers to content cached by Google, which the model {model!r} cannot read; "
                "send the contents themselves.", param="cachedContent")
        if key == "safetySettings":
            dropped.append(key)
        elif key not in _CONVERTED and key not in _IGNORED:
            raise InvalidRequestError(f"'{key}' is not supported for the model {model!r}.", param=key)
    chat: dict[str, Any] = {"model": model, "messages": to_messages(request, model=model, signer=signer)}
    if not any(message["role"] != "system" for message in chat["messages"]):
        raise InvalidRequestError("'contents' holds no text, media or function call to send.", param="contents")
    if stream:
        chat["stream"] = True
    _generation(request.get("generationConfig") or {}, chat, dropped)
    names = _tools(request.get("tools") or [], chat, dropped)
    _tool_choice(request.get("toolConfig"), names, chat)
    return ChatRequest(chat, tuple(dropped))


def wants_thoughts(body: Mapping[str, Any]) -> bool:
    """Whether the client asked for thought parts (``thinkingConfig.includeThoughts``)."""
    config = camel_case(body).get("generationConfig")
    thinking = config.get("thinkingConfig") if isinstance(config, Mapping) else None
    return isinstance(thinking, Mapping) and thinking.get("includeThoughts") is True


def _generation(config: Mapping[str, Any], chat: dict[str, Any], dropped: list[str]) -> None:
    for key in config:
        if key in _GENERATION_DROPPED:
            dropped.append(f"generationConfig.{key}")
        elif key not in _GENERATION_READ and not (key in ("responseLogprobs", "logprobs") and not config[key]):
            raise InvalidRequestError(f"'generationConfig.{key}' is not supported for this model.",
                                      param=f"generationConfig.{key}")
    for key, name in _GENERATION.items():
        if config.get(key) is not None:
            chat[name] = config[key]
    if config.get("stopSequences"):
        chat["stop"] = list(config["stopSequences"])
    count = config.get("candidateCount")
    if count is not None and count > 1:
        chat["n"] = int(count)
    modalities = [str(m).upper() for m in config.get("responseModalities") or ()]
    if any(m not in ("TEXT", "MODALITY_UNSPECIFIED") for m in modalities):
        raise InvalidRequestError("Only text output is supported for this model.",
                                  param="generationConfig.responseModalities")
    format_ = _response_format(config)
    if format_ is not None:
        chat["response_format"] = format_
    effort = _effort(config.get("thinkingConfig") or {})
    if effort is not None:
        chat["reasoning_effort"] = effort


def _response_format(config: Mapping[str, Any]) -> dict[str, Any] | None:
    mime = str(config.get("responseMimeType") or "text/plain").lower()
    schema = config.get("responseJsonSchema")
    if schema is None and config.get("responseSchema") is not None:
        schema = to_json_schema(config["responseSchema"])
    if mime == "application/json":
        if schema is None:
            return {"type": "json_object"}
        return {"type": "json_schema", "json_schema": {"name": "response", "schema": schema}}
    where = "generationConfig.responseMimeType"
    if mime != "text/plain":
        raise InvalidRequestError(f"'{where}' {mime!r} is not supported for this model "
                                  "(text/plain or application/json).", param=where)
    if schema is not None:
        raise InvalidRequestError("A response schema needs 'responseMimeType': 'application/json'.", param=where)
    return None


def _effort(thinking: Mapping[str, Any]) -> str | None:
    level = thinking.get("thinkingLevel")
    if isinstance(level, str):
        return _LEVELS.get(level.upper())
    budget = thinking.get("thinkingBudget")
    if budget is None or budget < 0:
        return None
    return next((effort for effort, limit in EFFORT_BUDGETS if budget <= limit), "high")


def _tools(tools: list[Mapping[str, Any]], chat: dict[str, Any], dropped: list[str]) -> set[str]:
    functions: list[dict[str, Any]] = []
    names: set[str] = set()
    for index, tool in enumerate(tools):
        for key, value in tool.items():
            if key != "functionDeclarations":
                dropped.append(f"tools[{index}].{key}")
                continue
            for number, declaration in enumerate(value or ()):
                name = declaration["name"]
                if name in names:
                    where = f"tools[{index}].functionDeclarations[{number}].name"
                    raise InvalidRequestError(f"The function {name!r} is declared twice.", param=where)
                names.add(name)
                function: dict[str, Any] = {"name": name}
                if declaration.get("description") is not None:
                    function["description"] = declaration["description"]
                if declaration.get("parametersJsonSchema") is not None:
                    function["parameters"] = dict(declaration["parametersJsonSchema"])
                elif declaration.get("parameters") is not None:
                    function["parameters"] = to_json_schema(declaration["parameters"])
                functions.append({"type": "function", "function": function})
    if functions:
        chat["tools"] = functions
    return names


def _tool_choice(config: Mapping[str, Any] | None, names: set[str], chat: dict[str, Any]) -> None:
    calling = (config or {}).get("functionCallingConfig")
    if not calling or not names:
        return
    mode = str(calling.get("mode") or "AUTO").upper()
    allowed = list(calling.get("allowedFunctionNames") or ())
    for index, name in enumerate(allowed):
        if name not in names:
            where = f"toolConfig.functionCallingConfig.allowedFunctionNames[{index}]"
            raise InvalidRequestError(f"{name!r} is not one of the declared functions.", param=where)
    if mode == "NONE":
        chat["tool_choice"] = "none"
    elif mode != "ANY":
        chat["tool_choice"] = "auto"
    elif len(allowed) == 1:
        chat["tool_choice"] = {"type": "function", "function": {"name": allowed[0]}}
    elif allowed:
        tools = [{"type": "function", "function": {"name": name}} for name in allowed]
        chat["tool_choice"] = {"type": "allowed_tools", "allowed_tools": {"mode": "required", "tools": tools}}
    else:
        chat["tool_choice"] = "required"
