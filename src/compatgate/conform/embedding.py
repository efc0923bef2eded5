"""Embeddings: the ``list`` of ``embedding`` objects (``CreateEmbeddingResponse``).

``object`` ("list"), ``model``, ``data`` and ``usage`` (``prompt_tokens``, ``total_tokens``)
are required; each ``Embedding`` has ``index``, ``object`` ("embedding") and ``embedding``.
The schema only knows float arrays, but the API answers ``encoding_format: "base64"`` with the
vector as base64 of its little-endian float32 bytes: when the client asked for base64 and the
upstream ignored it (floats came back), the gateway encodes them exactly as OpenAI does; when
the client asked for floats and base64 came back, it decodes them.
"""

from __future__ import annotations

import base64
import binascii
import struct
from typing import Any

from ._base import ConformError, Fallback

__all__ = ["decode_embedding", "encode_embedding", "fix_embeddings"]

def encode_embedding(vector: list[float]) -> str:
    """``vector`` as OpenAI sends it for ``encoding_format: "base64"``: base64 of the values as
    little-endian IEEE 754 float32."""
    try:
        packed = struct.pack(f"<{len(vector)}f", *vector)
    except (struct.error, OverflowError):
        raise ConformError("an embedding holds something other than float32 numbers") from None
    return base64.b64encode(packed).decode("ascii")


def decode_embedding(encoded: str) -> list[float]:
    """The float32 values of a base64 embedding (the inverse of `encode_embedding`)."""
    try:
        raw = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise ConformError("an embedding is neither a list of numbers nor base64") from None
    if len(raw) % 4:
        raise ConformError("a base64 embedding is not a whole number of float32 values")
    return list(struct.unpack(f"<{len(raw) // 4}f", raw))


def fix_embeddings(data: dict[str, Any], fb: Fallback, base64_wanted: bool) -> bool:
    """Make ``data`` a valid ``CreateEmbeddingResponse`` whose vectors are in the encoding the
    client asked for; whether anything changed."""
    changed = False
    if data.get("object") != "list":
        data["object"] = "list"
        changed = True
    if type(data.get("model")) is not str:
        data["model"] = fb.model
        changed = True
    items = data.get("data")
    if type(items) is not list:
        raise ConformError("the embeddings answer has no data list")
    usage = data.get("usage")
    if type(usage) is not dict:
        data["usage"] = usage = {}
        changed = True
    prompt, total = usage.get("prompt_tokens"), usage.get("total_tokens")
    if type(prompt) is not int or type(total) is not int:
        prompt = prompt if type(prompt) is int else total if type(total) is int else 0
        usage["prompt_tokens"], usage["total_tokens"] = prompt, total if type(total) is int else prompt
        changed = True
    for position, item in enumerate(items):
        where = f"data[{position}]"
        if type(item) is not dict:
            raise ConformError(f"{where} is not an object")
        if type(item.get("index")) is not int:
            item["index"] = position
            changed = True
        if item.get("object") != "embedding":
            item["object"] = "embedding"
            changed = True
        vector = item.get("embedding")
        if type(vector) is list:
            if base64_wanted:
                item["embedding"] = encode_embedding(vector)
                changed = True
            elif vector and type(vector[0]) is not float:
                _check_numbers(vector, where)
        elif type(vector) is str:
            if not base64_wanted:
                item["embedding"] = decode_embedding(vector)
                changed = True
        else:
            raise ConformError(f"{where}.embedding is neither a list of numbers nor base64")
    return changed


def _check_numbers(vector: list[Any], where: str) -> None:
    """Refuse a vector that is not flat numbers (llama.cpp without pooling sends one vector
    per token): the schema has no place for it."""
    for value in vector:
        if type(value) is not float and type(value) is not int:
            raise ConformError(f"{where}.embedding is not a flat list of numbers")
