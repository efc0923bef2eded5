"""`Heartbeat`: keep-alives for every silent stream of a gateway, from one task.

While a stream's upstream is silent (a reasoning model thinking for minutes), proxies and load
balancers with idle timeouts would cut the connection. Each open `compatgate.relay.Relay`
registers here; one task per gateway wakes every quarter of ``[gateway] keepalive_seconds``
and has each relay silent for that long write its keep-alive (in the client's protocol, and
only between two events). One task for all streams rather than one per stream: an open stream
costs a set entry, not a task.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .relay import Relay

__all__ = ["Heartbeat"]


class Heartbeat:
    """The keep-alives of one gateway's open relays, after ``interval`` seconds of silence."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.relays: set[Relay] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._beating = False

    def add(self, relay: Relay) -> None:
        """Keep ``relay`` alive until `discard`."""
        self.relays.add(relay)
        if not self._beating:
            self._beating = True
            self._spawn(self._beat())

    def discard(self, relay: Relay) -> None:
        self.relays.discard(relay)

    async def aclose(self) -> None:
        """Stop beating (the gateway shuts down)."""
        for task in list(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _beat(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self.relays:
                await asyncio.sleep(self.interval / 4)
                now = loop.time()
                for relay in list(self.relays):
                    if now - relay.written >= self.interval and relay.can_keepalive and not relay.busy:
                        self._spawn(relay.beat())
        finally:
            self._beating = False

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)  # asyncio keeps only weak references to running tasks
        task.add_done_callback(self._tasks.discard)
