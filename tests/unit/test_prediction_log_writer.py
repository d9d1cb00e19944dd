"""The prediction-log writer gathers a trickle of rows into few writes, and flush() does not wait for it."""

from __future__ import annotations

import asyncio
import time

from core.predlog import LoggedRequest
from services.serving.prediction_log import AsyncPredictionLogWriter, RequestIdLookups


class FakeStore:
    def __init__(self) -> None:
        self.batches: list[int] = []

    def write(self, records) -> None:
        self.batches.append(len(records))


def _record(i: int, n: int = 1) -> LoggedRequest:
    return LoggedRequest(f"p{i}", 0.0, "u", "m", "1", "stable", [{}] * n, [1.0] * n, 1.0)


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


def test_a_write_closes_at_the_record_limit_not_the_request_count():
    async def scenario() -> list[int]:
        store = FakeStore()
        writer = AsyncPredictionLogWriter(store, max_queue=100, max_records=1000, linger_s=0.2)  # type: ignore[arg-type]
        for i in range(4):
            await writer.submit([_record(i, n=600)])
        writer.start()
        await writer.flush()
        await writer.stop()
        return store.batches

    # a write closes once it holds 1,000 records: two requests of 600 each, not all four
    assert asyncio.run(scenario()) == [2, 2]


class FlakyStore(FakeStore):
    """A database that is down for its first ``failures`` writes (a restart), then takes them."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    def write(self, records) -> None:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("server closed the connection unexpectedly")
        super().write(records)


def test_a_database_that_is_down_for_a_while_loses_no_row():
    async def scenario() -> tuple[list[int], int]:
        store = FlakyStore(failures=12)  # more than any fixed number of attempts would ride out
        writer = AsyncPredictionLogWriter(store, max_queue=100, max_retry_delay_s=0.01)  # type: ignore[arg-type]
        writer.start()
        await writer.submit([_record(i) for i in range(5)])
        await asyncio.wait_for(writer.flush(), timeout=10)
        await writer.stop()
        return store.batches, store.failures

    batches, failures_left = asyncio.run(scenario())
    assert failures_left == 0 and sum(batches) == 5


def test_while_the_database_is_down_batches_are_spilled_and_written_when_it_is_back(tmp_path):
    """Requests keep flowing (no back-pressure) and nothing is held in memory; the spill is replayed."""
    from services.serving.prediction_log import SpillFolder

    class Down(FakeStore):
        up = False
        written: list[str] = []

        def write(self, records) -> None:
            if not self.up:
                raise ConnectionError("the database is restarting")
            self.written += [r.request_id for r in records]

    async def scenario() -> tuple[Down, SpillFolder, int, int]:
        store, spill = Down(), SpillFolder(tmp_path / "spill")
        writer = AsyncPredictionLogWriter(store, max_queue=10, spill=spill, max_retry_delay_s=0.02)  # type: ignore[arg-type]
        writer.start()
        for i in range(30):  # three times the queue: a writer holding them in memory would block here
            await asyncio.wait_for(writer.submit([_record(i, n=2)]), timeout=5)
        await asyncio.wait_for(writer.flush(), timeout=5)
        spilled = writer.spilled_rows()
        store.up = True
        for _ in range(200):
            if not spill.files():
                break
            await asyncio.sleep(0.02)
        await writer.stop()
        return store, spill, spilled, writer.lost_rows

    store, spill, spilled, lost = asyncio.run(scenario())
    assert spilled == 30 and lost == 0
    assert sorted(store.written) == sorted(f"p{i}" for i in range(30)) and spill.files() == []


def test_what_an_earlier_process_spilled_is_written_at_start(tmp_path):
    from services.serving.prediction_log import SpillFolder

    SpillFolder(tmp_path / "spill").write([_record(1, n=3), _record(2)])  # a process that died with the DB down

    async def scenario() -> FakeStore:
        store = FakeStore()
        writer = AsyncPredictionLogWriter(store, max_queue=10, spill=SpillFolder(tmp_path / "spill"))  # type: ignore[arg-type]
        writer.start()
        for _ in range(100):
            if store.batches:
                break
            await asyncio.sleep(0.02)
        await writer.stop()
        return store

    assert asyncio.run(scenario()).batches == [2] and list((tmp_path / "spill").iterdir()) == []


class SlowLookups:
    """A log whose id lookup takes 50 ms, as a database round trip under load might."""

    def __init__(self, known: dict[str, list[dict]], *, fail: bool = False) -> None:
        self.known, self.fail, self.queries = known, fail, []

    def request_records(self, request_ids):
        self.queries.append(sorted(request_ids))
        time.sleep(0.05)
        if self.fail:
            raise ConnectionError("the database is restarting")
        return {rid: self.known[rid] for rid in request_ids if rid in self.known}


def test_request_id_lookups_of_a_burst_share_queries_and_each_asker_gets_its_own_answer():
    store = SlowLookups({"seen": [{"hr": 1}]})

    async def scenario() -> list:
        lookups = RequestIdLookups(store)  # type: ignore[arg-type]
        return await asyncio.gather(*(lookups.ask(rid) for rid in ["seen", *(f"new{i}" for i in range(30))]))

    answers = asyncio.run(scenario())

    assert answers[0] == [{"hr": 1}] and answers[1:] == [None] * 30
    assert store.queries == [sorted(["seen", *(f"new{i}" for i in range(30))])]  # one query for all


def test_ids_asked_for_while_a_lookup_runs_go_out_together_in_the_next_one():
    store = SlowLookups({})

    async def scenario() -> None:
        lookups = RequestIdLookups(store)  # type: ignore[arg-type]
        first = asyncio.ensure_future(lookups.ask("first"))
        await asyncio.sleep(0.01)  # its query is running now
        await asyncio.gather(first, *(lookups.ask(f"later{i}") for i in range(10)))

    asyncio.run(scenario())

    assert store.queries == [["first"], sorted(f"later{i}" for i in range(10))]


def test_on_the_loop_a_burst_still_shares_one_query_and_a_gone_asker_is_skipped():
    store = SlowLookups({"seen": [{"hr": 1}]})

    async def scenario() -> list:
        lookups = RequestIdLookups(store, on_loop=True)  # type: ignore[arg-type]
        gone, *asked = (lookups.ask(rid) for rid in ["gone", "seen", "new"])  # one burst
        gone.cancel()  # a request whose prediction failed: nobody reads its lookup
        return await asyncio.gather(*asked)

    assert asyncio.run(scenario()) == [[{"hr": 1}], None]
    assert store.queries == [["gone", "new", "seen"]]


def test_a_failed_lookup_reaches_every_asker_of_its_query():
    async def scenario() -> list:
        lookups = RequestIdLookups(SlowLookups({}, fail=True))  # type: ignore[arg-type]
        return await asyncio.gather(*(lookups.ask(f"r{i}") for i in range(5)), return_exceptions=True)

    answers = asyncio.run(scenario())

    assert all(isinstance(a, ConnectionError) for a in answers)
