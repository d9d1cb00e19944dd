"""Adaptive micro-batching with fake models: batches form under load, never at the cost of a lone request."""

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
        batcher = MicroBatcher()
        result = await batcher.submit("v1", model, [{"x": 1.0}])
        await batcher.close()
        return result

    result = run(scenario())
    assert list(result.values) == [2.0] and result.error is None and result.batch_rows == 1
    assert model.calls == [1]


def test_concurrent_requests_share_predict_calls_and_each_gets_its_own_answers():
    model = SlowModel(0.02)

    async def scenario():
        batcher = MicroBatcher()
        results = await asyncio.gather(
            *(batcher.submit("v1", model, [{"x": float(i)}, {"x": float(i) + 0.5}]) for i in range(40))
        )
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
        batcher = MicroBatcher(max_rows=10)
        await asyncio.gather(
            *(batcher.submit("v1", model, [{"x": 1.0}] * 3) for _ in range(20)),
            batcher.submit("v1", model, [{"x": 1.0}] * 25),
        )
        await batcher.close()

    run(scenario())
    assert all(n <= 12 or n == 25 for n in model.calls), model.calls


def test_a_poisoned_request_fails_alone():
    model = SlowModel(0.01)

    async def scenario():
        batcher = MicroBatcher()
        results = await asyncio.gather(
            *(batcher.submit("v1", model, [{"x": x, "poison": x == 2.0}]) for x in (0.0, 1.0, 2.0, 3.0))
        )
        await batcher.close()
        return results

    results = run(scenario())
    assert [None if r.values is None else list(r.values) for r in results] == [[0.0], [2.0], None, [6.0]]
    assert results[2].error == "ValueError: cannot score a poisoned record"
    assert model.calls == [4, 1, 1, 1, 1]  # the four were tried together first, then one by one


def test_a_bounded_wait_gathers_requests_that_arrive_soon_after():
    model = SlowModel(0.0)

    async def scenario():
        batcher = MicroBatcher(max_wait_s=0.05)

        async def later(delay, x):
            await asyncio.sleep(delay)
            return await batcher.submit("v1", model, [{"x": x}])

        results = await asyncio.gather(later(0, 1.0), later(0.01, 2.0), later(0.02, 3.0))
        await batcher.close()
        return results

    results = run(scenario())
    assert model.calls == [3] and [list(r.values) for r in results] == [[2.0], [4.0], [6.0]]
    assert results[0].latency_ms >= 15  # the first one waited for the others, within the bound


def test_a_model_that_returns_the_wrong_number_of_values_is_an_error():
    async def scenario():
        batcher = MicroBatcher()
        result = await batcher.submit("v1", lambda records: np.zeros(len(records) + 1), [{"x": 1.0}])
        await batcher.close()
        return result

    result = run(scenario())
    assert result.values is None and "returned 2 values for 1 records" in result.error


@pytest.mark.parametrize("wait", [0.0, 0.001])
def test_latency_is_measured_from_submission(wait):
    model = SlowModel(0.03)

    async def scenario():
        batcher = MicroBatcher(max_wait_s=wait)
        result = await batcher.submit("v1", model, [{"x": 1.0}])
        await batcher.close()
        return result

    assert run(scenario()).latency_ms >= 30


def test_two_versions_take_turns_one_call_per_round_oldest_first():
    stable, candidate = SlowModel(0.0), SlowModel(0.0)
    order = []

    async def scenario():
        batcher = MicroBatcher()

        def tracked(name, model):
            def predict(records):
                order.append(name)
                return model(records)

            return predict

        results = await asyncio.gather(
            *(
                batcher.submit(key, tracked(key, model), [{"x": float(i)}])
                for i in range(10)
                for key, model in (("v2", candidate), ("v1", stable))
            )
        )
        await batcher.close()
        return results

    results = run(scenario())
    assert stable.calls == [10] and candidate.calls == [10]
    assert order == ["v2", "v1"]  # the version of the oldest waiting request goes first
    assert [list(r.values) for r in results] == [[2.0 * i] for i in range(10) for _ in range(2)]


def test_requests_arriving_for_the_waiting_version_join_its_call():
    """A canary's requests wait one round; those that arrive meanwhile share the call with them."""
    stable, candidate = SlowModel(0.0), SlowModel(0.0)

    async def scenario():
        batcher = MicroBatcher()

        async def stable_then_candidate(x):
            await batcher.submit("v1", stable, [{"x": x}])
            return await batcher.submit("v2", candidate, [{"x": x}])

        results = await asyncio.gather(
            *(stable_then_candidate(float(i)) for i in range(4)),
            *(batcher.submit("v2", candidate, [{"x": 10.0 + i}]) for i in range(4)),
        )
        await batcher.close()
        return results

    results = run(scenario())
    assert stable.calls == [4]
    assert candidate.calls == [8]  # the 4 that waited and the 4 sent after their stable answers: one call
    assert [list(r.values) for r in results] == [[2.0 * x] for x in (0, 1, 2, 3, 10, 11, 12, 13)]


def test_small_rounds_run_on_the_event_loop_and_large_ones_on_the_executor():
    from concurrent.futures import ThreadPoolExecutor

    threads = []

    def model(records):
        threads.append(threading.current_thread().name)
        return np.zeros(len(records))

    async def scenario():
        with ThreadPoolExecutor(1, thread_name_prefix="predict") as pool:
            batcher = MicroBatcher(inline_max_rows=5, executor=pool)
            await batcher.submit("v1", model, [{"x": 1.0}] * 5)
            await batcher.submit("v1", model, [{"x": 1.0}] * 6)
            await batcher.close()

    run(scenario())
    assert threads[0] == threading.current_thread().name and threads[1].startswith("predict")
