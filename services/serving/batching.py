"""Adaptive micro-batching: concurrent requests share ``predict`` calls, one call per model version per round.

A scikit-learn pipeline costs nearly the same for 1 row as for 50: the fixed
cost is validation, column selection and Python dispatch per step. So requests
queue up while a round of predictions runs, and the next round takes them all:
one ``predict`` call per round. At low load a request never waits for company:
with ``max_wait_s=0`` (the default) a lone request is predicted at once; under
load rounds grow by themselves. ``max_rows`` bounds a round, so one huge
request cannot make small ones wait behind it for long.

With two versions serving (a canary), a round serves the version of the oldest
waiting request; the other version's requests wait one round, and the requests
for it that arrive meanwhile join them. Serving both versions in every round
would cost two calls per round, each for half the requests; taking turns, each
call serves more of them (with 16 clients, about 11 instead of 8), and the
answers of the first version go out before the second one's call.

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
        turn_wait_s: float = 0.001,
        inline_max_rows: int = 2_000,
        executor: Executor | None = None,
    ) -> None:
        self._max_rows = max_rows
        self._max_wait_s = max_wait_s
        self._turn_wait_s = turn_wait_s
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

    async def _run(self) -> None:
        waiting: list[_Pending] = []  # oldest first; what a round leaves waits for the next one
        answered = 0
        while True:
            waiting = await self._gather(waiting, answered=answered)
            batch, waiting = self._next_round(waiting)
            await self._round(batch)
            answered = len(batch)

    async def _gather(self, waiting: list[_Pending], *, answered: int) -> list[_Pending]:
        """The requests left from the last round, then everything in the queue (at least one request).

        When versions take turns (requests were left), the clients just answered usually send their
        next request at once: up to ``turn_wait_s`` is spent for ``answered`` more to arrive, so the
        version whose turn it is gets its share of them in this call rather than in a call of its own.
        """
        taking_turns = bool(waiting)
        if not waiting:
            waiting = [await self._queue.get()]
        # Requests whose bytes arrived during the last round are read in the loop's next turn and
        # reach the queue in the turn after: two turns let them join this round. The same turns
        # send the last round's answers.
        for _ in range(2):
            await asyncio.sleep(0)
        rows = sum(len(item.records) for item in waiting)
        deadline = time.perf_counter() + (self._turn_wait_s if taking_turns else self._max_wait_s)
        arrived = 0
        while True:
            if not self._queue.empty():
                item = self._queue.get_nowait()
            elif (
                rows < self._max_rows
                and not (taking_turns and arrived >= answered)
                and (remaining := deadline - time.perf_counter()) > 0
            ):
                try:
                    item = await asyncio.wait_for(self._queue.get(), remaining)
                except TimeoutError:
                    break
            else:
                break
            waiting.append(item)
            rows += len(item.records)
            arrived += 1
        return waiting

    def _next_round(self, waiting: list[_Pending]) -> tuple[list[_Pending], list[_Pending]]:
        """The oldest request's version: its requests in order, up to ``max_rows``; and the rest."""
        key = waiting[0].key
        batch: list[_Pending] = []
        rest: list[_Pending] = []
        rows = 0
        for item in waiting:
            if item.key == key and rows < self._max_rows:
                batch.append(item)
                rows += len(item.records)
            else:
                rest.append(item)
        return batch, rest

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
