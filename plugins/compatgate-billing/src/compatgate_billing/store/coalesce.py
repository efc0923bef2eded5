"""`WriteQueue`: on SQLite, the writes that arrive while one transaction runs are made together
in the next one (settlement batches first, then the reservations, each statement evaluated
after the ones before it). One hop to the writer thread and one commit serve many requests; a
write still returns only once committed. If a shared transaction fails, each settlement batch
and each reservation runs again on its own, so it fails alone, as it would have without
sharing."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import Any

from .db import Steps
from .models import LedgerEntry

__all__ = ["WriteQueue"]

# (the steps of one part, the futures its results go to, whether it gives one result per future)
_Part = tuple[Callable[[], Steps[Any]], list["asyncio.Future[Any]"], bool]


class WriteQueue:
    """Reservations and settlements waiting for the next shared transaction.

    ``run`` runs steps as one transaction; ``settle_steps(entries)`` and
    ``reserve_steps(batch)`` give the steps of a settlement batch and of reservations."""

    def __init__(
        self,
        run: Callable[[Steps[Any]], Awaitable[Any]],
        settle_steps: Callable[[Sequence[LedgerEntry]], Steps[int]],
        reserve_steps: Callable[[list[tuple[Any, ...]]], Steps[list[bool]]],
    ) -> None:
        self._run, self._settle_steps, self._reserve_steps = run, settle_steps, reserve_steps
        self._reservations: list[tuple[tuple[Any, ...], asyncio.Future[bool]]] = []
        self._settlements: list[tuple[Sequence[LedgerEntry], asyncio.Future[int]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def reserve(self, args: tuple[Any, ...]) -> bool:
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._reservations.append((args, future))
        self._schedule()
        return await future

    async def settle(self, entries: Sequence[LedgerEntry]) -> int:
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._settlements.append((entries, future))
        self._schedule()
        return await future

    async def drain(self) -> None:
        """Wait until what is queued has been written (or has failed)."""
        flusher = self._flusher
        if flusher is not None and not flusher.done():
            with contextlib.suppress(Exception):
                await flusher

    def _schedule(self) -> None:
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(self._flush())

    async def _flush(self) -> None:
        """Run what was queued meanwhile as one transaction, again until nothing is queued."""
        while self._reservations or self._settlements:
            reservations, self._reservations = self._reservations, []
            settlements, self._settlements = self._settlements, []
            parts: list[_Part] = [
                (partial(self._settle_steps, entries), [future], False) for entries, future in settlements
            ]
            if reservations:
                batch = [args for args, _ in reservations]
                parts.append((partial(self._reserve_steps, batch), [f for _, f in reservations], True))
            try:
                results = await self._run(_all_steps([make for make, _, _ in parts]))
            except Exception as exc:
                # Each settlement batch, and each reservation, again on its own: one request's
                # failure must not fail the others that shared its transaction.
                parts = [part for part in parts if not part[2]] + [
                    (partial(self._reserve_steps, [args]), [future], True) for args, future in reservations
                ]
                if len(parts) == 1:
                    _fail(parts[0][1], exc)
                    continue
                results = [await self._run_alone(make, futures) for make, futures, _ in parts]
            except BaseException:  # cancelled (the loop is closing): so are the waiters
                for _, futures, _ in parts:
                    for future in futures:
                        future.cancel()
                raise
            for (_, futures, several), result in zip(parts, results, strict=True):
                if result is None:
                    continue
                for future, value in zip(futures, result if several else [result], strict=True):
                    if not future.done():
                        future.set_result(value)

    async def _run_alone(self, make: Callable[[], Steps[Any]], futures: list[asyncio.Future[Any]]) -> Any:
        """One part again, on its own; None (its futures failed) when it fails."""
        try:
            return await self._run(make())
        except Exception as exc:
            _fail(futures, exc)
            return None


def _all_steps(parts: list[Callable[[], Steps[Any]]]) -> Steps[list[Any]]:
    results = []
    for make in parts:
        results.append((yield from make()))
    return results


def _fail(futures: list[asyncio.Future[Any]], exc: Exception) -> None:
    for future in futures:
        if not future.done():
            future.set_exception(exc)
