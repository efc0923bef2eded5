"""Small checks shared by the validation modules: each raises `InvalidRequestError` with a
message in Anthropic's style, ``<path>: <what is wrong>``, and ``param`` set to the path."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from compatgate import InvalidRequestError

__all__ = [
    "MAX_INT",
    "boolean",
    "integer",
    "invalid",
    "known_keys",
    "mapping",
    "number",
    "optional_string",
    "string",
]

#: The largest integer accepted anywhere (counts, budgets): far above any model's limit, below
#: any integer overflow an upstream could meet.
MAX_INT = 1 << 24


def invalid(path: str, message: str) -> InvalidRequestError:
    return InvalidRequestError(f"{path}: {message}", param=path)


def mapping(value: Any, path: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise invalid(path, "Input should be an object.")
    return value


def known_keys(value: Mapping[str, Any], allowed: Iterable[str], path: str) -> None:
    """Anthropic refuses fields it does not know: so does the gateway."""
    allowed = set(allowed)
    for key in value:
        if key not in allowed:
            raise invalid(f"{path}.{key}" if path else str(key), "Extra inputs are not permitted.")


def string(value: Any, path: str, *, empty: bool = True, limit: int | None = None) -> str:
    if not isinstance(value, str):
        raise invalid(path, "Input should be a valid string.")
    if not empty and not value:
        raise invalid(path, "String should have at least 1 character.")
    if limit is not None and len(value) > limit:
        raise invalid(path, f"String should have at most {limit} characters.")
    return value


def optional_string(value: Any, path: str) -> str | None:
    return None if value is None else string(value, path)


def boolean(value: Any, path: str) -> bool:
    if not isinstance(value, bool):
        raise invalid(path, "Input should be a valid boolean.")
    return value


def integer(value: Any, path: str, *, minimum: int = 0, maximum: int = MAX_INT) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise invalid(path, "Input should be a valid integer.")
    if not minimum <= value <= maximum:
        raise invalid(path, f"Input should be an integer from {minimum} to {maximum}.")
    return value


def number(value: Any, path: str, *, minimum: float, maximum: float) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or math.isnan(value):
        raise invalid(path, "Input should be a valid number.")
    if not minimum <= value <= maximum:
        raise invalid(path, f"Input should be a number from {minimum:g} to {maximum:g}.")
    return value
