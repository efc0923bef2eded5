"""`ClientWatch`: stop working for a client that went away.

While the gateway waits on an upstream, the ASGI server tells it that the client disconnected
only through ``receive()``. `ClientWatch` awaits that in one plain asyncio task beside the work
and cancels the work when the client leaves (the upstream call or stream is then closed at
once); ``left`` says so afterwards. It can also call ``idle`` every ``interval`` seconds of
silence meanwhile (to keep the client's connection alive). The watching task starts only once
the work has run for `START_AFTER` seconds: work that ends sooner (a fast upstream) costs a
timer, not a task — the watching would cost it a fifth of its CPU, and a client can hardly
leave in between. (An anyio task group with its cancel scope cost several times more still.)
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from types import TracebackType

from starlette.types import Receive

__all__ = ["START_AFTER", "ClientWatch"]

START_AFTER = 0.05  # seconds of work before the watching starts


class ClientWatch:
    """``async with ClientWatch(receive) as watch: ...``: the block is cancelled when the client
    disconnects, and the cancellation ends at the block (``watch.left`` is then True)."""

    def __init__(self, receive: Receive, idle: Callable[[], Awaitable[None]] | None = None,
                 interval: float = 0.0) -> None:
        self.receive, self.idle, self.interval = receive, idle, interval
        self.left = False
        self._task: asyncio.Task[object] | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = None

    async def __aenter__(self) -> ClientWatch:
        self._task = asyncio.current_task()
        self._timer = asyncio.get_running_loop().call_later(START_AFTER, self._start)
        return self

    def _start(self) -> None:
        self._watcher = asyncio.get_running_loop().create_task(self._watch())

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None,
                        traceback: TracebackType | None) -> bool:
        assert self._timer is not None and self._task is not None
        self._timer.cancel()
        if self._watcher is not None:
            self._watcher.cancel()
        if not self.left:
            return False
        if kind is None:  # the work ended as the client left: take back the cancellation asked for
            try:
                await asyncio.sleep(0)
            except asyncio.CancelledError:
                pass
            self._task.uncancel()
            return False
        return kind is asyncio.CancelledError and self._task.uncancel() == 0  # ours: it ends here

    async def _watch(self) -> None:
        while True:
            if self.idle is None:
                message = await self.receive()
            else:
                try:
                    async with asyncio.timeout(self.interval):
                        message = await self.receive()
                except TimeoutError:
                    await self.idle()
                    continue
            if message["type"] == "http.disconnect":
                self.left = True
                assert self._task is not None
                self._task.cancel()
                return
