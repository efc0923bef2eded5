"""The ledger writer: settles finished requests in the background, off the response path.

`record_usage` only puts an entry on a bounded queue (waiting for room when it is full, so a
slow database slows the gateway down instead of losing entries or memory). One task takes the
entries in batches (up to `BATCH_SIZE`; after `linger` seconds, or at once when it is 0) and
settles each batch in one transaction. A batch that fails is retried entry by entry, each up
to `ATTEMPTS` times; an entry that still fails is logged (by request id) and its reservation
released, so a broken row cannot hold money for ever. `close` writes everything queued
before it returns: a graceful stop loses no completed request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from .store import LedgerEntry, Store

__all__ = ["ATTEMPTS", "BATCH_SIZE", "LedgerWriter"]

logger = logging.getLogger("compatgate.billing")

BATCH_SIZE = 128
ATTEMPTS = 3
_STOP = object()


class LedgerWriter:
    """A background task writing `LedgerEntry` objects through ``store.settle``."""

    def __init__(self, store: Store, *, queue_size: int = 10_000, linger: float = 0.0) -> None:
        self._store = store
        self._queue: asyncio.Queue[LedgerEntry | object] = asyncio.Queue(queue_size)
        self._linger = linger
        self._task: asyncio.Task[None] | None = None
        self._warned_full = False
        self.submitted = 0
        self.written = 0  # new ledger rows
        self.failed = 0  # entries given up on
        self._done = 0  # entries handled: written, already there, or given up on

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    @property
    def pending(self) -> int:
        """Entries submitted and not yet handled (queued, or in the batch being written)."""
        return self.submitted - self._done

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="compatgate-billing-ledger")

    async def submit(self, entry: LedgerEntry) -> None:
        """Queue ``entry``; when the queue is full, wait for room."""
        if self._queue.full() and not self._warned_full:
            self._warned_full = True
            logger.warning(
                "compatgate-billing: the ledger queue is full; requests wait for the database"
            )
        self.submitted += 1
        await self._queue.put(entry)

    async def close(self, timeout: float = 30.0) -> None:
        """Write everything queued so far, then stop (within ``timeout`` seconds)."""
        if self._task is None:
            return
        task, self._task = self._task, None
        deadline = time.monotonic() + timeout
        try:
            if not task.done():  # behind every entry queued so far (waiting for room if full)
                await asyncio.wait_for(self._queue.put(_STOP), timeout)
            await asyncio.wait_for(task, max(deadline - time.monotonic(), 0.01))
        except TimeoutError:
            task.cancel()
            logger.error(
                "compatgate-billing: the ledger writer did not finish within %.0f s; %d entries unwritten",
                timeout,
                self.pending,
            )

    async def _run(self) -> None:
        stopping = False
        while not stopping:
            first = await self._queue.get()
            if first is _STOP:
                break
            batch: list[LedgerEntry] = [first]  # type: ignore[list-item]
            stopping = await self._fill(batch)
            await self._write(batch)

    async def _fill(self, batch: list[LedgerEntry]) -> bool:
        """Add queued entries to ``batch`` (waiting up to ``linger``); True once the stop came."""
        deadline = time.monotonic() + self._linger
        while len(batch) < BATCH_SIZE:
            try:
                item = self._queue.get_nowait()
            except asyncio.QueueEmpty:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                try:
                    item = await asyncio.wait_for(self._queue.get(), remaining)
                except TimeoutError:
                    return False
            if item is _STOP:
                return True
            batch.append(item)  # type: ignore[arg-type]
        return False

    async def _write(self, batch: list[LedgerEntry]) -> None:
        try:
            self.written += await self._store.settle(batch)
            self._done += len(batch)
            return
        except Exception as exc:
            logger.warning(
                "compatgate-billing: writing %d ledger entries failed (%s); retrying one by one",
                len(batch),
                type(exc).__name__,
            )
        for entry in batch:
            await self._write_one(entry)

    async def _write_one(self, entry: LedgerEntry) -> None:
        error: Exception | None = None
        for attempt in range(ATTEMPTS):
            try:
                self.written += await self._store.settle([entry])
                self._done += 1
                return
            except Exception as exc:
                error = exc
                await asyncio.sleep(0.1 * 2**attempt)
        self.failed += 1
        self._done += 1
        logger.error(
            "compatgate-billing: could not write the ledger entry of request %s (key %s): %s: %s",
            entry.request_id,
            entry.key_id,
            type(error).__name__,
            error,
        )
        with contextlib.suppress(Exception):
            await self._store.release(entry.id)
