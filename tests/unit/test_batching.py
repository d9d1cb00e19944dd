"""Adaptive micro-batching with a fake model: batches form under load, never at the cost of a lone request."""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest

from services.serving.batching import MicroBatcher


class SlowModel:
    """Predicts x * 2 per record; records the size of every call; fails on a poisoned record."""

    def __init__(self, seconds: float = 0.02) -> None:
        self.seconds, self.calls = seconds, []
        self.lock = threading.Lock()

    def __call__(self, records):
        with self.lock:
            self.calls.append(len(records))
        if any(r.get("poison") for r in records):
            raise ValueError("cannot score a poisoned record")
        threading.Event().wait(self.seconds)
        return np.array([r["x"] * 2.0 for r in records])


def run(coro):
    return asyncio.run(coro)


def test_a_lone_request_is_predicted_alone_and_at_once():
    model = SlowModel(0.0)

    async def scenario():
        batcher = MicroBatcher(model)
        result = await batcher.submit([{"x": 1.0}])
        await batcher.close()
        return result

    result = run(scenario())
    assert list(result.values) == [2.0] and result.error is None and result.batch_rows == 1
    assert model.calls == [1]


def test_concurrent_requests_share_predict_calls_and_each_gets_its_own_answers():
    model = SlowModel(0.02)

    async def scenario():
        batcher = MicroBatcher(model)
        results = await asyncio.gather(*(batcher.submit([{"x": float(i)}, {"x": float(i) + 0.5}]) for i in range(40)))
        await batcher.close()
        return results

    results = run(scenario())
    for i, result in enumerate(results):
        assert list(result.values) == [2.0 * i, 2.0 * i + 1.0]
    assert sum(model.calls) == 80 and len(model.calls) < 40  # batched
    assert max(r.batch_rows for r in results) > 2


def test_a_batch_never_exceeds_max_rows_unless_one_request_does():
    model = SlowModel(0.01)

    async def scenario():
        batcher = MicroBatcher(model, max_rows=10)
        await asyncio.gather(*(batcher.submit([{"x": 1.0}] * 3) for _ in range(20)), batcher.submit([{"x": 1.0}] * 25))
        await batcher.close()

    run(scenario())
    assert all(n <= 12 or n == 25 for n in model.calls), model.calls


def test_a_poisoned_request_fails_alone():
    model = SlowModel(0.01)

    async def scenario():
        batcher = MicroBatcher(model)
        first = asyncio.ensure_future(batcher.submit([{"x": 0.0}]))  # occupies the model while the rest queue up
        await asyncio.sleep(0)
        rest = await asyncio.gather(
            batcher.submit([{"x": 1.0}]), batcher.submit([{"x": 2.0, "poison": True}]), batcher.submit([{"x": 3.0}])
        )
        await batcher.close()
        return [await first, *rest]

    results = run(scenario())
    assert [None if r.values is None else list(r.values) for r in results] == [[0.0], [2.0], None, [6.0]]
    assert results[2].error == "ValueError: cannot score a poisoned record"
    assert 3 in model.calls  # the three were tried together first, then one by one


def test_a_bounded_wait_gathers_requests_that_arrive_soon_after():
    model = SlowModel(0.0)

    async def scenario():
        batcher = MicroBatcher(model, max_wait_s=0.05)

        async def later(delay, x):
            await asyncio.sleep(delay)
            return await batcher.submit([{"x": x}])

        results = await asyncio.gather(later(0, 1.0), later(0.01, 2.0), later(0.02, 3.0))
        await batcher.close()
        return results

    results = run(scenario())
    assert model.calls == [3] and [list(r.values) for r in results] == [[2.0], [4.0], [6.0]]
    assert results[0].latency_ms >= 15  # the first one waited for the others, within the bound


def test_a_model_that_returns_the_wrong_number_of_values_is_an_error():
    async def scenario():
        batcher = MicroBatcher(lambda records: np.zeros(len(records) + 1))
        result = await batcher.submit([{"x": 1.0}])
        await batcher.close()
        return result

    result = run(scenario())
    assert result.values is None and "returned 2 values for 1 records" in result.error


@pytest.mark.parametrize("wait", [0.0, 0.001])
def test_latency_is_measured_from_submission(wait):
    model = SlowModel(0.03)

    async def scenario():
        batcher = MicroBatcher(model, max_wait_s=wait)
        result = await batcher.submit([{"x": 1.0}])
        await batcher.close()
        return result

    assert run(scenario()).latency_ms >= 30
