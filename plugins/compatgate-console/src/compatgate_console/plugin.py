"""`Console`: the plugin (entry point ``console``), one instance per gateway.

Without a ``[plugins.console]`` table it does nothing (its hooks are withdrawn). Configured, it
mounts its web app at ``/console`` beside the API under ``compatgate serve`` (the
`register_apps` hook); in a host app, ``console_app(gateway)`` gives the app to mount. It adds
no hook on the request path: it reads and changes the billing plugin's data when a page is
viewed, through billing's public objects.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from compatgate import ConfigError, hookimpl, withdraw_hooks
from compatgate_billing import Billing

from .settings import ConsoleSettings, parse_settings

if TYPE_CHECKING:
    from starlette.types import ASGIApp

    from compatgate import Gateway

    from .app import ConsoleApp

__all__ = ["Console", "console_app"]

MOUNT = "/console"


class Console:
    """The web console of one gateway; ``settings`` is None when it is not configured."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.settings: ConsoleSettings | None = parse_settings(gateway.config)
        self._app: ConsoleApp | None = None
        if self.settings is None:
            withdraw_hooks(self, "register_apps", "startup")

    @property
    def billing(self) -> Billing:
        """The gateway's (enabled) billing plugin; ConfigError when there is none."""
        for plugin in self.gateway.pm.get_plugins():
            if isinstance(plugin, Billing) and plugin.enabled:
                return plugin
        raise ConfigError(
            f"{self.gateway.config.source}: plugins.console needs the billing plugin, and no "
            "configured compatgate-billing plugin is loaded by this gateway"
        )

    @property
    def app(self) -> ConsoleApp:
        """The console's ASGI app (built once)."""
        if self.settings is None:
            raise ConfigError(
                f"{self.gateway.config.source}: the console is not configured: add a "
                "[plugins.console] table"
            )
        if self._app is None:
            from .app import ConsoleApp

            self.billing  # noqa: B018 -- fails now, at construction, without billing
            self._app = ConsoleApp(self, self.settings)
        return self._app

    @hookimpl
    def register_apps(self, register: Callable[[str, ASGIApp], None]) -> None:
        register(MOUNT, self.app)

    @hookimpl
    def startup(self) -> None:
        self.billing  # noqa: B018 -- a clear start-up error when billing is missing

    def __repr__(self) -> str:
        return f"<Console {'on' if self.settings else 'off'}>"


def console_app(gateway: Gateway) -> ConsoleApp:
    """The console app of ``gateway`` to mount in a host app
    (``app.mount("/console", console_app(gateway))``); ConfigError when the gateway has no
    ``[plugins.console]`` table or no billing plugin."""
    for plugin in gateway.pm.get_plugins():
        if isinstance(plugin, Console) and plugin.settings is not None:
            return plugin.app
    raise ConfigError(
        f"{gateway.config.source}: no console: install compatgate-console and add a "
        "[plugins.console] table (and [plugins.billing])"
    )
