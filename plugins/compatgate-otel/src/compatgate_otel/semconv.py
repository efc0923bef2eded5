"""The OpenTelemetry GenAI semantic conventions this plugin follows, and how a gateway request
maps onto them.

Names as in the GenAI conventions (semantic-conventions-genai, status Development): a span is
named ``{gen_ai.operation.name} {gen_ai.request.model}``; ``gen_ai.provider.name`` (which
replaced ``gen_ai.system``) takes the well-known values (``openai``, ``anthropic``,
``gcp.gemini``...). Attributes of the gateway itself use the ``compatgate.`` prefix.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from compatgate import Usage

__all__ = [
    "ERROR_TYPE",
    "HTTP_RESPONSE_STATUS_CODE",
    "OPERATION_NAME",
    "PROVIDER_NAME",
    "REQUEST_MODEL",
    "RESPONSE_FINISH_REASONS",
    "RESPONSE_ID",
    "RESPONSE_MODEL",
    "SERVER_ADDRESS",
    "SERVER_PORT",
    "USAGE_INPUT_TOKENS",
    "USAGE_OUTPUT_TOKENS",
    "operation_name",
    "provider_name",
    "request_attributes",
    "server_attributes",
    "span_name",
    "usage_attributes",
]

OPERATION_NAME = "gen_ai.operation.name"
PROVIDER_NAME = "gen_ai.provider.name"
REQUEST_MODEL = "gen_ai.request.model"
REQUEST_STREAM = "gen_ai.request.stream"
RESPONSE_MODEL = "gen_ai.response.model"
RESPONSE_ID = "gen_ai.response.id"
RESPONSE_FINISH_REASONS = "gen_ai.response.finish_reasons"
RESPONSE_TIME_TO_FIRST_CHUNK = "gen_ai.response.time_to_first_chunk"  # seconds
USAGE_INPUT_TOKENS = "gen_ai.usage.input_tokens"
USAGE_OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
USAGE_CACHE_READ = "gen_ai.usage.cache_read.input_tokens"
USAGE_CACHE_CREATION = "gen_ai.usage.cache_creation.input_tokens"
USAGE_REASONING = "gen_ai.usage.reasoning.output_tokens"
SERVER_ADDRESS = "server.address"
SERVER_PORT = "server.port"
ERROR_TYPE = "error.type"
HTTP_RESPONSE_STATUS_CODE = "http.response.status_code"

_OPERATIONS = {"chat.completions": "chat", "completions": "text_completion", "embeddings": "embeddings"}

# compatgate provider type -> gen_ai.provider.name (well-known values); other types as they are.
_PROVIDERS = {
    "openai": "openai",
    "anthropic": "anthropic",
    "gemini": "gcp.gemini",
    "vertex": "gcp.vertex_ai",
    "bedrock": "aws.bedrock",
    "azure": "azure.ai.openai",
    "mistral": "mistral_ai",
    "cohere": "cohere",
    "groq": "groq",
    "deepseek": "deepseek",
    "xai": "x_ai",
    "perplexity": "perplexity",
    "ibm": "ibm.watsonx.ai",
}

# request body key -> (attribute, type the attribute takes)
_PARAMETERS: tuple[tuple[str, str, type], ...] = (
    ("max_tokens", "gen_ai.request.max_tokens", int),
    ("max_completion_tokens", "gen_ai.request.max_tokens", int),
    ("temperature", "gen_ai.request.temperature", float),
    ("top_p", "gen_ai.request.top_p", float),
    ("frequency_penalty", "gen_ai.request.frequency_penalty", float),
    ("presence_penalty", "gen_ai.request.presence_penalty", float),
    ("seed", "gen_ai.request.seed", int),
    ("n", "gen_ai.request.choice.count", int),
)


def operation_name(endpoint: str) -> str:
    """``gen_ai.operation.name`` of a gateway endpoint (``chat.completions`` -> ``chat``)."""
    return _OPERATIONS.get(endpoint, endpoint)


def span_name(endpoint: str, model: str | None) -> str:
    operation = operation_name(endpoint)
    return f"{operation} {model}" if model else operation


def provider_name(provider_type: str, configured: str | None = None) -> str:
    """``gen_ai.provider.name`` for a provider type, unless the configuration names it."""
    return configured or _PROVIDERS.get(provider_type, provider_type)


def server_attributes(base_url: str | None) -> dict[str, Any]:
    """``server.address`` and ``server.port`` of an upstream base URL (never its credentials)."""
    if not base_url:
        return {}
    parts = urlsplit(base_url)
    if not parts.hostname:
        return {}
    port = parts.port or {"https": 443, "http": 80}.get(parts.scheme)
    attributes: dict[str, Any] = {SERVER_ADDRESS: parts.hostname}
    if port:
        attributes[SERVER_PORT] = port
    return attributes


def request_attributes(body: Mapping[str, Any]) -> dict[str, Any]:
    """The ``gen_ai.request.*`` parameters the client set (never the prompt)."""
    attributes: dict[str, Any] = {}
    for key, name, kind in _PARAMETERS:
        value = body.get(key)
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        attributes[name] = float(value) if kind is float else int(value)
    stop = body.get("stop")
    if isinstance(stop, str):
        attributes["gen_ai.request.stop_sequences"] = (stop,)
    elif isinstance(stop, list) and stop and all(isinstance(s, str) for s in stop):
        attributes["gen_ai.request.stop_sequences"] = tuple(stop)
    encoding = body.get("encoding_format")
    if isinstance(encoding, str):
        attributes["gen_ai.request.encoding_formats"] = (encoding,)
    return attributes


def usage_attributes(usage: Usage) -> dict[str, Any]:
    """``gen_ai.usage.*`` of a request's usage (input tokens include cached ones, as OpenAI's do)."""
    attributes: dict[str, Any] = {
        USAGE_INPUT_TOKENS: usage.prompt_tokens,
        USAGE_OUTPUT_TOKENS: usage.completion_tokens,
    }
    if usage.cached_tokens is not None:
        attributes[USAGE_CACHE_READ] = usage.cached_tokens
    if usage.cache_write_tokens is not None:
        attributes[USAGE_CACHE_CREATION] = usage.cache_write_tokens
    if usage.reasoning_tokens is not None:
        attributes[USAGE_REASONING] = usage.reasoning_tokens
    if usage.estimated:
        attributes["compatgate.usage.estimated"] = True
    return attributes
