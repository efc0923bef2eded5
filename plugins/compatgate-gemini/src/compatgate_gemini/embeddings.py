"""OpenAI ``/embeddings`` <-> Gemini ``batchEmbedContents``.

Each input becomes one ``EmbedContentRequest`` (``dimensions`` -> ``outputDimensionality``,
the model option ``task_type`` -> ``taskType``), at most `BATCH` per upstream call. Gemini
takes text only: token-id inputs are refused. ``encoding_format: "base64"`` packs the floats
as little-endian float32, like OpenAI. ``batchEmbedContents`` reports no token counts, so the
usage is the gateway's estimate (four characters per token) unless Gemini sends
``usageMetadata``.
"""

from __future__ import annotations

import base64
import struct
from collections.abc import Mapping, Sequence
from typing import Any

from compatgate import InvalidRequestError, UpstreamError

__all__ = ["BATCH", "batch_request", "embedding_inputs", "embedding_response", "embedding_vectors"]

BATCH = 100  # the most requests batchEmbedContents accepts in one call


def embedding_inputs(body: Mapping[str, Any]) -> list[str]:
    """The texts to embed (a 400 for token arrays or anything else that is not text)."""
    value = body["input"]
    inputs = [value] if isinstance(value, str) else value
    if not all(isinstance(item, str) for item in inputs):
        raise InvalidRequestError(
            "Gemini embedding models take text: 'input' must be a string or an array of strings "
            "(token arrays are not supported).",
            param="input",
        )
    return list(inputs)


def batch_request(model: str, texts: Sequence[str], body: Mapping[str, Any], task_type: str | None) -> dict[str, Any]:
    """The ``batchEmbedContents`` body for ``texts`` (``model`` is the ``models/...`` name)."""
    dimensions = body.get("dimensions")
    if dimensions is not None and (not isinstance(dimensions, int) or isinstance(dimensions, bool) or dimensions < 1):
        raise InvalidRequestError("'dimensions' must be a positive integer.", param="dimensions")
    requests = []
    for text in texts:
        request: dict[str, Any] = {"model": model, "content": {"parts": [{"text": text}]}}
        if dimensions is not None:
            request["outputDimensionality"] = dimensions
        if task_type:
            request["taskType"] = task_type
        requests.append(request)
    return {"requests": requests}


def embedding_vectors(data: Mapping[str, Any], expected: int) -> list[list[float]]:
    """The vectors of one ``batchEmbedContents`` answer, checked."""
    embeddings = data.get("embeddings")
    if not isinstance(embeddings, list) or len(embeddings) != expected:
        got = len(embeddings) if isinstance(embeddings, list) else 0
        raise UpstreamError(f"The Gemini API returned {got} embeddings for {expected} inputs.", status_code=502)
    vectors = []
    for embedding in embeddings:
        values = embedding.get("values") if isinstance(embedding, Mapping) else None
        if not isinstance(values, list) or not all(isinstance(v, int | float) for v in values):
            raise UpstreamError("The Gemini API returned an embedding without values.", status_code=502)
        vectors.append([float(v) for v in values])
    return vectors


def embedding_response(
    model: str, texts: Sequence[str], vectors: Sequence[list[float]], body: Mapping[str, Any], tokens: int | None
) -> dict[str, Any]:
    """The OpenAI embeddings answer; ``tokens`` from Gemini, else estimated from ``texts``."""
    encode = body.get("encoding_format") == "base64"
    data = []
    for index, vector in enumerate(vectors):
        embedding: Any = vector
        if encode:
            embedding = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
        data.append({"object": "embedding", "index": index, "embedding": embedding})
    if tokens is None:
        tokens = sum((len(text) + 3) // 4 for text in texts)
    return {"object": "list", "data": data, "model": model, "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}

