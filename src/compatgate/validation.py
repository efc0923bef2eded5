"""Reading and checking request bodies before anything goes upstream.

What the gateway itself relies on is checked: the operation's required fields, the types it
reads, the model name (`check_model_name`: it may end up in an upstream URL) and every number
that meters the request (`bounded`: an output cap, ``n``...), so that no absurd value reaches
billing or an upstream. Everything else passes through untouched for the upstream to judge.
Every refusal is an `InvalidRequestError` naming the parameter.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
from starlette.requests import Request

from .exceptions import InvalidRequestError, RequestTooLargeError

__all__ = [
    "MAX_CHOICES",
    "MAX_DEPTH",
    "MAX_MODEL_NAME",
    "MAX_TOKENS",
    "bounded",
    "check_chat",
    "check_completions",
    "check_embeddings",
    "check_model",
    "check_model_name",
    "check_responses",
    "kind_of",
    "optional",
    "read_json",
    "require",
    "too_large",
]

Body = dict[str, Any]

MAX_MODEL_NAME = 256  # characters
MAX_TOKENS = 100_000_000  # the largest output cap accepted (no model produces more)
MAX_CHOICES = 128  # ``n``, as OpenAI bounds it
MAX_DEPTH = 128  # levels of nested objects and arrays in a JSON body (a conversion adds a few)


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
    # orjson reads 1024 levels but writes 254: a body nested deeper could never be sent on.
    if content.count(b"[") + content.count(b"{") > MAX_DEPTH and _deeper_than(body, MAX_DEPTH):
        raise InvalidRequestError(f"The JSON body is nested more than {MAX_DEPTH} levels deep.")
    return body


def _deeper_than(value: Any, limit: int) -> bool:
    """Whether ``value`` nests objects and arrays more than ``limit`` levels deep."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        children = item.values() if isinstance(item, dict) else item
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def too_large(limit: int) -> RequestTooLargeError:
    return RequestTooLargeError(f"The request body is larger than the limit of {limit} bytes.")


def require(body: Body, name: str, kinds: type | tuple[type, ...], what: str, where: str = "") -> Any:
    """``body[name]``, which must be present, not null and of ``kinds`` (bool is never an int)."""
    param = f"{where}{name}"
    if name not in body or body[name] is None:
        raise InvalidRequestError(f"Missing required parameter: '{param}'.", param=param,
                                  code="missing_required_parameter")
    value = body[name]
    if not isinstance(value, kinds) or isinstance(value, bool) and bool not in _tuple(kinds):
        raise InvalidRequestError(
            f"Invalid type for '{param}': expected {what}, but got {kind_of(value)}.",
            param=param,
            code="invalid_type",
        )
    return value


def optional(body: Body, name: str, kinds: type | tuple[type, ...], what: str, where: str = "") -> Any:
    """``body[name]`` checked like `require` when present and not null; else None."""
    if body.get(name) is None:
        return None
    return require(body, name, kinds, what, where)


def bounded(body: Body, name: str, low: int, high: int, where: str = "") -> int | None:
    """An optional integer field within ``low..high``. Only a form's fields (a body whose
    ``fields_are_text`` is true, see `compatgate.uploads.Form`) may give it as text: in JSON,
    ``"100"`` is a string, which the meters would not read while a lenient upstream would."""
    value = body.get(name)
    if value is None:
        return None
    param = f"{where}{name}"
    if (isinstance(value, str) and getattr(body, "fields_are_text", False)
            and value.strip().lstrip("-").isdigit() and len(value.strip()) <= 20):
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise InvalidRequestError(f"'{param}' must be an integer from {low} to {high}; got {kind_of(value)} "
                                  f"{str(value)[:20]}.", param=param, code="invalid_value")
    return value


def _tuple(kinds: type | tuple[type, ...]) -> tuple[type, ...]:
    return kinds if isinstance(kinds, tuple) else (kinds,)


def kind_of(value: Any) -> str:
    """``value``'s JSON kind, as error messages name it (``an object``, ``null``...)."""
    names = {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "an array", dict: "an object"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


def check_model_name(name: Any, param: str = "model") -> str:
    """A model name the gateway can route and providers can put in a URL path: a non-empty
    string of at most `MAX_MODEL_NAME` characters, without control characters, backslashes,
    or empty, ``.`` or ``..`` path segments."""
    if not isinstance(name, str):
        raise InvalidRequestError(f"Invalid type for '{param}': expected a string, but got {kind_of(name)}.",
                                  param=param, code="invalid_type")
    if not name:
        raise InvalidRequestError(f"'{param}' must not be empty.", param=param, code="invalid_value")
    if len(name) > MAX_MODEL_NAME:
        raise InvalidRequestError(f"'{param}' is longer than {MAX_MODEL_NAME} characters.", param=param,
                                  code="invalid_value")
    if not name.isprintable() or "\\" in name or any(s in ("", ".", "..") for s in name.split("/")):
        raise InvalidRequestError(
            f"'{param}' is not a valid model name: it may not contain control characters, "
            "backslashes, or empty, '.' or '..' path segments.",
            param=param, code="invalid_value",
        )
    return name


# Output caps the meters read (`compatgate.metering.TokenMeter`): bounded wherever they appear.
_CAPS = ("max_tokens", "max_completion_tokens", "max_output_tokens", "n_predict", "max_new_tokens")


def _common(body: Body, *, streams: bool) -> None:
    check_model_name(require(body, "model", str, "a string"))
    for name in _CAPS:
        bounded(body, name, 1, MAX_TOKENS)
    bounded(body, "n", 1, MAX_CHOICES)
    if streams:
        optional(body, "stream", bool, "a boolean")
        optional(body, "stream_options", dict, "an object")


def check_chat(body: Body) -> None:
    _common(body, streams=True)
    messages = require(body, "messages", list, "an array")
    if not messages:
        raise InvalidRequestError("'messages' must contain at least one message.", param="messages", code="empty_array")
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            raise InvalidRequestError(
                f"Invalid type for 'messages[{index}]': expected an object, but got {kind_of(message)}.",
                param=f"messages[{index}]",
                code="invalid_type",
            )
        require(message, "role", str, "a string", f"messages[{index}].")
    optional(body, "tools", list, "an array")


def check_completions(body: Body) -> None:
    _common(body, streams=True)
    require(body, "prompt", (str, list), "a string or an array")
    bounded(body, "best_of", 1, 20)


def check_embeddings(body: Body) -> None:
    _common(body, streams=False)
    value = require(body, "input", (str, list), "a string or an array")
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
    """Endpoints where the gateway reads only ``model`` and the numbers it meters (images,
    audio, moderations, realtime)."""
    _common(body, streams=False)


def check_speech(body: Body) -> None:
    check_model(body)
    require(body, "input", str, "a string")


def check_responses(body: Body) -> None:
    _common(body, streams=True)
    optional(body, "input", (str, list), "a string or an array")
    optional(body, "instructions", str, "a string")
    optional(body, "previous_response_id", str, "a string")
    optional(body, "store", bool, "a boolean")
    tools = optional(body, "tools", list, "an array")
    for index, tool in enumerate(tools or ()):
        if not isinstance(tool, dict):
            raise InvalidRequestError(f"Invalid type for 'tools[{index}]': expected an object, but got "
                                      f"{kind_of(tool)}.", param=f"tools[{index}]", code="invalid_type")
        require(tool, "type", str, "a string", f"tools[{index}].")


Validator = Callable[[Body], None]
