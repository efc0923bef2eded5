"""Reading and checking request bodies before anything goes upstream.

Only what the gateway itself relies on is checked (the endpoint's required fields and the
types it reads); everything else passes through untouched for the upstream to judge.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
from starlette.requests import Request

from .exceptions import InvalidRequestError, RequestTooLargeError

__all__ = ["VALIDATORS", "read_json"]

Body = dict[str, Any]


async def read_json(request: Request, limit: int) -> Body:
    """The JSON object in the request body; 413 past ``limit`` bytes, 400 when not JSON."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_large(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large(limit)
        chunks.append(chunk)
    content = b"".join(chunks)
    if not content.strip():
        raise InvalidRequestError(
            "The request body is empty: send a JSON object (Content-Type: application/json)."
        )
    try:
        body = orjson.loads(content)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequestError(
            f"We could not parse the JSON body of your request ({exc.args[0] if exc.args else exc}). "
            "The OpenAI API expects a JSON payload."
        ) from None
    if not isinstance(body, dict):
        raise InvalidRequestError("The request body must be a JSON object.")
    return body


def too_large(limit: int) -> RequestTooLargeError:
    return RequestTooLargeError(f"The request body is larger than the limit of {limit} bytes.")


def _require(body: Body, name: str, kinds: type | tuple[type, ...], what: str) -> Any:
    if name not in body or body[name] is None:
        raise InvalidRequestError(f"Missing required parameter: '{name}'.", param=name, code="missing_required_parameter")
    value = body[name]
    if not isinstance(value, kinds) or isinstance(value, bool) and bool not in _tuple(kinds):
        raise InvalidRequestError(
            f"Invalid type for '{name}': expected {what}, but got {_kind(value)}.",
            param=name,
            code="invalid_type",
        )
    return value


def _optional(body: Body, name: str, kinds: type | tuple[type, ...], what: str) -> None:
    if body.get(name) is not None:
        _require(body, name, kinds, what)


def _tuple(kinds: type | tuple[type, ...]) -> tuple[type, ...]:
    return kinds if isinstance(kinds, tuple) else (kinds,)


def _kind(value: Any) -> str:
    names = {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "an array", dict: "an object"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


def _common(body: Body, *, streams: bool) -> None:
    model = _require(body, "model", str, "a string")
    if not model:
        raise InvalidRequestError("'model' must not be empty.", param="model", code="invalid_value")
    if streams:
        _optional(body, "stream", bool, "a boolean")
        _optional(body, "stream_options", dict, "an object")
        n = body.get("n")
        if n is not None and (not isinstance(n, int) or isinstance(n, bool) or n < 1):
            raise InvalidRequestError("'n' must be an integer of at least 1.", param="n", code="invalid_value")


def check_chat(body: Body) -> None:
    _common(body, streams=True)
    messages = _require(body, "messages", list, "an array")
    if not messages:
        raise InvalidRequestError("'messages' must contain at least one message.", param="messages", code="empty_array")
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            raise InvalidRequestError(
                f"Invalid type for 'messages[{index}]': expected an object, but got {_kind(message)}.",
                param=f"messages[{index}]",
                code="invalid_type",
            )
        if not isinstance(message.get("role"), str):
            raise InvalidRequestError(
                f"Missing required parameter: 'messages[{index}].role'.",
                param=f"messages[{index}].role",
                code="missing_required_parameter",
            )


def check_completions(body: Body) -> None:
    _common(body, streams=True)
    _require(body, "prompt", (str, list), "a string or an array")


def check_embeddings(body: Body) -> None:
    _common(body, streams=False)
    value = _require(body, "input", (str, list), "a string or an array")
    if value == [] or value == "":
        raise InvalidRequestError("'input' must not be empty.", param="input", code="invalid_value")
    encoding = body.get("encoding_format")
    if encoding is not None and encoding not in ("float", "base64"):
        raise InvalidRequestError(
            "'encoding_format' must be 'float' or 'base64'.", param="encoding_format", code="invalid_value"
        )
    if body.get("stream") is True:
        raise InvalidRequestError("Embeddings cannot be streamed.", param="stream", code="invalid_value")


def check_model(body: Body) -> None:
    """Endpoints where the gateway reads only ``model`` (images, audio, moderations, realtime)."""
    _common(body, streams=False)


def check_responses(body: Body) -> None:
    _common(body, streams=True)
    _optional(body, "input", (str, list), "a string or an array")
    _optional(body, "previous_response_id", str, "a string")
    _optional(body, "store", bool, "a boolean")


VALIDATORS: dict[str, Callable[[Body], None]] = {
    "chat.completions": check_chat,
    "completions": check_completions,
    "embeddings": check_embeddings,
    "responses": check_responses,
    "images.generations": check_model,
    "images.edits": check_model,
    "audio.transcriptions": check_model,
    "audio.translations": check_model,
    "audio.speech": check_model,
    "moderations": check_model,
    "realtime": check_model,
}
