"""Non-blocking prediction logging: the request enqueues, a background task writes in batches."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence

from core.predlog import PredictionLog, PredictionRecord

log = logging.getLogger(__name__)


class AsyncPredictionLogWriter:
    """Batches records from a bounded queue into one INSERT per batch, off the event loop.

    After the first record of a batch arrives the writer lingers up to ``linger_s`` for more, so
    a steady trickle of single-record requests becomes a few INSERTs a second instead of one per
    request (each one a transaction, competing with predictions for the interpreter). ``flush``
    cuts the wait short: /feedback needs the rows it refers to in the store now.
    """

    def __init__(self, store: PredictionLog, *, max_queue: int, max_batch: int = 2000, linger_s: float = 0.0) -> None:
        self._store = store
        self._queue: asyncio.Queue[PredictionRecord] = asyncio.Queue(maxsize=max_queue)
        self._max_batch = max_batch
        self._linger_s = linger_s
        self._flush_now = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.written = 0

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="prediction-log-writer")

    async def submit(self, records: Sequence[PredictionRecord]) -> None:
        for record in records:
            try:
                self._queue.put_nowait(record)
            except asyncio.QueueFull:
                # Back-pressure instead of loss: a full queue slows requests down, it never drops a row.
                await self._queue.put(record)

    async def flush(self) -> None:
        """Wait until everything submitted so far is in the store."""
        self._flush_now.set()
        await self._queue.join()

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            if self._linger_s > 0 and not self._flush_now.is_set() and self._queue.qsize() < self._max_batch:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._flush_now.wait(), self._linger_s)
            self._flush_now.clear()
            while len(batch) < self._max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                await self._write_with_retry(batch)
            finally:
                for _ in batch:
                    self._queue.task_done()

    async def _write_with_retry(self, batch: list[PredictionRecord]) -> None:
        delay = 0.1
        for attempt in range(1, 6):
            try:
                await asyncio.to_thread(self._store.write, batch)
                self.written += len(batch)
                return
            except Exception:  # a failing store must not kill the writer
                log.exception("prediction log write failed (attempt %d/5, %d records)", attempt, len(batch))
                await asyncio.sleep(delay)
                delay *= 2
        log.error("dropping %d prediction-log records after 5 failed writes", len(batch))

    async def stop(self) -> None:
        await self.flush()
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
