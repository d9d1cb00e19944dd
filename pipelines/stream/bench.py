"""Throughput and latency of the stream at several loads, load generator included (``mlops stream bench``).

Each level runs a real consumer process against the broker, with a fresh stream and state folder,
and this process as the producer (the use case's rows replayed, 1 % malformed and 1 % duplicate
events) and as the alerts' webhook. Once a second a probe source sends a value beyond a declared
value alert and then one within it: each probe must fire the alert once, and the time from the
probe's production to the webhook's delivery is the alert latency. The consumer logs each event's
produced -> curated latency; its checkpoint and the lake give received, accepted and quarantined,
and the accepted event ids show whether any event was curated twice.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np

from core.usecase import UseCase, ValueAlert
from pipelines.settings import StreamSettings
from pipelines.stream.broker import RedisStreams
from pipelines.stream.consumer import STREAM_PREFIX, Checkpoint, StreamNames
from pipelines.stream.producer import Faults, Planned, plan, produce, rows_of
from pipelines.traffic import free_port, running_process

PROBE_SOURCE = "probe"


@dataclass(frozen=True)
class Level:
    rate: float | None  # events per second; None: as fast as the producer goes (saturation)
    events: int


class Webhook:
    """A local HTTP receiver of alert changes, with the time each arrived."""

    def __init__(self) -> None:
        self.received: list[tuple[float, dict[str, Any]]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                outer.received.append((time.time(), json.loads(body)))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/alerts"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()


def probe_alert(use_case: UseCase) -> ValueAlert:
    alerts = [a for a in use_case.stream.alerts if isinstance(a, ValueAlert) and a.above is not None]
    if not alerts:
        raise ValueError(f"{use_case.name} declares no value alert with 'above': the benchmark probes one")
    return alerts[0]


def with_probes(events: Iterator[Planned], use_case: UseCase, *, every: int) -> Iterator[Planned]:
    """Every ``every`` events, a probe beyond the value alert's bound and then one within it."""
    alert = probe_alert(use_case)
    assert alert.above is not None
    clean: dict[str, Any] | None = None  # the values of the last event sent without a fault
    for i, event in enumerate(events):
        yield event
        clean = dict(event.values) if event.fault is None else clean
        if i % every == every - 1 and clean is not None:
            high = {**clean, alert.column: str(alert.above * 1.5)}
            low = {**clean, alert.column: str(max(alert.above * 0.5, 0))}
            yield Planned(f"{PROBE_SOURCE}:{i}:high", PROBE_SOURCE, high, "probe")
            yield Planned(f"{PROBE_SOURCE}:{i}:low", PROBE_SOURCE, low, "probe")


