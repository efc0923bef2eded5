"""Non-streamed answers, and the ``conform`` setting itself."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Literal

import orjson

from ..exceptions import ConfigError
from ..http import upstream_error
from ._base import Fallback
from .canonical import canonical_chat, canonical_completion, canonical_embeddings
from .chat import fix_chat_completion
from .completion import fix_completion
from .embedding import fix_embeddings

__all__ = ["MODES", "Mode", "conform_mode", "conform_reply"]

Mode = Literal["auto", "strict", "off"]
MODES: tuple[Mode, ...] = ("auto", "strict", "off")

_PREFIX = {"chat.completions": "chatcmpl", "completions": "cmpl", "embeddings": "embd"}
_CANONICAL: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "chat.completions": canonical_chat,
    "completions": canonical_completion,
    "embeddings": canonical_embeddings,
}


def conform_mode(value: Any, where: str) -> Mode:
    """The ``conform`` setting read from configuration (``where`` names the table)."""
    if value is None:
        return "auto"
    if value not in MODES:
        raise ConfigError(f"{where}.conform must be one of 'auto', 'strict', 'off' (got {value!r})")
    return value  # type: ignore[no-any-return]


def conform_reply(
    endpoint: str,
    data: dict[str, Any],
    raw: bytes | None,
    *,
    mode: Mode = "auto",
    request: Mapping[str, Any] | None = None,
    model: str = "",
    secrets: tuple[str | None, ...] = (),
) -> bytes:
    """The body to send for a non-streamed answer to ``endpoint`` (``"chat.completions"``,
    ``"completions"``, ``"embeddings"``; any other is relayed as is).

    ``data`` is the decoded answer (fixed in place), ``raw`` its bytes as the upstream sent
    them (None when a provider or hook built ``data``): in ``auto`` mode a conforming answer
    returns ``raw`` itself. ``request`` is the client's body (``encoding_format``, ``n``,
    ``max_tokens``), ``model`` the model the client asked for (for a missing ``model``).
    A 200 answer that is an error object raises that error; an answer that cannot be repaired
    raises `ConformError` (502); ``secrets`` are scrubbed from an upstream error message.
    """
    canonical = _CANONICAL.get(endpoint)
    if mode == "off" or canonical is None:
        return raw if raw is not None else orjson.dumps(data)
    if "error" in data and "choices" not in data and "data" not in data:
        raise upstream_error(502, raw if raw is not None else orjson.dumps(data), secrets=secrets)
    fallback = Fallback(request, model, _PREFIX[endpoint])
    if endpoint == "chat.completions":
        changed = fix_chat_completion(data, fallback)
    elif endpoint == "completions":
        changed = fix_completion(data, fallback)
    else:
        wanted = (request or {}).get("encoding_format") == "base64"
        changed = fix_embeddings(data, fallback, wanted)
    if mode == "strict":
        return orjson.dumps(canonical(data))
    return raw if raw is not None and not changed else orjson.dumps(data)
