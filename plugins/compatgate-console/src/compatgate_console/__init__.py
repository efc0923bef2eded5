"""compatgate-console: a web console for compatgate.

Operators (signed in with the billing admin key) see usage charts by model, key and provider,
manage keys, read the request log, prices and provider health; key holders (signed in with
their own virtual key) see their balance, usage and requests. Enable it with a
``[plugins.console]`` table next to ``[plugins.billing]``; ``compatgate serve`` then serves it
at ``/console/``, and a host app mounts ``console_app(gateway)`` where it wants.
"""

from __future__ import annotations

from .plugin import MOUNT, Console, console_app
from .settings import ConsoleSettings, parse_settings

__all__ = ["MOUNT", "Console", "ConsoleSettings", "console_app", "parse_settings"]
