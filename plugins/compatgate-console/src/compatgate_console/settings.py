"""The ``[plugins.console]`` table, checked when the gateway is built.

Every mistake is a `compatgate.ConfigError` naming the key (``plugins.console.session_hours``).
The console needs the billing plugin: without a ``[plugins.billing]`` table the gateway does
not start.
"""

from __future__ import annotations

from dataclasses import dataclass

from compatgate import Config
from compatgate.settings import Table

__all__ = ["PLUGIN_NAME", "ConsoleSettings", "parse_settings"]

PLUGIN_NAME = "console"
_WHERE = f"plugins.{PLUGIN_NAME}"
_KEYS = {"title", "session_hours", "signin_attempts_per_minute", "public_base_url", "page_size"}


@dataclass(frozen=True, slots=True)
class ConsoleSettings:
    """The checked ``[plugins.console]`` table."""

    title: str = "compatgate"
    session_hours: float = 8.0
    signin_attempts_per_minute: int = 10
    public_base_url: str | None = None
    page_size: int = 50


def parse_settings(config: Config) -> ConsoleSettings | None:
    """The console settings of ``config``; None without a ``[plugins.console]`` table."""
    if PLUGIN_NAME not in config.plugins:
        return None
    table = Table(config.plugin(PLUGIN_NAME), _WHERE, config.source)
    if "billing" not in config.plugins:
        raise table.error("needs the billing plugin (compatgate-billing): add a [plugins.billing] table "
                          "(the console shows and changes its keys and ledger)")
    table.only(_KEYS, message="{path}: unknown key{hint} (allowed: {allowed})")
    title = table.get("title", "compatgate")
    if not isinstance(title, str) or not 0 < len(title) <= 60:
        raise table.error("must be a string of 1 to 60 characters", "title")
    hours = table.get("session_hours", 8.0)
    if isinstance(hours, bool) or not isinstance(hours, int | float) or not 0 < hours <= 24 * 30:
        raise table.error("must be a number of hours above 0 and at most 720", "session_hours")
    attempts = table.get("signin_attempts_per_minute", 10)
    if isinstance(attempts, bool) or not isinstance(attempts, int) or not 1 <= attempts <= 10_000:
        raise table.error("must be an integer from 1 to 10000", "signin_attempts_per_minute")
    page = table.get("page_size", 50)
    if isinstance(page, bool) or not isinstance(page, int) or not 10 <= page <= 1000:
        raise table.error("must be an integer from 10 to 1000", "page_size")
    base = table.get("public_base_url")
    if base is not None and (
        not isinstance(base, str) or not base.startswith(("http://", "https://")) or "@" in base
    ):
        raise table.error(
            "must be the API's http(s) URL as clients reach it, without credentials "
            "(e.g. https://llm.example.com/v1)", "public_base_url"
        )
    return ConsoleSettings(
        title=title,
        session_hours=float(hours),
        signin_attempts_per_minute=attempts,
        public_base_url=base.rstrip("/") if base else None,
        page_size=page,
    )
