"""Cache keys: which requests share an answer.

A key is ``(namespace, model, digest)``. The digest is SHA-256 over orjson (keys sorted, at
every depth) of the endpoint, the provider's name and the upstream-bound body — ``model`` is
the upstream model as routed — minus `IGNORED` and the operator's ``ignore_params``. Every
other parameter is part of the key: messages, ``temperature``, ``n``, ``seed``, ``tools``,
``tool_choice``, ``response_format``, ``logprobs``, ``max_tokens``, ``stop``, ``reasoning_effort``,
``service_tier``, unknown provider-specific fields... so any change that can change the answer
misses. ``model`` is the client-facing model name (purges and per-model settings use it), and
``namespace`` says who may share the entry: the key (``k:<key id>``), its team (``t:<team>``) or
everyone (``g``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any, NamedTuple

import orjson

from compatgate import RequestContext

from .settings import Settings

__all__ = ["IGNORED", "CacheKey", "cache_key", "namespace_of"]

# Parameters that cannot change the answer, left out of the key:
IGNORED = frozenset({
    "stream",  # a streamed and a non-streamed request share an entry (each is served from either)
    "stream_options",  # only whether the usage chunk is shown; the gateway always asks for it
    "user",  # an end-user id for the provider's abuse monitoring
    "safety_identifier",  # the same, under its newer name
    "metadata",  # tags kept with stored completions / responses, never seen by the model
    "store",  # whether the provider keeps the exchange (/responses with store: true bypasses)
    "prompt_cache_key",  # a routing hint for the provider's own prompt cache
    "prompt_cache_retention",  # how long the provider's prompt cache keeps the prefix
})  # fmt: skip

_OPTIONS = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS


class CacheKey(NamedTuple):
    """Where one answer is kept: ``namespace`` (who shares it), ``model`` (client-facing) and
    ``digest`` (hex SHA-256 of the canonical request)."""

    namespace: str
    model: str
    digest: str


def namespace_of(ctx: RequestContext, settings: Settings) -> str:
    """The namespace of the caller: ``k:<key id>`` for ``scope = "key"``; ``t:<team>`` for
    ``scope = "team"`` when the principal's metadata names a team (else its key's namespace, so
    a key without a team shares with nobody); ``g`` for ``scope = "global"``."""
    principal = ctx.principal
    key_id = principal.key_id if principal is not None else ""
    if settings.scope == "global":
        return "g"
    if settings.scope == "team" and principal is not None:
        team = principal.metadata.get(settings.team_metadata_key)
        if isinstance(team, str | int) and not isinstance(team, bool) and str(team):
            return f"t:{team}"
    return f"k:{key_id}"


def canonical(endpoint: str, provider: str, body: Mapping[str, Any], ignored: frozenset[str]) -> bytes:
    """The bytes the digest is taken over."""
    kept = {name: value for name, value in body.items() if name not in ignored}
    return orjson.dumps([endpoint, provider, kept], option=_OPTIONS)


def cache_key(ctx: RequestContext, body: Mapping[str, Any], settings: Settings) -> CacheKey:
    """The key of the upstream-bound ``body`` of ``ctx``."""
    provider = ctx.route.provider.name if ctx.route is not None else ""
    ignored = IGNORED | settings.ignore_params if settings.ignore_params else IGNORED
    digest = hashlib.sha256(canonical(ctx.endpoint, provider, body, ignored)).hexdigest()
    return CacheKey(namespace_of(ctx, settings), ctx.model, digest)
