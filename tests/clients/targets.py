"""Where a client test points its client: a `Target` serves a scripted fake upstream and gives
the `Endpoint` (base URL, key, model) that the client uses.

``DirectTarget`` ("direct") points each client straight at the fake of its own protocol: the
tests check the clients and the fakes. ``GatewayTarget`` ("gateway") serves a fake of *another*
protocol behind a compatgate gateway mounted at ``/v1`` (as ``compatgate serve`` runs it) whose
model alias routes to it, so every request is converted both ways: Claude Code's Anthropic
requests and Gemini CLI's Gemini requests onto an OpenAI-compatible `ChatUpstream` (provider
``type = "openai"``), Codex's Responses requests onto an `AnthropicUpstream` (``type =
"anthropic"``), the OpenAI SDK's chat requests onto a `GeminiUpstream` (``type = "gemini"``).
``via`` picks another upstream protocol for one call (``target.anthropic(script,
via="anthropic")``: the native relay). The client's key is the gateway's; the fake accepts only
the upstream key, so a client key that leaked upstream fails the test. Base URLs:

- `anthropic`: ANTHROPIC_BASE_URL / the Anthropic SDK's ``baseURL`` (the client appends
  ``/v1/messages``);
- `responses` and `chat`: an OpenAI ``base_url`` (the client appends ``/responses``,
  ``/chat/completions``), Codex's provider ``base_url``;
- `gemini`: GOOGLE_GEMINI_BASE_URL (the client appends ``/v1beta/models/...``).

Behind the gateway these are the server's root for `anthropic` (``ANTHROPIC_BASE_URL``: the
client appends ``/v1/messages``) and the gateway's ``/v1`` for the others.

With ``COMPATGATE_CLIENT_CAPTURES=<dir>`` every request the fake received is saved there as JSON
(secrets masked, see `upstream.capture`), one folder per test: how ``captures/`` was made.
"""

from __future__ import annotations

import functools
import json
import os
import re
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from compatgate.testing import OpenAISchema, ServedGateway, serve_gateway

from .anthropic_fake import AnthropicUpstream
from .chat_fake import ChatUpstream
from .gemini_fake import GeminiUpstream
from .responses_fake import ResponsesUpstream
from .script import Script
from .upstream import ScriptedUpstream, capture

__all__ = ["TARGETS", "DirectTarget", "Endpoint", "GatewayTarget", "Target", "save_captures"]

SHARED = Path(os.environ.get("COMPATGATE_SHARED", Path(__file__).resolve().parents[3] / "shared"))
CLIENT_KEY = "sk-client-test-0123456789abcdef"
UPSTREAM_KEY = "sk-upstream-test-fedcba9876543210"


@dataclass(frozen=True)
class Endpoint:
    """What a client is given, and the fake upstream that answers in the end (``gateway``: the
    gateway in between, if any)."""

    url: str
    key: str
    model: str
    upstream: ScriptedUpstream
    gateway: ServedGateway | None = None


class Target(Protocol):
    name: str

    def anthropic(self, script: Script, via: str | None = None) -> AbstractContextManager[Endpoint]: ...
    def responses(self, script: Script, via: str | None = None) -> AbstractContextManager[Endpoint]: ...
    def chat(self, script: Script, via: str | None = None) -> AbstractContextManager[Endpoint]: ...
    def gemini(self, script: Script, via: str | None = None) -> AbstractContextManager[Endpoint]: ...


def save_captures(upstream: ScriptedUpstream, label: str) -> None:
    """Save what ``upstream`` received under ``$COMPATGATE_CLIENT_CAPTURES/label`` (if set)."""
    root = os.environ.get("COMPATGATE_CLIENT_CAPTURES")
    if not root:
        return
    folder = Path(root) / label
    folder.mkdir(parents=True, exist_ok=True)
    for index, request in enumerate(upstream.received, start=1):
        slug = re.sub(r"[^A-Za-z0-9]+", "-", request.path.rsplit("/", 1)[-1]).strip("-")
        path = folder / f"{index:02d}-{request.method.lower()}-{slug}.json"
        path.write_text(json.dumps(capture(request), indent=1, ensure_ascii=False) + "\n",
                        encoding="utf-8")


