"""Non-blocking prediction logging: the request enqueues its answer, a background task writes in batches."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import Any

from core.predlog import LoggedRequest, PredictionLog

log = logging.getLogger(__name__)


class AsyncPredictionLogWriter:
    """Batches answered requests from a bounded queue into one INSERT per batch, off the event loop.

    After the first request of a batch arrives the writer lingers up to ``linger_s`` for more, so
    a steady trickle of single-record requests becomes a few INSERTs a second instead of one per
    request (each one a transaction, competing with predictions for the interpreter). ``flush``
    cuts the wait short: /feedback needs the rows it refers to in the store now. A batch closes
    at ``max_records`` records, however many requests carry them.
    """

    def __init__(
        self,
        store: PredictionLog,
        *,
        max_queue: int,
        max_records: int = 20_000,
        linger_s: float = 0.0,
        max_retry_delay_s: float = 2.0,
    ) -> None:
        self._store = store
        self._queue: asyncio.Queue[LoggedRequest] = asyncio.Queue(maxsize=max_queue)
        self._max_records = max_records
        self._linger_s = linger_s
        self._max_retry_delay_s = max_retry_delay_s
        self._flush_now = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        # The records of each request id queued and not yet written: what the store cannot tell yet.
        self._pending: dict[str, Sequence[dict[str, Any]]] = {}

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="prediction-log-writer")

    def pending_records(self, request_id: str) -> Sequence[dict[str, Any]] | None:
        """The records of a request that is queued and not yet in the store, if there is one."""
        return self._pending.get(request_id)

    async def submit(self, entries: Sequence[LoggedRequest]) -> None:
        for entry in entries:
            self._pending[entry.request_id] = entry.features
            try:
                self._queue.put_nowait(entry)
            except asyncio.QueueFull:
                # Back-pressure instead of loss: a full queue slows requests down, it never drops a row.
                await self._queue.put(entry)

    async def flush(self) -> None:
        """Wait until everything submitted so far is in the store."""
        self._flush_now.set()
        await self._queue.join()

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            if self._linger_s > 0 and not self._flush_now.is_set() and batch[0].n_records < self._max_records:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._flush_now.wait(), self._linger_s)
            self._flush_now.clear()
            records = batch[0].n_records
            while records < self._max_records and not self._queue.empty():
                batch.append(self._queue.get_nowait())
                records += batch[-1].n_records
            try:
                await self._write_with_retry(batch)
            finally:
                for entry in batch:
                    if self._pending.get(entry.request_id) is entry.features:
                        del self._pending[entry.request_id]
                    self._queue.task_done()

    async def _write_with_retry(self, batch: list[LoggedRequest]) -> None:
        """Write until the store takes the batch: a database restart must not lose answered requests.

        Meanwhile the queue fills and requests wait on it (back-pressure); the backoff is capped so
        the writer notices within seconds that the database is back.
        """
        delay, attempt = 0.1, 0
        while True:
            attempt += 1
            try:
                await asyncio.to_thread(self._store.write, batch)
            except Exception as err:  # a failing store must not kill the writer
                if attempt == 1:
                    log.exception("prediction log write failed (%d requests); retrying until it succeeds", len(batch))
                else:
                    log.warning("prediction log write failed again (attempt %d): %s", attempt, err)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._max_retry_delay_s)
            else:
                if attempt > 1:
                    log.info("prediction log written after %d attempts", attempt)
                return

    async def stop(self) -> None:
        await self.flush()
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
