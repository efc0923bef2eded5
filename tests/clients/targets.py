"""Where a client test points its client: a `Target` serves a scripted fake upstream and gives
the `Endpoint` (base URL, key, model) that the client uses.

``DirectTarget`` ("direct") points each client straight at the fake of its own protocol, so the
tests check the clients and the fakes today. A gateway target (for the lead to add to
``TARGETS``) implements the same four methods by serving the fake behind a gateway (Claude
Code's Anthropic requests, Codex's Responses requests and Gemini CLI's requests converted onto
an OpenAI-compatible `ChatUpstream`, or onto an `AnthropicUpstream` for Codex) and yielding the
gateway's URL, a client key and a model alias; the tests do not change. Base URLs:

- `anthropic`: ANTHROPIC_BASE_URL / the Anthropic SDK's ``baseURL`` (the client appends
  ``/v1/messages``);
- `responses` and `chat`: an OpenAI ``base_url`` (the client appends ``/responses``,
  ``/chat/completions``), Codex's provider ``base_url``;
- `gemini`: GOOGLE_GEMINI_BASE_URL (the client appends ``/v1beta/models/...``).

With ``COMPATGATE_CLIENT_CAPTURES=<dir>`` every request the fake received is saved there as JSON
(secrets masked, see `upstream.capture`), one folder per test: how ``captures/`` was made.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from .anthropic_fake import AnthropicUpstream
from .chat_fake import ChatUpstream
from .gemini_fake import GeminiUpstream
from .responses_fake import ResponsesUpstream
from .script import Script
from .upstream import ScriptedUpstream, capture

__all__ = ["TARGETS", "DirectTarget", "Endpoint", "Target", "save_captures"]

CLIENT_KEY = "sk-client-test-0123456789abcdef"


@dataclass(frozen=True)
class Endpoint:
    """What a client is given, and the fake upstream that answers in the end."""

    url: str
    key: str
    model: str
    upstream: ScriptedUpstream


class Target(Protocol):
    name: str

    def anthropic(self, script: Script) -> AbstractContextManager[Endpoint]: ...
    def responses(self, script: Script) -> AbstractContextManager[Endpoint]: ...
    def chat(self, script: Script) -> AbstractContextManager[Endpoint]: ...
    def gemini(self, script: Script) -> AbstractContextManager[Endpoint]: ...


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

    def anthropic(self, script: Script) -> AbstractContextManager[Endpoint]:
        return self._serve(AnthropicUpstream(script, key=CLIENT_KEY), str, "gw-sonnet")

    def responses(self, script: Script) -> AbstractContextManager[Endpoint]:
        return self._serve(ResponsesUpstream(script, key=CLIENT_KEY), lambda u: f"{u}/v1",
                           "gw-model")

    def chat(self, script: Script) -> AbstractContextManager[Endpoint]:
        return self._serve(ChatUpstream(script, key=CLIENT_KEY), lambda u: f"{u}/v1", "gw-model")

    def gemini(self, script: Script) -> AbstractContextManager[Endpoint]:
        return self._serve(GeminiUpstream(script, key=CLIENT_KEY), str, "gw-gemini")


TARGETS: dict[str, Callable[[str], Target]] = {"direct": DirectTarget}
