"""Adaptive micro-batching: concurrent requests for one model version share one ``predict`` call.

A scikit-learn pipeline costs nearly the same for 1 row as for 50: the fixed
cost is validation, column selection and Python dispatch per step. So while
one ``predict`` runs (in a worker thread, leaving the event loop free to accept
requests), the requests that arrive meanwhile queue up, and the next call
takes them all. At low load a request never waits for company: with
``max_wait_s=0`` (the default) a lone request is predicted at once; under load
batches grow by themselves. ``max_rows`` bounds a batch, so one huge request
cannot make small ones wait behind it for long.

If a batched call fails, each request in it is retried alone, so one request
that breaks the model cannot fail the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

PredictFn = Callable[[list[dict[str, Any]]], np.ndarray]


@dataclass
class BatchResult:
    values: np.ndarray | None
    error: str | None
    latency_ms: float  # from submission to answer: queueing included, as the caller experiences it
    batch_rows: int  # rows in the predict call that answered (1 request or many)


@dataclass
class _Pending:
    records: Sequence[dict[str, Any]]
    future: asyncio.Future[BatchResult]
    submitted: float = field(default_factory=time.perf_counter)


class MicroBatcher:
    """One per loaded model version. ``predict`` maps records to one value per record."""

    def __init__(
        self, predict: PredictFn, *, max_rows: int = 256, max_wait_s: float = 0.0, executor: Executor | None = None
    ) -> None:
        self._predict = predict
        self._executor = executor  # None: asyncio's default thread pool
        self._max_rows = max_rows
        self._max_wait_s = max_wait_s
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    async def submit(self, records: Sequence[dict[str, Any]]) -> BatchResult:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run())
        future: asyncio.Future[BatchResult] = asyncio.get_running_loop().create_future()
        await self._queue.put(_Pending(records, future))
        return await future

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _take(self) -> list[_Pending]:
        """The first waiting request, then whatever else is already waiting (up to ``max_rows``)."""
        batch = [await self._queue.get()]
        rows = len(batch[0].records)
        deadline = time.perf_counter() + self._max_wait_s
        while rows < self._max_rows:
            if self._queue.empty():
                remaining = deadline - time.perf_counter()
                if remaining <= 0:
                    break
                try:
                    item = await asyncio.wait_for(self._queue.get(), remaining)
                except TimeoutError:
                    break
            else:
                item = self._queue.get_nowait()
            batch.append(item)
            rows += len(item.records)
        return batch

    async def _run(self) -> None:
        while True:
            batch = await self._take()
            records = [r for item in batch for r in item.records]
            values, error = await self._in_thread(records)
            if error is not None and len(batch) > 1:
                # Find the culprit: every request alone, so the others still get their answer.
                for item in batch:
                    alone, alone_error = await self._in_thread(list(item.records))
                    self._resolve(item, alone, alone_error, len(item.records))
                continue
            offset = 0
            for item in batch:
                n = len(item.records)
                part = values[offset : offset + n] if values is not None else None
                self._resolve(item, part, error, len(records))
                offset += n

    async def _in_thread(self, records: list[dict[str, Any]]) -> tuple[np.ndarray | None, str | None]:
        return await asyncio.get_running_loop().run_in_executor(self._executor, self._safe_predict, records)

    def _safe_predict(self, records: list[dict[str, Any]]) -> tuple[np.ndarray | None, str | None]:
        try:
            values = np.asarray(self._predict(records))
        except Exception as err:  # noqa: BLE001 - reported per request; the caller decides what it means
            return None, f"{type(err).__name__}: {err}"
        if len(values) != len(records):
            return None, f"ValueError: the model returned {len(values)} values for {len(records)} records"
        return values, None

    @staticmethod
    def _resolve(item: _Pending, values: np.ndarray | None, error: str | None, rows: int) -> None:
        if not item.future.done():  # the client may have gone away
            latency = (time.perf_counter() - item.submitted) * 1000
            item.future.set_result(BatchResult(values, error, latency, rows))
