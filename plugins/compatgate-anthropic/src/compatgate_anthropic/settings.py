"""The options of an ``anthropic`` provider table and of its ``[[models]]`` entries.

A model entry's options override the provider's, which override the defaults here; both are
checked when the gateway starts (`ConfigError` naming the place), so a request never meets
an invalid setting.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from compatgate import ConfigError

__all__ = [
    "ADAPTIVE_EFFORT",
    "DEFAULT_BUDGETS",
    "MODEL_OPTIONS",
    "PROVIDER_OPTIONS",
    "Settings",
]

#: Thinking budgets (``budget_tokens``) for each OpenAI ``reasoning_effort``.
DEFAULT_BUDGETS: Mapping[str, int] = {
    "minimal": 1024,
    "low": 2048,
    "medium": 8192,
    "high": 16384,
    "xhigh": 24576,
    "max": 32768,
}

#: ``output_config.effort`` for each ``reasoning_effort`` when ``thinking = "adaptive"``.
ADAPTIVE_EFFORT: Mapping[str, str] = {
    "minimal": "low",
    "low": "low",
    "medium": "medium",
    "high": "high",
    "xhigh": "xhigh",
    "max": "max",
}

MODEL_OPTIONS: Mapping[str, type] = {
    "default_max_tokens": int,
    "structured_output": str,
    "thinking": str,
    "thinking_budgets": dict,
}

PROVIDER_OPTIONS: Mapping[str, type] = {
    **MODEL_OPTIONS,
    "anthropic_version": str,
    "passthrough_unknown_fields": bool,
}

_CHOICES = {"structured_output": ("native", "tool"), "thinking": ("budget", "adaptive")}
_MIN_BUDGET = 1024  # Anthropic's minimum budget_tokens


@dataclass(frozen=True, slots=True)
class Settings:
    """How requests of one model are converted.

    ``default_max_tokens``: ``max_tokens`` when the client sends neither ``max_tokens`` nor
    ``max_completion_tokens`` (Anthropic requires it). ``structured_output``: ``"native"``
    sends ``response_format`` json_schema as ``output_config.format``; ``"tool"`` as a forced
    tool (for models without structured outputs). ``thinking``: ``"budget"`` turns
    ``reasoning_effort`` into ``thinking.budget_tokens`` from ``thinking_budgets``;
    ``"adaptive"`` into adaptive thinking with ``output_config.effort``.
    """

    anthropic_version: str = "2023-06-01"
    default_max_tokens: int = 4096
    passthrough_unknown_fields: bool = False
    structured_output: str = "native"
    thinking: str = "budget"
    thinking_budgets: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_BUDGETS))

    def merge(self, options: Mapping[str, Any], where: str) -> Settings:
        """These settings overridden by ``options`` (already type-checked), checked."""
        changes = dict(options)
        for name, allowed in _CHOICES.items():
            if name in changes and changes[name] not in allowed:
                raise ConfigError(f"{where}.{name} must be one of {', '.join(map(repr, allowed))}")
        if "default_max_tokens" in changes and changes["default_max_tokens"] < 1:
            raise ConfigError(f"{where}.default_max_tokens must be at least 1")
        if "thinking_budgets" in changes:
            changes["thinking_budgets"] = {
                **self.thinking_budgets,
                **_budgets(changes["thinking_budgets"], f"{where}.thinking_budgets"),
            }
        return replace(self, **changes)


def _budgets(given: Mapping[str, Any], where: str) -> dict[str, int]:
    budgets: dict[str, int] = {}
    for effort, budget in given.items():
        if effort not in DEFAULT_BUDGETS:
            raise ConfigError(f"{where}: unknown effort {effort!r} (known: {', '.join(DEFAULT_BUDGETS)})")
        if not isinstance(budget, int) or isinstance(budget, bool) or budget < _MIN_BUDGET:
            raise ConfigError(f"{where}.{effort} must be an integer of at least {_MIN_BUDGET}")
        budgets[effort] = budget
    return budgets
