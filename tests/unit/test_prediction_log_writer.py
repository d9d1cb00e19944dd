"""The prediction-log writer gathers a trickle of rows into few writes, and flush() does not wait for it."""

from __future__ import annotations

import asyncio
import time

from core.predlog import PredictionRecord
from services.serving.prediction_log import AsyncPredictionLogWriter


class FakeStore:
    def __init__(self) -> None:
        self.batches: list[int] = []

    def write(self, records) -> None:
        self.batches.append(len(records))


def _record(i: int) -> PredictionRecord:
    return PredictionRecord(f"p{i}", f"p{i}", 0.0, "u", "m", "1", "stable", {}, 1.0, 1.0)


def test_a_trickle_of_single_rows_becomes_one_write_per_linger():
    async def scenario() -> list[int]:
        store = FakeStore()
        writer = AsyncPredictionLogWriter(store, max_queue=100, linger_s=0.2)  # type: ignore[arg-type]
        writer.start()
        for i in range(10):
            await writer.submit([_record(i)])
            await asyncio.sleep(0.005)
        await asyncio.sleep(0.3)
        await writer.stop()
        return store.batches

    assert asyncio.run(scenario()) == [10]


def test_flush_writes_at_once_and_no_row_is_lost():
    async def scenario() -> tuple[list[int], float]:
        store = FakeStore()
        writer = AsyncPredictionLogWriter(store, max_queue=100, linger_s=5.0)  # type: ignore[arg-type]
        writer.start()
        await writer.submit([_record(i) for i in range(3)])
        started = time.perf_counter()
        await writer.flush()
        waited = time.perf_counter() - started
        await writer.submit([_record(3)])
        await writer.stop()
        return store.batches, waited

    batches, waited = asyncio.run(scenario())
    assert sum(batches) == 4 and waited < 1.0
