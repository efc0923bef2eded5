"""compatgate-gemini: Google Gemini behind compatgate, and Gemini's API in front of it.

Installed, this plugin registers the ``type = "gemini"`` provider and the Gemini API
operations (``/v1beta/models/{model}:generateContent``, ``:streamGenerateContent``,
``:countTokens``, ``:embedContent``, ``:batchEmbedContents``; see `serving`), which speak
Gemini's API to clients for every provider. It adds no hook that runs on a request.
"""

from __future__ import annotations

from collections.abc import Callable

from compatgate import Operation, Provider, hookimpl

from .provider import GeminiProvider
from .serving import GEMINI, OPERATIONS, GeminiDialect

__all__ = ["GEMINI", "GeminiDialect", "GeminiProvider", "register_operations", "register_providers"]


@hookimpl
def register_providers(register: Callable[[type[Provider]], None]) -> None:
    register(GeminiProvider)


@hookimpl
def register_operations(register: Callable[[Operation], None]) -> None:
    for operation in OPERATIONS:
        register(operation)
