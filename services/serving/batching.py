"""Adaptive micro-batching: concurrent requests share ``predict`` calls, one call per model version per round.

A scikit-learn pipeline costs nearly the same for 1 row as for 50: the fixed
cost is validation, column selection and Python dispatch per step. So requests
queue up while a round of predictions runs, and the next round takes them all:
every version with waiting requests gets one call (a canary round makes two,
not one per request). At low load a request never waits for company: with
``max_wait_s=0`` (the default) a lone request is predicted at once; under load
rounds grow by themselves. ``max_rows`` bounds a round, so one huge request
cannot make small ones wait behind it for long.

Small rounds are predicted on the event loop itself. Handing a call to a
worker thread and back costs more than the thread gains: predicting holds the
interpreter lock, so the loop could not serve other requests meanwhile anyway,
and every hand-over adds milliseconds of wake-up and lock contention. Rounds
above ``inline_max_rows`` go to the executor, so a huge request leaves the loop
free to answer health checks while it runs.

If a batched call fails, each request in it is retried alone, so one request
that breaks the model cannot fail the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Hashable, Sequence
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
    key: Hashable
    predict: PredictFn
    records: Sequence[dict[str, Any]]
    future: asyncio.Future[BatchResult]
    submitted: float = field(default_factory=time.perf_counter)


class MicroBatcher:
    """One per process. ``submit`` names the model (``key``) and how to predict with it."""

    def __init__(
        self,
        *,
        max_rows: int = 256,
        max_wait_s: float = 0.0,
        inline_max_rows: int = 2_000,
        executor: Executor | None = None,
    ) -> None:
        self._max_rows = max_rows
        self._max_wait_s = max_wait_s
        self._inline_max_rows = inline_max_rows
        self._executor = executor  # for rounds above inline_max_rows; None: asyncio's default pool
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    async def submit(self, key: Hashable, predict: PredictFn, records: Sequence[dict[str, Any]]) -> BatchResult:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run())
        future: asyncio.Future[BatchResult] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Pending(key, predict, records, future))
        return await future

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _take(self) -> list[_Pending]:
        """The first waiting request, then whatever else is waiting (up to ``max_rows``)."""
        batch = [await self._queue.get()]
        # Requests whose bytes arrived during the last round are read in the loop's next turn and
        # reach the queue in the turn after: two turns let them join this round.
        for _ in range(2):
            await asyncio.sleep(0)
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
            groups: dict[Hashable, list[_Pending]] = {}
            for item in await self._take():
                groups.setdefault(item.key, []).append(item)
            for items in groups.values():
                await self._round(items)

    async def _round(self, batch: list[_Pending]) -> None:
        predict = batch[0].predict
        records = [r for item in batch for r in item.records]
        values, error = await self._call(predict, records)
        if error is not None and len(batch) > 1:
            # Find the culprit: every request alone, so the others still get their answer.
            for item in batch:
                alone, alone_error = await self._call(predict, list(item.records))
                self._resolve(item, alone, alone_error, len(item.records))
            return
        offset = 0
        for item in batch:
            n = len(item.records)
            part = values[offset : offset + n] if values is not None else None
            self._resolve(item, part, error, len(records))
            offset += n

    async def _call(self, predict: PredictFn, records: list[dict[str, Any]]) -> tuple[np.ndarray | None, str | None]:
        if len(records) <= self._inline_max_rows:
            return _safe_predict(predict, records)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, _safe_predict, predict, records)

    @staticmethod
    def _resolve(item: _Pending, values: np.ndarray | None, error: str | None, rows: int) -> None:
        if not item.future.done():  # the client may have gone away
            latency = (time.perf_counter() - item.submitted) * 1000
            item.future.set_result(BatchResult(values, error, latency, rows))


def _safe_predict(predict: PredictFn, records: list[dict[str, Any]]) -> tuple[np.ndarray | None, str | None]:
    try:
        values = np.asarray(predict(records))
    except Exception as err:  # noqa: BLE001 - reported per request; the caller decides what it means
        return None, f"{type(err).__name__}: {err}"
    if len(values) != len(records):
        return None, f"ValueError: the model returned {len(values)} values for {len(records)} records"
    return values, None
