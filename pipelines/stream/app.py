"""Composition root of the consumer process (``mlops stream consume``): the broker, the lake, the
checks, the alert sinks, the scorer and the metrics server, built once from ``StreamSettings``."""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.telemetry import disable_telemetry
from core.usecase import UseCase
from pipelines.drops import records_and_labels
from pipelines.settings import StreamSettings
from pipelines.stream.alerts import PRODUCED_AT
from pipelines.stream.broker import BrokerUnavailable, LeaseLost, RedisStreams
from pipelines.stream.checks import EventValidator
from pipelines.stream.consumer import ConsumerConfig, MicroBatch, StreamConsumer, StreamMetrics, StreamNames
from pipelines.stream.notify import Notifier, emit, prefect_events, webhook
from pipelines.stream.scoring import Scorer, ScoringJob

log = logging.getLogger(__name__)


@dataclass
class ConsumerProcess:
    consumer: StreamConsumer
    broker: RedisStreams
    notifier: Notifier
    scorer: Scorer | None
    metrics_port: int
    holder: str


def build(settings: StreamSettings, use_case: UseCase, *, latency_log: Path | None = None) -> ConsumerProcess:
    disable_telemetry()
    layout = settings.layout.ensure()
    names = StreamNames.of(settings.stream_prefix, use_case.name)
    broker = RedisStreams(settings.stream_url)
    metrics = StreamMetrics(use_case.name)
    sinks = []
    if settings.stream_webhook_url:
        sinks.append(webhook(settings.stream_webhook_url, use_case=use_case.name))
    announcing = bool(os.environ.get("PREFECT_API_URL"))
    if announcing:
        sinks.append(prefect_events(use_case=use_case.name))
    else:
        log.info("PREFECT_API_URL is not set: alerts and full windows are not announced as Prefect events")
    notifier = Notifier(sinks)
    scorer, score = None, None
    if settings.stream_score and settings.serving_url:
        # Benchmarks: each scored event's produced -> scored seconds beside the curated ones.
        scored_log = latency_log.with_suffix(".scored") if latency_log is not None else None
        scorer = Scorer(
            url=settings.serving_url,
            on_scored=lambda job, at: _scored(metrics, use_case.name, job, at, log=scored_log),
            on_failed=lambda job, why: metrics.unscored.labels(use_case.name).inc(len(job.records)),
        )
        score = _scoring(scorer, use_case)

    holder = f"{socket.gethostname()}:{os.getpid()}"
    consumer = StreamConsumer(
        use_case=use_case,
        broker=broker,
        names=names,
        layout=layout,
        validator=EventValidator(use_case),
        config=ConsumerConfig(
            max_events=settings.stream_batch_events,
            max_seconds=settings.stream_batch_seconds,
            max_event_bytes=settings.stream_max_event_bytes,
            consumer=settings.stream_consumer,
            lease_ttl_s=settings.stream_lease_seconds,
            id_memory=settings.stream_id_memory,
            latency_log=latency_log,
        ),
        metrics=metrics,
        on_alert=notifier,
        announce=emit if announcing else None,
        score=score,
    )
    port = metrics.serve(settings.stream_metrics_port)
    return ConsumerProcess(consumer, broker, notifier, scorer, port, holder)


def _scoring(scorer: Scorer, use_case: UseCase) -> Callable[[MicroBatch], None]:
    """A micro-batch's accepted rows as one scoring job: the service's records, and the events' labels."""

    def score(mb: MicroBatch) -> None:
        records, labels = records_and_labels(mb.accepted, use_case)
        scorer.submit(ScoringJob(mb.batch_id, records, labels, mb.meta[PRODUCED_AT].tolist()))

    return score


def _scored(metrics: StreamMetrics, use_case: str, job: ScoringJob, at: float, *, log: Path | None) -> None:
    histogram = metrics.latency.labels(use_case, "scored")
    latencies = [at - produced for produced in job.produced_at]
    for seconds in latencies:
        histogram.observe(seconds)
    if log is not None:
        with log.open("ab") as out:
            out.write(np.asarray(latencies, dtype=np.float32).tobytes())


def run(process: ConsumerProcess, *, settings: StreamSettings, stop: threading.Event | None = None) -> None:
    """Hold the lease (waiting as a standby while another consumer has it), consume until SIGTERM or
    SIGINT, then commit what is buffered, send what is queued and let the lease go."""
    stop = stop or threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    consumer, broker = process.consumer, process.broker
    names, ttl = consumer.names, settings.stream_lease_seconds
    _wait_for_broker(broker, timeout_s=settings.startup_timeout_seconds, stop=stop)
    waiting_logged = False
    while not stop.is_set():
        try:
            if broker.acquire_lease(names.lease, process.holder, ttl_s=ttl):
                break
        except BrokerUnavailable as err:
            log.error("%s; retrying", err)
        if not waiting_logged:
            log.warning("another consumer holds %s: waiting as a standby", names.lease)
            waiting_logged = True
        stop.wait(min(ttl / 3, 2.0))
    if stop.is_set():
        return
    process.notifier.start()
    if process.scorer is not None:
        process.scorer.start()
    renewer = threading.Thread(
        target=_renew, args=(consumer, broker, names.lease, process.holder, ttl, stop), daemon=True
    )
    renewer.start()
    log.info("consuming %s as %s (metrics on :%d)", names.events, process.holder, process.metrics_port)
    try:
        consumer.run(stop)
    finally:
        stop.set()
        consumer.close()
        if process.scorer is not None:
            process.scorer.close()
        process.notifier.close()
        broker.release_lease(names.lease, process.holder)


def _wait_for_broker(broker: RedisStreams, *, timeout_s: float, stop: threading.Event) -> None:
    """At start, the broker may come up after the consumer (a stack starting): wait for it, with
    backoff, up to MLOPS_STARTUP_TIMEOUT_SECONDS; then ``BrokerUnavailable`` names where it was looked for."""
    deadline, delay = time.monotonic() + timeout_s, 0.2
    while True:
        try:
            broker.ping()
            return
        except BrokerUnavailable as err:
            if time.monotonic() + delay > deadline:
                raise BrokerUnavailable(
                    f"{err}; gave up after {timeout_s:g} s (MLOPS_STARTUP_TIMEOUT_SECONDS)"
                ) from None
            log.warning("%s; waiting", err)
            stop.wait(delay)
            delay = min(delay * 2, 5.0)


def _renew(
    consumer: StreamConsumer, broker: RedisStreams, lease: str, holder: str, ttl: float, stop: threading.Event
) -> None:
    """Renew the lease every third of its life; losing it to another consumer stops this one."""
    while not stop.wait(ttl / 3):
        try:
            broker.renew_lease(lease, holder, ttl_s=ttl)
        except BrokerUnavailable:
            continue  # the consumer's loop reports the outage; the lease is taken again when it is back
        except LeaseLost as err:
            log.error("%s: stopping without committing what is buffered (the new holder reads it again)", err)
            consumer.abandoned.set()
            stop.set()
            return
