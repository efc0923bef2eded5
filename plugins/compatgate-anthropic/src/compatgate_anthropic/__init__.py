"""compatgate-anthropic: Claude through the OpenAI Chat Completions API.

Installed, this plugin registers the ``type = "anthropic"`` provider and does nothing else: it
serves only the ``[providers.<name>]`` tables of that type. See the README for the options and
every mapping between the two protocols.
"""

from __future__ import annotations

from collections.abc import Callable

from compatgate import Provider, hookimpl

from .provider import AnthropicProvider

__all__ = ["AnthropicProvider", "register_providers"]


@hookimpl
def register_providers(register: Callable[[type[Provider]], None]) -> None:
    register(AnthropicProvider)
