"""The consumer over an in-memory broker: every event accepted or quarantined once, across crashes."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core.layout import StateLayout
from core.usecase import UseCase
from pipelines.storage import DataLake
from pipelines.stream.checks import EventValidator
from pipelines.stream.consumer import ConsumerConfig, StreamConsumer, StreamMetrics, StreamNames
from pipelines.stream.producer import Faults, plan, produce, rows_of
from tests.support.brokers import Crash, FakeBroker

NAMES = StreamNames.of("test", "bike_demand")


def consumer(bike: UseCase, broker: FakeBroker, root: Path, **config: object) -> StreamConsumer:
    return StreamConsumer(
        use_case=bike,
        broker=broker,
        names=NAMES,
        layout=StateLayout(root).ensure(),
        validator=EventValidator(bike),
        config=ConsumerConfig(**{"max_events": 200, "max_seconds": 0.02, **config}),
        metrics=StreamMetrics(bike.name),
    )


def consume(c: StreamConsumer, broker: FakeBroker, *, timeout: float = 30) -> BaseException | None:
    """Run until the stream is drained and acknowledged, or the consumer crashes; the crash, if any."""
    stop, crashed = threading.Event(), []

    def target() -> None:
        try:
            c.run(stop)
        except BaseException as err:  # noqa: BLE001 - the injected crash ends the thread like a kill
            crashed.append(err)

    thread = threading.Thread(target=target)
    thread.start()
    deadline = time.monotonic() + timeout
    while thread.is_alive() and broker.backlog(NAMES.events, NAMES.group) != (0, 0):
        assert time.monotonic() < deadline, "the consumer did not drain the stream"
        time.sleep(0.01)
    stop.set()
    thread.join()
    c.close()
    return crashed[0] if crashed else None


def send(bike: UseCase, broker: FakeBroker, n: int, faults: Faults) -> int:
    events = plan(rows_of(bike), bike, sources=["a", "b"], faults=faults, seed=3)
    return produce((e for _, e in zip(range(n), events, strict=False)), broker, stream=NAMES.events,
                   rate=None, max_len=10**6).sent  # fmt: skip


def outcome(root: Path) -> dict[str, int]:
    lake = DataLake(StateLayout(root))
    curated = lake.read_curated("bike_demand")
    quarantined = lake.read_quarantine("bike_demand")
    checkpoint = json.loads((root / "stream" / "bike_demand" / "checkpoint.json").read_text())
    return {
        "curated": len(curated),
        "distinct_hours": int(curated["event_time"].nunique()) if len(curated) else 0,
        "quarantined": len(quarantined),
        "received": checkpoint["received"],
        "accepted": checkpoint["accepted"],
    }


FAULTS = Faults(malformed=0.03, out_of_range=0.02, duplicates=0.03, out_of_order=0.02)


def test_every_event_is_accepted_or_quarantined_once(bike: UseCase, tmp_path: Path):
    broker = FakeBroker()
    sent = send(bike, broker, 1_500, FAULTS)
    assert consume(consumer(bike, broker, tmp_path), broker) is None
    seen = outcome(tmp_path)
    assert seen["received"] == sent == seen["curated"] + seen["quarantined"]
    assert seen["curated"] == seen["accepted"] == seen["distinct_hours"]  # nothing curated twice
    letters = broker.streams[NAMES.dead]
    assert len(letters) == seen["quarantined"]
    reasons = [r for _, f in letters for r in json.loads(f[b"reasons"])]
    for kind in ("malformed", "duplicate", "expect_column_values_to_be_between"):
        assert any(r.startswith(kind) for r in reasons), kind


@pytest.mark.parametrize(
    "step",
    [
        {"dead_letter": 3},  # mid-way through a micro-batch's dead letters: nothing of it committed
        {"ack": 2},  # after the second checkpoint, before its acknowledgement
        {"read": 4},
    ],
    ids=["before-the-checkpoint", "after-the-checkpoint", "while-reading"],
)
def test_a_crash_at_any_step_loses_nothing_and_duplicates_nothing(bike: UseCase, tmp_path: Path, step: dict):
    broker = FakeBroker(fail_on=step)
    sent = send(bike, broker, 1_500, FAULTS)
    crash = consume(consumer(bike, broker, tmp_path), broker)
    assert isinstance(crash, Crash), "the injected crash did not happen"
    broker.fail_on = {}
    assert consume(consumer(bike, broker, tmp_path), broker) is None
    seen = outcome(tmp_path)
    assert seen["received"] == sent == seen["curated"] + seen["quarantined"]
    assert seen["curated"] == seen["accepted"] == seen["distinct_hours"]
    entries = [e for e, _ in broker.streams[NAMES.dead]]
    assert len(entries) == len(set(entries)) == seen["quarantined"]


def test_a_missing_checkpoint_beside_landed_micro_batches_stops_the_consumer(bike: UseCase, tmp_path: Path):
    broker = FakeBroker()
    send(bike, broker, 300, Faults())
    assert consume(consumer(bike, broker, tmp_path), broker) is None
    (tmp_path / "stream" / "bike_demand" / "checkpoint.json").unlink()
    with pytest.raises(RuntimeError, match=r"checkpoint\.json is missing"):
        consumer(bike, broker, tmp_path).recover()


def test_an_event_sent_again_later_is_quarantined_by_its_id(bike: UseCase, tmp_path: Path):
    broker = FakeBroker()
    events = list(plan(rows_of(bike), bike, sources=["a"], faults=Faults(), seed=0))[:50]
    produce(events, broker, stream=NAMES.events, rate=None, max_len=10**6)
    assert consume(consumer(bike, broker, tmp_path), broker) is None
    produce(events[:5], broker, stream=NAMES.events, rate=None, max_len=10**6)  # after a restart, too
    assert consume(consumer(bike, broker, tmp_path), broker) is None
    quarantine = DataLake(StateLayout(tmp_path)).read_quarantine("bike_demand")
    assert len(quarantine) == 5
    assert all("was accepted already" in r for r in quarantine["reasons"])


def test_a_full_window_is_recorded_and_announced_as_a_batch(bike: UseCase, tmp_path: Path):
    broker = FakeBroker()
    announced: list[tuple[str, dict, dict]] = []
    c = consumer(bike, broker, tmp_path)
    c._announce = lambda *event: announced.append(event)
    send(bike, broker, bike.stream.window_rows + 100, Faults())
    assert consume(c, broker) is None
    (name, resource, payload), *_ = announced
    assert name == "mlops.batch.ingested" and payload["rows_accepted"] >= bike.stream.window_rows
    window = payload["batch_id"]
    batch = DataLake(StateLayout(tmp_path)).read_batch("bike_demand", window)
    assert len(batch) == payload["rows_accepted"]  # the monitor flow reads a window as it reads a batch
    assert resource["prefect.resource.id"] == f"mlops.batch.{window}"


def test_the_latency_log_holds_one_value_per_event(bike: UseCase, tmp_path: Path):
    broker = FakeBroker()
    sent = send(bike, broker, 400, Faults())
    assert consume(consumer(bike, broker, tmp_path, latency_log=tmp_path / "lat"), broker) is None
    latencies = np.fromfile(tmp_path / "lat", dtype=np.float32)
    assert len(latencies) == sent and (latencies >= 0).all() and (latencies < 30).all()


def test_accepted_rows_keep_the_schema_types(bike: UseCase, tmp_path: Path):
    broker = FakeBroker()
    send(bike, broker, 100, Faults())
    assert consume(consumer(bike, broker, tmp_path), broker) is None
    curated = DataLake(StateLayout(tmp_path)).read_curated("bike_demand")
    assert str(curated["hr"].dtype) == "Int64" and curated["temp"].dtype == np.float64
    assert pd.api.types.is_datetime64_any_dtype(curated["event_time"])


def test_the_id_index_keeps_the_newest_ids_within_its_memory(bike: UseCase, tmp_path: Path):
    broker = FakeBroker()
    events = list(plan(rows_of(bike), bike, sources=["a"], faults=Faults(), seed=0))[:3_000]
    produce(events, broker, stream=NAMES.events, rate=None, max_len=10**6)
    c = consumer(bike, broker, tmp_path, id_memory=1_000)
    assert consume(c, broker) is None
    assert len(c.ids) <= 1_500  # rebuilt from the file's tail once it passed 1.5 x its memory
    restarted = consumer(bike, broker, tmp_path, id_memory=1_000)
    restarted.recover()
    assert len(restarted.ids) == 1_000
    newest = restarted.ids.lookup(np.asarray(pd.util.hash_array(np.asarray([events[-1].id], dtype=object))))[0]
    oldest = restarted.ids.lookup(np.asarray(pd.util.hash_array(np.asarray([events[0].id], dtype=object))))[0]
    assert newest.all() and not oldest.any()
    assert np.fromfile(tmp_path / "stream" / "bike_demand" / "accepted-ids.u64", dtype=np.uint64).size == 3_000
