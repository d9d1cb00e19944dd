"""The stream end to end on a real broker: the machine's Redis, or a Redis server of the test's own
where it is restarted; the consumer as its own process (``mlops stream consume``), killed with SIGKILL
and started again; alerts received by a real webhook; scoring through a real service."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import yaml

from core.layout import StateLayout
from core.usecase import UseCase
from pipelines.storage import DataLake
from pipelines.stream.bench import Webhook
from pipelines.stream.broker import RedisStreams
from pipelines.stream.consumer import Checkpoint, StreamNames
from pipelines.stream.producer import Faults, plan, produce, rows_of
from pipelines.traffic import free_port, running_process, running_service
from tests.conftest import ROOT, USECASES

MACHINE_REDIS = "redis://127.0.0.1:6379/0"
FAULTS = Faults(malformed=0.02, out_of_range=0.02, duplicates=0.02, out_of_order=0.02)


@pytest.fixture
def prefix() -> Iterator[str]:
    """Broker keys of the test's own, deleted afterwards."""
    name = f"test-{uuid.uuid4().hex[:8]}"
    yield name
    broker = RedisStreams(MACHINE_REDIS)
    for use_case in ("bike_demand", "credit_default"):
        names = StreamNames.of(name, use_case)
        broker.delete(names.events, names.dead, names.lease)
    broker.close()


def consumer_env(state: Path, prefix: str, *, url: str = MACHINE_REDIS, **extra: str) -> dict[str, str]:
    env = {
        **os.environ,
        "MLOPS_STATE_DIR": str(state),
        "MLOPS_STREAM_URL": url,
        "MLOPS_STREAM_PREFIX": prefix,
        "MLOPS_STREAM_BATCH_SECONDS": "0.1",
        "MLOPS_STREAM_BATCH_EVENTS": "300",
        **extra,
    }
    env.pop("MLOPS_SERVING_URL", None)
    env.pop("PREFECT_API_URL", None)
    return env


@contextlib.contextmanager
def consumer(use_case: str, env: dict[str, str], log: Path) -> Iterator[int]:
    """``mlops stream consume`` as its own process; yields its pid once its metrics answer."""
    port = free_port()
    command = [sys.executable, "-m", "cli", "stream", "consume", "--use-case", use_case]
    with running_process(
        command, env={**env, "MLOPS_STREAM_METRICS_PORT": str(port)}, probe=f"http://127.0.0.1:{port}/metrics",
        log_path=log, cwd=ROOT,
    ) as started:  # fmt: skip
        yield started.pid


def checkpoint(state: Path, use_case: str = "bike_demand") -> Checkpoint:
    return Checkpoint.load(state / "stream" / use_case / "checkpoint.json")