def run_level(
    level: Level,
    use_case: UseCase,
    settings: StreamSettings,
    *,
    work: Path,
    serving_url: str | None = None,
    state: Path | None = None,
) -> dict[str, Any]:
    """One load level; with ``serving_url``, the consumer also scores through that service (its
    registry and prediction log in ``state``)."""
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    names = StreamNames.of(prefix, use_case.name)
    state = state or work / prefix
    latency_log = work / f"{prefix}.latency"
    webhook = Webhook()
    port = free_port()
    env = {
        **os.environ,
        "MLOPS_STATE_DIR": str(state),
        "MLOPS_STREAM_URL": settings.stream_url,
        "MLOPS_STREAM_PREFIX": prefix,
        "MLOPS_STREAM_METRICS_PORT": str(port),
        "MLOPS_STREAM_WEBHOOK_URL": webhook.url,
        "MLOPS_USECASES_DIR": str(use_case.base_dir),
    }
    env.pop("MLOPS_SERVING_URL", None)
    env.pop("PREFECT_API_URL", None)
    if serving_url is not None:
        env["MLOPS_SERVING_URL"] = serving_url
    broker = RedisStreams(settings.stream_url)
    command = [sys.executable, "-m", "cli", "stream", "consume", "--use-case", use_case.name,
               "--latency-log", str(latency_log)]  # fmt: skip
    rate = level.rate
    every = int(rate) if rate else 2_000  # a probe pair a second at a set rate
    try:
        with running_process(
            command, env=env, probe=f"http://127.0.0.1:{port}/metrics", log_path=work / f"{prefix}.log"
        ):
            events = with_probes(
                plan(rows_of(use_case, loops=1 + level.events // 10_000), use_case, sources=["source-1", "source-2"],
                     faults=Faults(malformed=0.01, duplicates=0.01), seed=1),
                use_case,
                every=every,
            )  # fmt: skip
            limited = (e for _, e in zip(range(level.events), events, strict=False))
            started = time.time()
            produced = produce(limited, broker, stream=names.events, rate=rate, max_len=settings.stream_max_len)
            checkpoint = _wait_until_received(state / "stream" / use_case.name / "checkpoint.json", produced.sent)
            done = time.time()
            time.sleep(1.0)  # the last alert changes reach the webhook
            if serving_url is not None:
                _wait_for_scores(latency_log.with_suffix(".scored"), checkpoint.accepted)
    finally:
        broker.delete(names.events, names.dead, names.lease)
        broker.close()
        webhook.close()
    latencies = np.fromfile(latency_log, dtype=np.float32) if latency_log.exists() else np.empty(0)
    scored_log = latency_log.with_suffix(".scored")
    scored = np.fromfile(scored_log, dtype=np.float32) if scored_log.exists() else np.empty(0)
    ids = np.fromfile(state / "stream" / use_case.name / "accepted-ids.u64", dtype=np.uint64)
    firings = [(t, p) for t, p in webhook.received if p["status"] == "firing" and p["key"] == PROBE_SOURCE]
    alert_latency = [t - p["produced_at"] for t, p in firings if p.get("produced_at")]
    curated = _curated_rows(state, use_case.name)
    return {
        "rate": rate or "max",
        "sent": produced.sent,
        "producer_events_per_s": round(produced.sent / produced.seconds, 1),
        "events_per_s": round(checkpoint.received / (done - started), 1),
        "received": checkpoint.received,
        "accepted": checkpoint.accepted,
        "quarantined": checkpoint.quarantined,
        "curated_rows": curated,
        "duplicates_in_curated": int(len(ids) - len(np.unique(ids))) + abs(curated - checkpoint.accepted),
        "p50_ms": _ms(latencies, 50),
        "p99_ms": _ms(latencies, 99),
        "alerts_expected": produced.faults.get("probe", 0) // 2,
        "alerts_fired": len(firings),
        "alert_p50_ms": _ms(np.asarray(alert_latency), 50),
        "alert_p99_ms": _ms(np.asarray(alert_latency), 99),
        **({"scored": len(scored), "scored_p50_ms": _ms(scored, 50), "scored_p99_ms": _ms(scored, 99)}
           if serving_url else {}),
    }  # fmt: skip


def _ms(values: np.ndarray, q: float) -> float | None:
    return round(float(np.percentile(values, q)) * 1000, 1) if len(values) else None


def _curated_rows(state: Path, use_case: str) -> int:
    import pyarrow.parquet as pq

    files = (state / "curated" / use_case).glob(f"event_date=*/{STREAM_PREFIX}*.parquet")  # not what bootstrap curated
    return sum(pq.ParquetFile(f).metadata.num_rows for f in files)


def _wait_for_scores(path: Path, accepted: int, *, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while (path.stat().st_size // 4 if path.exists() else 0) < accepted and time.monotonic() < deadline:
        time.sleep(0.1)


@contextlib.contextmanager
def scoring_service(use_case: UseCase, work: Path) -> Iterator[tuple[str, Path]]:
    """A champion bootstrapped from the use case's first months, served: (its URL, its state folder)."""
    from pipelines.traffic import running_service

    state = work / "scoring"
    env = {**os.environ, "MLOPS_STATE_DIR": str(state), "MLOPS_USECASES_DIR": str(use_case.base_dir)}
    env.pop("PREFECT_API_URL", None)
    done = subprocess.run([sys.executable, "-m", "cli", "bootstrap", "--use-case", use_case.name], env=env,
                          capture_output=True, text=True, timeout=900)  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"bootstrapping a model to score with failed: {done.stderr[-2000:]}")
    # A loopback service for the benchmark alone, as `make demo` runs its own: dev mode, the public token.
    local = {"MLOPS_DEV_MODE": "true", "MLOPS_USECASES_DIR": str(use_case.base_dir)}
    with running_service(use_case=use_case.name, state_dir=state, log_path=work / "serve.log", env=local) as url:
        yield url, state


def _wait_until_received(path: Path, sent: int, *, timeout_s: float = 120) -> Checkpoint:
    deadline, checkpoint = time.monotonic() + timeout_s, Checkpoint()
    while True:
        with contextlib.suppress(FileNotFoundError, json.JSONDecodeError):
            checkpoint = Checkpoint.load(path)
            if checkpoint.received >= sent:
                return checkpoint
        if time.monotonic() > deadline:
            raise TimeoutError(f"the consumer received {checkpoint.received} of {sent} events in {timeout_s:.0f} s")
        time.sleep(0.02)


def bench(use_case: UseCase, settings: StreamSettings, *, quick: bool) -> dict[str, Any]:
    """Levels of load up to saturation; the summary's keys are the issue's, the levels in ``levels``."""
    levels = (
        [Level(1_000, 4_000), Level(None, 20_000)]
        if quick
        else [Level(1_000, 10_000), Level(3_000, 30_000), Level(5_000, 50_000), Level(None, 100_000)]
    )
    with tempfile.TemporaryDirectory(prefix="stream-bench-") as tmp:
        results = [run_level(level, use_case, settings, work=Path(tmp)) for level in levels]
        if not quick:  # produced -> scored, through a real service (the model is trained first: ~1 min)
            with scoring_service(use_case, Path(tmp)) as (url, state):
                scored = run_level(
                    Level(1_000, 10_000), use_case, settings, work=Path(tmp), serving_url=url, state=state
                )
            results.insert(1, scored | {"rate": "1000, scored"})
    at_1000 = results[0]
    saturation = results[-1]
    return {
        "use_case": use_case.name,
        "events_per_s": saturation["events_per_s"],
        "p50_ms": at_1000["p50_ms"],
        "p99_ms": at_1000["p99_ms"],
        "alert_p99_ms": at_1000["alert_p99_ms"],
        **{k: sum(r[k] for r in results) for k in ("received", "accepted", "quarantined", "duplicates_in_curated")},
        "alerts_fired": sum(r["alerts_fired"] for r in results),
        "alerts_expected": sum(r["alerts_expected"] for r in results),
        "levels": results,
    }
