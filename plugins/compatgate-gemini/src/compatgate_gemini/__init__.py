"""compatgate-gemini: Google Gemini behind compatgate's OpenAI API.

Installed, this plugin registers the ``type = "gemini"`` provider and does nothing else: it is
inert until a ``[providers.<name>]`` table has that type.
"""

from __future__ import annotations

from collections.abc import Callable

from compatgate import Provider, hookimpl

from .provider import GeminiProvider

__all__ = ["GeminiProvider", "register_providers"]


@hookimpl
def register_providers(register: Callable[[type[Provider]], None]) -> None:
    register(GeminiProvider)
