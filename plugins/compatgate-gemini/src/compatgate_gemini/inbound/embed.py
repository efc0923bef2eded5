"""``embedContent`` / ``batchEmbedContents`` <-> OpenAI embeddings, and a local ``countTokens``.

- `embed_to_openai`: each request's text parts (joined with a newline) become one ``input``;
  ``outputDimensionality`` -> ``dimensions`` (one value for the whole batch: OpenAI takes one);
  ``taskType`` and ``title`` are dropped (OpenAI-style embedding models have no task types).
  Non-text parts are a 400 (`validate_embed_content`).
- `embed_from_openai`: ``data`` (floats, or base64 float32) in index order ->
  ``{"embedding": {"values": [...]}}``, or ``{"embeddings": [...]}`` for a batch.
- `count_tokens_estimate`: for upstreams without a ``countTokens`` method, an estimate: one
  token per four characters of every text, JSON-encoded function call/response and tool
  declaration (`compatgate.usage.estimate_tokens`), plus 258 tokens per media part (what
  Gemini counts for an image up to 384 pixels) and 4 per content; the answer is
  ``{"totalTokens": N}``.
"""

from __future__ import annotations

import base64
import binascii
import struct
from collections.abc import Mapping
from typing import Any

from compatgate import InvalidRequestError, UpstreamError
from compatgate.usage import estimate_tokens

from .contents import dump
from .names import camel_case
from .validate import validate_batch_embed_contents, validate_count_tokens, validate_embed_content

__all__ = ["MEDIA_TOKENS", "count_tokens_estimate", "embed_from_openai", "embed_to_openai"]

MEDIA_TOKENS = 258


def embed_to_openai(body: Mapping[str, Any], *, model: str, batch: bool) -> dict[str, Any]:
    """The OpenAI embeddings request for an ``embedContent`` (``batch=False``) or
    ``batchEmbedContents`` body."""
    (validate_batch_embed_contents if batch else validate_embed_content)(body)
    request = camel_case(body, "embed")
    requests = request["requests"] if batch else [request]
    texts = ["\n".join(part["text"] for part in item["content"]["parts"]) for item in requests]
    dimensions = {item.get("outputDimensionality") for item in requests}
    if len(dimensions) > 1:
        raise InvalidRequestError("Every request of the batch must have the same 'outputDimensionality'.",
                                  param="requests")
    out: dict[str, Any] = {"model": model, "input": texts if batch else texts[0], "encoding_format": "float"}
    dimension = dimensions.pop()
    if dimension is not None:
        out["dimensions"] = int(dimension)
    return out


def embed_from_openai(reply: Mapping[str, Any], *, batch: bool, count: int | None = None) -> dict[str, Any]:
    """The Gemini answer for an OpenAI embeddings answer (``count``: the inputs sent)."""
    data = [item for item in reply.get("data") or () if isinstance(item, Mapping)]
    data.sort(key=lambda item: item.get("index") if isinstance(item.get("index"), int) else 0)
    expected = count if count is not None else (len(data) if batch else 1)
    if len(data) != expected:
        raise UpstreamError(f"The upstream returned {len(data)} embeddings for {expected} inputs.", status_code=502)
    embeddings = [{"values": _values(item.get("embedding"))} for item in data]
    return {"embeddings": embeddings} if batch else {"embedding": embeddings[0]}


def count_tokens_estimate(body: Mapping[str, Any]) -> int:
    """An estimate of the tokens of a ``countTokens`` body (see the module docstring)."""
    validate_count_tokens(body)
    request = camel_case(body)
    inner = request.get("generateContentRequest")
    source = inner if isinstance(inner, Mapping) else request
    contents = list(source.get("contents") or ())
    if isinstance(source.get("systemInstruction"), Mapping):
        contents.append(source["systemInstruction"])
    characters, media = 0, 0
    for content in contents:
        for part in content["parts"]:
            if isinstance(part.get("text"), str):
                characters += len(part["text"])
            elif part.get("inlineData") is not None or part.get("fileData") is not None:
                media += 1
            else:
                characters += len(dump(part, "contents"))
    if source.get("tools"):
        characters += len(dump(source["tools"], "tools"))
    return estimate_tokens(characters) + MEDIA_TOKENS * media + 4 * len(contents)


def _values(embedding: Any) -> list[float]:
    if isinstance(embedding, str):
        try:
            raw = base64.b64decode(embedding, validate=True)
        except (binascii.Error, ValueError):
            raw = b"\0"
        if len(raw) % 4 == 0:
            return list(struct.unpack(f"<{len(raw) // 4}f", raw))
    elif isinstance(embedding, list) and all(isinstance(v, int | float) and not isinstance(v, bool) for v in embedding):
        return [float(v) for v in embedding]
    raise UpstreamError("The upstream returned an embedding without values.", status_code=502)