def wait_for(condition: Callable[[], bool], *, timeout: float = 60, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def produce_in_background(use_case: UseCase, prefix: str, n: int, *, rate: float, url: str = MACHINE_REDIS,
                          faults: Faults = FAULTS, sources: int = 3) -> subprocess.Popen:  # fmt: skip
    """``mlops stream produce`` as a process of its own, paced, while the test breaks things."""
    faults_arg = ",".join(f"{k}={v}" for k, v in vars(faults).items() if isinstance(v, float) and v)
    return subprocess.Popen(
        [sys.executable, "-m", "cli", "stream", "produce", "--use-case", use_case.name, "--rate", str(rate),
         "--count", str(n), "--sources", str(sources), "--json", *(["--faults", faults_arg] if faults_arg else [])],
        env={**os.environ, "MLOPS_STREAM_URL": url, "MLOPS_STREAM_PREFIX": prefix}, cwd=ROOT,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def sent_by(producer: subprocess.Popen) -> int:
    out, err = producer.communicate(timeout=120)
    assert producer.returncode == 0, err[-2000:]
    return int(json.loads(out)["sent"])


def assert_exactly_once(state: Path, sent: int, *, dead_letters: int | None = None) -> None:
    cp = checkpoint(state)
    lake = DataLake(StateLayout(state))
    curated, quarantined = lake.read_curated("bike_demand"), lake.read_quarantine("bike_demand")
    assert cp.received == sent == cp.accepted + cp.quarantined
    assert len(curated) == cp.accepted and len(quarantined) == cp.quarantined
    assert curated["event_time"].is_unique  # one row per hour: nothing curated twice
    ids = np.fromfile(state / "stream" / "bike_demand" / "accepted-ids.u64", dtype=np.uint64)
    assert len(ids) == len(np.unique(ids)) == cp.accepted
    if dead_letters is not None:
        assert dead_letters == cp.quarantined


def test_killing_the_consumer_mid_stream_loses_and_duplicates_nothing(bike: UseCase, prefix: str, tmp_path: Path):
    state, env = tmp_path / "state", consumer_env(tmp_path / "state", prefix)
    producer = produce_in_background(bike, prefix, 6_000, rate=1_500)
    kills = 0
    for round_ in range(4):
        with consumer("bike_demand", env, tmp_path / f"consumer-{round_}.log") as pid:
            before = checkpoint(state).received
            wait_for(lambda b=before: checkpoint(state).received > b + 300, what="progress")
            time.sleep(0.05 * round_)  # a different point of the commit each time
            os.kill(pid, signal.SIGKILL)
            kills += 1
    sent = sent_by(producer)
    with consumer("bike_demand", env, tmp_path / "consumer-last.log"):
        wait_for(lambda: checkpoint(state).received >= sent, what="the rest of the stream")
    names = StreamNames.of(prefix, "bike_demand")
    broker = RedisStreams(MACHINE_REDIS)
    assert kills == 4
    assert_exactly_once(state, sent, dead_letters=broker.length(names.dead))
    assert broker.backlog(names.events, names.group) == (0, 0)


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[tuple[str, Callable[[float], None]]]:
    """A Redis server of the test's own that writes every command to its append-only file (so that a
    restart keeps the stream), and a function that restarts it."""
    port = free_port()
    folder = tmp_path / "redis"
    folder.mkdir()
    command = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", str(folder), "--save", "",
               "--appendonly", "yes", "--appendfsync", "always"]  # fmt: skip
    if shutil.which("redis-server") is None:
        pytest.fail("redis-server is not installed: apt-get install redis-server")
    server = [subprocess.Popen(command, stdout=subprocess.DEVNULL)]
    url = f"redis://127.0.0.1:{port}/0"

    def up() -> None:
        broker = RedisStreams(url, timeout_s=1)
        wait_for(lambda: _answers(broker), what="redis-server", timeout=20)

    def restart(down_for: float) -> None:
        server[0].send_signal(signal.SIGTERM)
        server[0].wait(timeout=20)
        time.sleep(down_for)
        server[0] = subprocess.Popen(command, stdout=subprocess.DEVNULL)
        up()

    up()
    yield url, restart
    server[0].kill()


def _answers(broker: RedisStreams) -> bool:
    try:
        broker.ping()
    except Exception:  # noqa: BLE001 - not up yet
        return False
    return True


def test_a_broker_restart_mid_stream_loses_and_duplicates_nothing(bike: UseCase, own_redis, tmp_path: Path):
    url, restart = own_redis
    state = tmp_path / "state"
    env = consumer_env(state, "restart", url=url)
    stream = StreamNames.of("restart", "bike_demand").events
    events = list(plan(rows_of(bike), bike, sources=["a", "b"], faults=FAULTS, seed=5))[:4_000]
    with consumer("bike_demand", env, tmp_path / "consumer.log") as pid:
        produce(events[:2_000], RedisStreams(url), stream=stream, rate=2_000, max_len=10**6)
        restart(down_for=3.0)  # the consumer is mid-stream: its reads fail until the broker is back
        # What the producer was told is stored survived the restart (append-only file, fsync always) ...
        assert RedisStreams(url).length(stream) == 2_000
        produce(events[2_000:], RedisStreams(url), stream=stream, rate=2_000, max_len=10**6)
        # ... and the same consumer process, reconnected, takes the rest.
        wait_for(lambda: checkpoint(state).received >= len(events), what="the stream after the restart")
        os.kill(pid, 0)  # still the process that was consuming before the restart
    assert_exactly_once(state, len(events))


def test_a_malformed_flood_is_dead_lettered_and_raises_its_alert(bike: UseCase, prefix: str, tmp_path: Path):
    state, webhook = tmp_path / "state", Webhook()
    env = consumer_env(state, prefix, MLOPS_STREAM_WEBHOOK_URL=webhook.url)
    names = StreamNames.of(prefix, "bike_demand")
    broker = RedisStreams(MACHINE_REDIS)
    hostile = [b"\x00" * 10, b"{" * 5_000, b"\xff\xfe" * 40, b'{"id": 1}', b"x" * 200_000, b"[]", b""]
    try:
        with consumer("bike_demand", env, tmp_path / "consumer.log"):
            broker.publish(names.events, hostile * 300, max_len=10**6)
            good = list(plan(rows_of(bike, drop="2011-01"), bike, sources=["a"], faults=Faults()))
            produce(good, broker, stream=names.events, rate=None, max_len=10**6)
            wait_for(lambda: checkpoint(state).received >= len(hostile) * 300 + len(good), what="the flood")
            wait_for(lambda: any(p["alert"] == "feed_errors" for _, p in webhook.received), what="the alert")
    finally:
        webhook.close()
    cp = checkpoint(state)
    assert cp.quarantined == len(hostile) * 300 and cp.accepted == len(good)  # the good events still land
    assert broker.length(names.dead) == cp.quarantined
    letter = broker.entries(names.dead, count=1)[0]
    assert json.loads(letter.fields[b"reasons"])[0].startswith("malformed: ")
    (firing,) = [p for _, p in webhook.received if p["alert"] == "feed_errors" and p["status"] == "firing"]
    assert firing["value"] > 0.05 and firing["use_case"] == "bike_demand"


def test_a_silent_source_raises_its_alert_and_speaking_again_resolves_it(bike: UseCase, prefix: str, tmp_path: Path):
    usecases = tmp_path / "usecases"
    usecases.mkdir()
    spec = yaml.safe_load((USECASES / "bike_demand.yaml").read_text())
    spec["source"]["uri"] = str(ROOT / "data" / "Bikeshare.csv")
    spec["stream"]["alerts"] = [{"kind": "silence", "name": "station_silent", "after": "1s"}]
    (usecases / "bike_demand.yaml").write_text(yaml.safe_dump(spec))
    state, webhook = tmp_path / "state", Webhook()
    env = consumer_env(state, prefix, MLOPS_STREAM_WEBHOOK_URL=webhook.url, MLOPS_USECASES_DIR=str(usecases))
    names = StreamNames.of(prefix, "bike_demand")
    broker = RedisStreams(MACHINE_REDIS)
    events = list(plan(rows_of(bike, drop="2011-01"), bike, sources=["a", "b"], faults=Faults()))
    a, b = [e for e in events if e.source == "a"], [e for e in events if e.source == "b"]
    try:
        with consumer("bike_demand", env, tmp_path / "consumer.log"):
            produce(a[:5] + b[:5], broker, stream=names.events, rate=None, max_len=10**6)
            started = time.time()
            for event in a[5:40]:  # a keeps talking, b is silent
                produce([event], broker, stream=names.events, rate=None, max_len=10**6)
                time.sleep(0.05)
            produce(b[5:6], broker, stream=names.events, rate=None, max_len=10**6)
            wait_for(lambda: len(webhook.received) >= 2, what="firing and resolved")
    finally:
        webhook.close()
    changes = [(p["key"], p["status"]) for _, p in webhook.received]
    assert changes == [("b", "firing"), ("b", "resolved")]
    fired_at = webhook.received[0][0]
    assert 1.0 <= fired_at - started < 2.5  # 1 s of silence, seen within the consumer's tick


def test_streamed_events_are_scored_labelled_and_checked_for_drift_like_a_batch(
    trained_state: Path, prefix: str, tmp_path: Path, bike: UseCase
):
    from core.predlog import PredictionLog
    from pipelines.monitor import monitor_flow

    state = tmp_path / "state"
    shutil.copytree(trained_state, state, ignore=shutil.ignore_patterns("predictions.db*"))  # other tests' traffic
    with running_service(use_case="bike_demand", state_dir=state, log_path=tmp_path / "serve.log") as url:
        env = consumer_env(state, prefix) | {"MLOPS_SERVING_URL": url}
        broker = RedisStreams(MACHINE_REDIS)
        july = list(plan(rows_of(bike, drop="2011-07"), bike, sources=["a"], faults=Faults()))
        with consumer("bike_demand", env, tmp_path / "consumer.log"):
            produce(july, broker, stream=StreamNames.of(prefix, "bike_demand").events, rate=None, max_len=10**6)
            wait_for(lambda: checkpoint(state).received >= len(july), what="July")
            log = PredictionLog(StateLayout(state).prediction_log_url)
            wait_for(lambda: len(log.window(use_case="bike_demand", since=0, until=time.time() + 60)) >= len(july),
                     what="July's predictions", timeout=60)  # fmt: skip
            rows = log.window(use_case="bike_demand", since=0, until=time.time() + 60)
            log.close()
        assert httpx.get(f"{url}/ready").status_code == 200
    assert len(rows) == len(july) == checkpoint(state).accepted
    assert all(r.label is not None for r in rows)  # the observed demand came back as each one's label
    (window,) = [p.stem for p in (state / "stream" / "bike_demand" / "windows").iterdir()]
    report = monitor_flow(use_case="bike_demand", batch_id=window, retrain=False, state_dir=str(state))
    assert report["rows"] == len(july) >= bike.stream.window_rows  # the window read as the monitor reads a batch
    assert report["drift_detected"]  # July against a January-March model: the season moved


def test_mlops_stream_bench_quick_prints_the_measured_keys(tmp_path: Path):
    out = subprocess.run(
        [sys.executable, "-m", "cli", "stream", "bench", "--quick", "--json"],
        cwd=ROOT, capture_output=True, text=True, timeout=300, env={**os.environ, "MLOPS_STREAM_URL": MACHINE_REDIS},
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout)
    for key in ("events_per_s", "p50_ms", "p99_ms", "received", "accepted", "quarantined", "duplicates_in_curated",
                "alerts_fired", "alerts_expected"):  # fmt: skip
        assert key in result, key
    assert result["received"] == result["accepted"] + result["quarantined"] > 0
    assert result["duplicates_in_curated"] == 0
    assert result["alerts_fired"] == result["alerts_expected"] > 0
    assert result["events_per_s"] > 1_000 and result["p99_ms"] < 2_000


def test_alerts_and_full_windows_are_announced_as_prefect_events(credit: UseCase, prefix: str, tmp_path: Path):
    """With a Prefect server configured, an alert change and a full window reach its event API: what
    an Automation matches (the monitor deployment's trigger on mlops.batch.ingested, for one)."""
    from prefect.settings import PREFECT_API_URL

    api = PREFECT_API_URL.value()  # the session's temporary server (conftest)
    state = tmp_path / "state"
    env = consumer_env(state, prefix) | {"PREFECT_API_URL": api}
    broker = RedisStreams(MACHINE_REDIS)
    events = list(plan(rows_of(credit), credit, sources=["a"], faults=Faults()))[: credit.stream.window_rows + 50]
    events[10].values["balance"] = "90000"  # beyond the balance_spike alert's bound
    with consumer("credit_default", env, tmp_path / "consumer.log"):
        produce(events, broker, stream=StreamNames.of(prefix, "credit_default").events, rate=None, max_len=10**6)
        wait_for(lambda: checkpoint(state, "credit_default").received >= len(events), what="the events")

        def announced() -> dict[str, dict]:
            body = {"filter": {"event": {"prefix": ["mlops."]}, "any_resource": {"id_prefix": ["mlops."]}}}
            found = httpx.post(f"{api}/events/filter", json=body, timeout=10).json()["events"]
            return {e["event"]: e for e in found if e["payload"].get("use_case") == "credit_default"}

        wait_for(lambda: {"mlops.batch.ingested", "mlops.stream.alert.firing"} <= set(announced()), what="the events")
    seen = announced()
    window = seen["mlops.batch.ingested"]
    assert window["resource"]["prefect.resource.id"].startswith("mlops.batch.stream_")
    assert window["payload"]["rows_accepted"] >= credit.stream.window_rows
    alert = seen["mlops.stream.alert.firing"]
    assert alert["resource"]["prefect.resource.id"] == "mlops.stream.credit_default.balance_spike"
    assert alert["payload"]["value"] == 90000.0 and alert["payload"]["key"] == "a"
