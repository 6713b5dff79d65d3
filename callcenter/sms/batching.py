"""Group commit: outbox writes that arrive while one commit runs share the next one.

Under load each message costs a "sent" and two delivery reports; one transaction each would
make the database's commit (an fsync) the limit. Callers still wait for their own write to
be committed before they answer (Kannel's DLR request, the dispatcher's bookkeeping), so
nothing is acknowledged that is not on disk; only the commits are shared.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class GroupCommit(Generic[T, R]):
    """Runs `apply(items) -> results` in a thread, batching items submitted meanwhile."""

    def __init__(self, apply: Callable[[list[T]], list[R]], name: str, max_batch: int = 500):
        self.apply = apply
        self.name = name
        self.max_batch = max_batch
        self._pending: list[tuple[T, asyncio.Future[R]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def submit(self, item: T) -> R:
        """Write `item` with the next commit; its result once committed."""
        fut: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._pending.append((item, fut))
        if self._flusher is None or self._flusher.done():
            # Owned here (and awaited by close); it ends by itself once nothing is pending.
            self._flusher = asyncio.create_task(self._flush(), name=self.name)
        return await fut

    async def _flush(self) -> None:
        while self._pending:
            batch = self._pending[:self.max_batch]
            del self._pending[:self.max_batch]
            try:
                results = await asyncio.to_thread(self.apply, [item for item, _ in batch])
            except asyncio.CancelledError:  # the loop is closing: nobody is left waiting
                for _, fut in batch + self._pending:
                    fut.cancel()
                self._pending.clear()
                raise
            except Exception as e:  # every waiter of this batch hears of it; the next runs
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(e)
                continue
            for (_, fut), result in zip(batch, results, strict=True):
                if not fut.done():
                    fut.set_result(result)

    async def close(self) -> None:
        """Wait for what was submitted to be written."""
        if self._flusher is not None:
            await asyncio.gather(self._flusher, return_exceptions=True)
