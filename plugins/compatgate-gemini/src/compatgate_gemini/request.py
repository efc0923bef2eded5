"""An OpenAI chat completions body -> a Gemini ``generateContent`` body.

Sampling parameters go to ``generationConfig`` (``max_completion_tokens``/``max_tokens`` ->
``maxOutputTokens``, ``n`` -> ``candidateCount``, ``stop`` -> ``stopSequences``, ...),
``response_format`` to ``responseMimeType`` + ``responseSchema``, ``reasoning_effort`` to
``thinkingConfig``. What Gemini cannot honour is refused with a 400 rather than ignored
(``logprobs``, ``logit_bias``, audio output, web search, the deprecated ``functions``); what
does not change the answer (``user``, ``metadata``, ``store``, ``service_tier``,
``prediction``, ``parallel_tool_calls``...) is ignored.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from compatgate import InvalidRequestError

from .messages import convert_messages
from .schema import to_gemini_schema, to_json_schema
from .tools import ToolNames, convert_tools

__all__ = ["Options", "build_request"]

_NUMBERS = (("temperature", "temperature"), ("top_p", "topP"), ("top_k", "topK"), ("seed", "seed"),
            ("presence_penalty", "presencePenalty"), ("frequency_penalty", "frequencyPenalty"))
_BUDGETS = {"none": 0, "minimal": 512, "low": 1024, "medium": 8192, "high": 24576, "xhigh": 24576}
_LEVELS = {"none": "minimal", "minimal": "minimal", "low": "low", "medium": "medium", "high": "high",
           "xhigh": "high"}
_BUDGET_MODELS = re.compile(r"(?:.*/)?gemini-(?:1|2)[.-]")


@dataclass(frozen=True, slots=True)
class Options:
    """The provider's and model's options that shape a request."""

    json_schema: bool = False  # tool_schema = "json_schema"
    include_thoughts: bool | None = None  # None: only when reasoning_effort asks for thinking
    thinking: str = "auto"  # "level" (Gemini 3+), "budget" (Gemini 2.5) or "auto" by model name
    remote_files: bool = True
    fill_signatures: bool = False
    safety_settings: tuple[Any, ...] = ()


def build_request(body: Mapping[str, Any], model: str, options: Options) -> tuple[dict[str, Any], ToolNames]:
    """The Gemini request for ``body`` (sent to ``model``) and the tool names it used."""
    _refuse_unsupported(body)
    names = ToolNames()
    tools, tool_config = convert_tools(
        body.get("tools"), body.get("tool_choice"), names, json_schema=options.json_schema
    )
    system, contents = convert_messages(
        body["messages"], names, remote_files=options.remote_files, fill_signatures=options.fill_signatures
    )
    request: dict[str, Any] = {"contents": contents, "generationConfig": _generation_config(body, model, options)}
    if system is not None:
        request["systemInstruction"] = system
    if tools is not None:
        request["tools"] = tools
    if tool_config is not None:
        request["toolConfig"] = tool_config
    if options.safety_settings:
        request["safetySettings"] = list(options.safety_settings)
    return request, names


def _refuse_unsupported(body: Mapping[str, Any]) -> None:
    if body.get("logprobs") or body.get("top_logprobs"):
        raise InvalidRequestError("'logprobs' is not supported by this Gemini provider.", param="logprobs")
    if body.get("logit_bias"):
        raise InvalidRequestError("'logit_bias' is not supported by Gemini.", param="logit_bias")
    modalities = body.get("modalities")
    if body.get("audio") or (isinstance(modalities, list) and any(m != "text" for m in modalities)):
        raise InvalidRequestError("Only text output is supported by this Gemini provider.", param="modalities")
    for name in ("functions", "function_call"):
        if body.get(name) is not None:
            raise InvalidRequestError(f"'{name}' is deprecated and not supported here: use 'tools'.", param=name)
    if body.get("web_search_options") is not None:
        raise InvalidRequestError("'web_search_options' is not supported by this Gemini provider.",
                                  param="web_search_options")


def _generation_config(body: Mapping[str, Any], model: str, options: Options) -> dict[str, Any]:
    config: dict[str, Any] = {}
    for name, key in _NUMBERS:
        value = body.get(name)
        if value is not None:
            if not isinstance(value, int | float) or isinstance(value, bool):
                raise InvalidRequestError(f"'{name}' must be a number.", param=name)
            config[key] = value
    name = "max_completion_tokens" if body.get("max_completion_tokens") is not None else "max_tokens"
    limit = body.get(name)
    if limit is not None:
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
            raise InvalidRequestError(f"'{name}' must be a positive integer.", param=name)
        config["maxOutputTokens"] = limit
    n = body.get("n")
    if isinstance(n, int) and n > 1:
        config["candidateCount"] = n
    stop = body.get("stop")
    if isinstance(stop, str):
        config["stopSequences"] = [stop]
    elif isinstance(stop, list) and stop:
        if not all(isinstance(s, str) for s in stop):
            raise InvalidRequestError("'stop' must be a string or an array of strings.", param="stop")
        config["stopSequences"] = stop
    elif stop is not None:
        raise InvalidRequestError("'stop' must be a string or an array of strings.", param="stop")
    config.update(_response_format(body.get("response_format"), options))
    thinking = _thinking(body.get("reasoning_effort"), model, options)
    if thinking:
        config["thinkingConfig"] = thinking
    return config


def _response_format(value: Any, options: Options) -> dict[str, Any]:
    if value is None:
        return {}
    kind = value.get("type") if isinstance(value, Mapping) else None
    if kind == "text":
        return {}
    if kind == "json_object":
        return {"responseMimeType": "application/json"}
    if kind == "json_schema":
        spec = value.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, Mapping) else None
        if schema is None:
            return {"responseMimeType": "application/json"}
        if options.json_schema:
            return {"responseMimeType": "application/json", "responseJsonSchema": to_json_schema(schema)}
        converted = to_gemini_schema(schema, where="response_format.json_schema.schema")
        return {"responseMimeType": "application/json", "responseSchema": converted}
    raise InvalidRequestError(
        "'response_format.type' must be 'text', 'json_object' or 'json_schema'.", param="response_format"
    )


def _thinking(effort: Any, model: str, options: Options) -> dict[str, Any]:
    """``thinkingConfig``: a level for Gemini 3 and later, a token budget for Gemini 2.5."""
    config: dict[str, Any] = {}
    if effort is not None:
        if effort not in _BUDGETS:
            raise InvalidRequestError(
                "'reasoning_effort' must be one of " + ", ".join(map(repr, _BUDGETS)) + ".", param="reasoning_effort"
            )
        mode = options.thinking
        if mode == "auto":
            mode = "budget" if _BUDGET_MODELS.match(model) else "level"
        if mode == "budget":
            config["thinkingBudget"] = _BUDGETS[effort]
        else:
            config["thinkingLevel"] = _LEVELS[effort]
    # Thought summaries (reasoning_content) when asked for, by default whenever the client asks
    # for reasoning; never with reasoning turned off.
    include = options.include_thoughts if options.include_thoughts is not None else effort is not None
    if include and effort != "none":
        config["includeThoughts"] = True
    return config
