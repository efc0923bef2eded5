"""compatgate-anthropic: Claude behind compatgate, and Anthropic's Messages API in front of it.

Installed, this plugin registers the ``type = "anthropic"`` provider (OpenAI chat completions
served by Claude; Anthropic's own API relayed natively) and the ``/messages`` and
``/messages/count_tokens`` operations (`serving`), which speak Anthropic's Messages API to
clients for every provider. See the README for the options and every mapping.
"""

from __future__ import annotations

from collections.abc import Callable

from compatgate import Operation, Provider, hookimpl

from .provider import AnthropicProvider
from .serving import ANTHROPIC, OPERATIONS, AnthropicDialect

__all__ = ["ANTHROPIC", "AnthropicDialect", "AnthropicProvider", "register_operations", "register_providers"]


@hookimpl
def register_providers(register: Callable[[type[Provider]], None]) -> None:
    register(AnthropicProvider)


@hookimpl
def register_operations(register: Callable[[Operation], None]) -> None:
    for operation in OPERATIONS:
        register(operation)