class DirectTarget:
    """Each client straight at the fake of its own protocol."""

    name = "direct"

    def __init__(self, label: str = "capture") -> None:
        self.label = label

    @contextmanager
    def _serve(self, fake: ScriptedUpstream, url: Callable[[str], str],
               model: str) -> Iterator[Endpoint]:
        with fake.served():
            try:
                yield Endpoint(url(fake.url), CLIENT_KEY, model, fake)
            finally:
                save_captures(fake, self.label)

    def anthropic(self, script: Script, via: str | None = None) -> AbstractContextManager[Endpoint]:
        return self._serve(AnthropicUpstream(script, key=CLIENT_KEY), str, "gw-sonnet")

    def responses(self, script: Script, via: str | None = None) -> AbstractContextManager[Endpoint]:
        return self._serve(ResponsesUpstream(script, key=CLIENT_KEY), lambda u: f"{u}/v1",
                           "gw-model")

    def chat(self, script: Script, via: str | None = None) -> AbstractContextManager[Endpoint]:
        return self._serve(ChatUpstream(script, key=CLIENT_KEY), lambda u: f"{u}/v1", "gw-model")

    def gemini(self, script: Script, via: str | None = None) -> AbstractContextManager[Endpoint]:
        return self._serve(GeminiUpstream(script, key=CLIENT_KEY), str, "gw-gemini")


# Upstream protocol -> (fake, provider type, base URL under the fake's root, upstream model).
_UPSTREAMS: dict[str, tuple[type[ScriptedUpstream], str, str, str]] = {
    "chat": (ChatUpstream, "openai", "/v1", "gpt-4o-2024-08-06"),
    "anthropic": (AnthropicUpstream, "anthropic", "", "claude-sonnet-4-5"),
    "gemini": (GeminiUpstream, "gemini", "", "gemini-2.5-flash"),
    "responses": (ResponsesUpstream, "openai", "/v1", "gpt-5-codex"),
}


@functools.cache
def _anthropic_schema() -> OpenAISchema:
    return OpenAISchema(SHARED / "spec" / "anthropic-openapi.yaml")


class GatewayTarget:
    """Each client through a gateway to a fake of another protocol (see the module docstring)."""

    name = "gateway"

    def __init__(self, label: str = "capture") -> None:
        self.label = label

    @contextmanager
    def _serve(self, script: Script, via: str, aliases: tuple[str, ...],
               url: Callable[[str], str]) -> Iterator[Endpoint]:
        cls, kind, path, upstream_model = _UPSTREAMS[via]
        fake = cls(script, key=UPSTREAM_KEY)
        with fake.served():
            provider = {"type": kind, "base_url": fake.url + path, "api_key": UPSTREAM_KEY,
                        **({"native_responses": True} if via == "responses" else {})}
            config = {"gateway": {"api_keys": [CLIENT_KEY], "response_store": "off"},
                      "providers": {"up": provider},
                      "models": [{"name": alias, "provider": "up", "upstream_model": upstream_model}
                                 for alias in aliases]}
            try:
                with serve_gateway(config, mount="/v1") as gateway:
                    yield Endpoint(url(gateway.url), CLIENT_KEY, aliases[0], fake, gateway)
            finally:
                save_captures(fake, self.label)
        if kind == "anthropic":  # what the gateway sent Anthropic, against Anthropic's spec
            schema = _anthropic_schema()
            for request in fake.calls("/v1/messages"):
                schema.validate("CreateMessageParams", request.json)

    def anthropic(self, script: Script, via: str | None = None) -> AbstractContextManager[Endpoint]:
        return self._serve(script, via or "chat", ("gw-sonnet",), lambda u: u.removesuffix("/v1"))

    def responses(self, script: Script, via: str | None = None) -> AbstractContextManager[Endpoint]:
        # gpt-5.5 too: Codex gives the models it knows its freeform apply_patch tool.
        return self._serve(script, via or "anthropic", ("gw-model", "gpt-5.5"), str)

    def chat(self, script: Script, via: str | None = None) -> AbstractContextManager[Endpoint]:
        return self._serve(script, via or "gemini", ("gw-model",), str)

    def gemini(self, script: Script, via: str | None = None) -> AbstractContextManager[Endpoint]:
        return self._serve(script, via or "chat", ("gw-gemini",), str)


TARGETS: dict[str, Callable[[str], Target]] = {"direct": DirectTarget, "gateway": GatewayTarget}
