"""The stream consumer: events from the broker, checked, landed in micro-batches, scored, alerted on.

Exactly once in effect. Each micro-batch is committed in this order::

    raw events (JSON lines, read-only)  ->  dead letters (under their own entry ids)
      ->  curated and quarantined rows (staged, then moved)  ->  ledger entry  ->  accepted ids
      ->  checkpoint (atomic rename: THE commit)  ->  acknowledgement to the broker

A crash before the checkpoint leaves artefacts of a micro-batch that never committed: the next
start removes them and reads the same entries again (the broker delivers what was never
acknowledged, in order), and the micro-batch is made again under the same id. A crash after it
leaves entries delivered but unacknowledged: they are at or below the checkpoint's last entry, so
they are acknowledged without being processed again. Dead letters are written under the event's
own entry id, which the broker refuses twice. A producer that sends one event twice is caught by
the event's id (and by the use case's ``deduplication.key``, where it declares one). One consumer
holds a stream at a time (a lease in the broker), which keeps the entries in order.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd

from core.layout import StateLayout
from core.usecase import UseCase
from pipelines.batches import ROW_NUMBER, ParsedBatch, RejectedRow, shown
from pipelines.curation import BatchValidator, batch_status, curate, curated_key_index, failure_kind, quarantine_rows
from pipelines.dedup import KeyIndex
from pipelines.storage import EVENT_DATE, DataLake, IngestResult
from pipelines.stream.alerts import ENTRY, PRODUCED_AT, SOURCE, AlertBook, AlertChange
from pipelines.stream.broker import Broker, BrokerUnavailable, Delivery, entry_key
from pipelines.stream.events import Event, Malformed, decode

log = logging.getLogger(__name__)

STREAM_PREFIX = "stream_"  # micro-batch and window ids; a batch file's id is a hex digest
WINDOW_EVENT = "mlops.batch.ingested"  # a full window is announced as a batch, so the monitor deployment checks it


@dataclass(frozen=True)
class StreamNames:
    """The broker keys of one use case's stream."""

    events: str
    dead: str
    lease: str
    group: str = "curate"

    @classmethod
    def of(cls, prefix: str, use_case: str) -> StreamNames:
        return cls(f"{prefix}:{use_case}:events", f"{prefix}:{use_case}:dead", f"{prefix}:{use_case}:lease")


def window_id(entry: str) -> str:
    """A window's id from its first entry: fixed width, so that ids sort in commit order."""
    ms, seq = entry_key(entry)
    return f"{STREAM_PREFIX}{ms:013d}_{seq:06d}"


def micro_batch_id(window: str, seq: int) -> str:
    return f"{window}.{seq:06d}"


@dataclass
class Checkpoint:
    """What the consumer has committed; written last, atomically: a micro-batch exists once this says so."""

    last_entry: str = "0-0"
    last_batch: str = ""
    window: str | None = None
    window_seq: int = 0
    window_accepted: int = 0
    window_quarantined: int = 0
    ids: int = 0  # accepted event ids stored in the id file
    received: int = 0
    accepted: int = 0
    quarantined: int = 0
    firing: list[list[str]] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)

    @classmethod
    def load(cls, path: Path) -> Checkpoint:
        return cls(**json.loads(path.read_text())) if path.exists() else cls()

    def save(self, path: Path) -> None:
        _durable_write(path, json.dumps(asdict(self), indent=1).encode())


def _durable_write(path: Path, data: bytes) -> None:
    """Write, flush to disk, rename over the old file: after a crash it is the old or the new, whole."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with tmp.open("wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    tmp.replace(path)


def id_hashes(ids: list[str]) -> np.ndarray:
    return pd.util.hash_array(np.asarray(ids, dtype=object)).astype(np.uint64)


@dataclass
class MicroBatch:
    """One micro-batch curated: every delivery accepted or quarantined."""

    batch_id: str
    deliveries: list[Delivery]
    accepted: pd.DataFrame  # curated rows
    meta: pd.DataFrame  # per accepted row: source, produced_at, entry, id
    quarantined: list[RejectedRow]
    produced_at: np.ndarray  # of every decodable event
    sources: dict[str, float]  # source -> when its latest event arrived
    accepted_ids: np.ndarray  # hashes of the accepted events' ids

    @property
    def received(self) -> int:
        return len(self.deliveries)


def curate_events(
    deliveries: list[Delivery],
    use_case: UseCase,
    *,
    batch_id: str,
    validator: BatchValidator,
    keys: KeyIndex | None,
    ids: KeyIndex,
    arrival: datetime,
    max_bytes: int,
) -> MicroBatch:
    """Decode, check and de-duplicate a micro-batch: the batch's own triage, plus the event's envelope
    (malformed payloads) and its id (events sent twice). Row numbers are positions in the micro-batch."""
    columns = use_case.columns
    events: list[tuple[int, Event]] = []
    malformed: list[RejectedRow] = []
    produced: list[float] = []
    for number, delivery in enumerate(deliveries, start=1):
        decoded = decode(delivery.entry, delivery.fields, columns=columns, max_bytes=max_bytes)
        if isinstance(decoded, Malformed):
            malformed.append(RejectedRow(number, {"entry": decoded.entry, "payload": decoded.raw}, decoded.reasons))
            if decoded.produced_at is not None:
                produced.append(decoded.produced_at)
        else:
            events.append((number, decoded))
            produced.append(decoded.produced_at)
    frame = pd.DataFrame([e.values for _, e in events], columns=columns, dtype=object)
    frame[ROW_NUMBER] = [n for n, _ in events]
    # Kept beside the values for quarantine's raw record; typing reads only the schema's columns.
    frame[ENTRY] = [e.entry for _, e in events]
    frame["__id__"] = [e.id for _, e in events]
    hashes = id_hashes([e.id for _, e in events])
    failures = _repeated_ids(hashes, events, ids)
    chunk = curate(
        ParsedBatch(frame=frame, malformed=malformed),
        use_case,
        validator=validator,
        arrival=arrival,
        keys=keys,
        failures=failures,
    )
    rejected = {r.row_number for r in chunk.quarantined}
    kept = [i for i, (n, _) in enumerate(events) if n not in rejected]  # triage keeps the rows' order
    meta = pd.DataFrame(
        {
            SOURCE: [events[i][1].source for i in kept],
            PRODUCED_AT: np.array([events[i][1].produced_at for i in kept], dtype="float64"),
            ENTRY: [events[i][1].entry for i in kept],
        }
    )
    now = time.time()
    return MicroBatch(
        batch_id=batch_id,
        deliveries=deliveries,
        accepted=chunk.accepted,
        meta=meta,
        quarantined=chunk.quarantined,
        produced_at=np.asarray(produced, dtype="float64"),
        sources={e.source: now for _, e in events},
        accepted_ids=hashes[kept] if len(kept) else np.empty(0, dtype=np.uint64),
    )


def _repeated_ids(hashes: np.ndarray, events: list[tuple[int, Event]], ids: KeyIndex) -> dict[int, list[str]]:
    """Events whose id was accepted before, or came earlier in this micro-batch."""
    failures: dict[int, list[str]] = {}
    held, codes, _ = ids.lookup(hashes)
    first: dict[int, int] = {}
    for j, (number, event) in enumerate(events):
        if held[j]:
            failures[number] = [
                f"duplicate: event id {shown(event.id)} was accepted already, in {ids.batches[codes[j]]}"
            ]
        elif (earlier := first.get(int(hashes[j]))) is not None:
            failures[number] = [f"duplicate: event id {shown(event.id)} repeats row {earlier} of this micro-batch"]
        else:
            first[int(hashes[j])] = number
    return failures


class StreamMetrics:
    """The consumer's Prometheus metrics, in a registry of its own (served by ``serve``)."""

    def __init__(self, use_case: str) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry()

        def counter(name: str, doc: str, extra: tuple[str, ...] = ()) -> Any:
            return Counter(name, doc, ["use_case", *extra], registry=self.registry)

        def gauge(name: str, doc: str, extra: tuple[str, ...] = ()) -> Any:
            return Gauge(name, doc, ["use_case", *extra], registry=self.registry)

        self.events = counter("mlops_stream_events", "Events received, by outcome.", ("outcome",))
        self.reasons = counter("mlops_stream_quarantined_reasons", "Quarantine reasons, by kind.", ("reason",))
        self.dead_letters = counter("mlops_stream_dead_letters", "Events written to the dead-letter stream.")
        self.micro_batches = counter("mlops_stream_micro_batches", "Micro-batches committed.")
        self.unscored = counter("mlops_stream_unscored_events", "Accepted events the service did not score.")
        self.alerts = counter("mlops_stream_alert_changes", "Alert state changes.", ("alert", "status"))
        self.firing = gauge("mlops_stream_alert_firing", "1 while an alert fires.", ("alert", "key"))
        self.backlog = gauge("mlops_stream_backlog_entries", "Entries not yet done, by state.", ("state",))
        self.broker_up = gauge("mlops_stream_broker_up", "1 while the broker answers.")
        self.last_commit = gauge("mlops_stream_last_commit_timestamp_seconds", "When a micro-batch last committed.")
        self.latency = Histogram(
            "mlops_stream_latency_seconds",
            "From an event's production to a stage: curated (committed) or scored (answered by the service).",
            ["use_case", "stage"],
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30),
            registry=self.registry,
        )
        for outcome in ("accepted", "quarantined"):
            self.events.labels(use_case, outcome)
        self.broker_up.labels(use_case).set(1)

    def serve(self, port: int, host: str = "0.0.0.0") -> int:
        from prometheus_client import start_http_server

        server, _ = start_http_server(port, addr=host, registry=self.registry)
        return int(server.server_port)


Announce = Callable[[str, dict[str, str], dict[str, Any]], None]  # (event, resource, payload)


@dataclass
class ConsumerConfig:
    max_events: int = 2_000  # a micro-batch closes at this many events ...
    max_seconds: float = 0.5  # ... or this long after its first event arrived
    max_event_bytes: int = 65_536
    consumer: str = "consumer"
    lease_ttl_s: float = 15.0
    id_memory: int = 5_000_000  # accepted event ids checked for re-sends (16 bytes each in memory)
    latency_log: Path | None = None  # bench: every event's produced -> curated seconds, float32


class StreamConsumer:
    """One use case's stream into the lake. Composed by ``build_consumer`` (or a test, with fakes)."""

    def __init__(
        self,
        *,
        use_case: UseCase,
        broker: Broker,
        names: StreamNames,
        layout: StateLayout,
        validator: BatchValidator,
        config: ConsumerConfig,
        metrics: StreamMetrics,
        on_alert: Callable[[AlertChange], None] = lambda change: None,
        announce: Announce | None = None,
        score: Callable[[MicroBatch], None] | None = None,
    ) -> None:
        self.use_case, self.broker, self.names, self.config = use_case, broker, names, config
        self.layout, self.lake = layout, DataLake(layout)
        self.validator, self.metrics = validator, metrics
        self._on_alert, self._announce, self._score = on_alert, announce, score
        self.folder = layout.root / "stream" / use_case.name
        self.checkpoint_path = self.folder / "checkpoint.json"
        self.ids_path = self.folder / "accepted-ids.u64"
        self.checkpoint = Checkpoint()
        self.alerts = AlertBook(list(use_case.stream.alerts))
        self.keys: KeyIndex | None = None
        self.ids = KeyIndex()
        self._latency_log = config.latency_log.open("ab") if config.latency_log else None
        self.abandoned = threading.Event()  # the lease went to another consumer: commit nothing more

    # -- start-up -------------------------------------------------------
    def recover(self) -> None:
        """Load the checkpoint, remove what a crash left uncommitted, rebuild the indexes."""
        if not self.checkpoint_path.exists():
            if self._stream_artefacts():
                raise RuntimeError(
                    f"{self.checkpoint_path} is missing but the lake holds micro-batches of this stream: without "
                    "it, what was committed cannot be told from what was not. Restore it, or move the stream's "
                    "files away to start over"
                )
            Checkpoint().save(self.checkpoint_path)
        self.checkpoint = Checkpoint.load(self.checkpoint_path)
        removed = self._remove_uncommitted()
        if removed:
            log.warning(
                "removed %d artefacts of a micro-batch that never committed (a crash): it is made again", removed
            )
        self.keys = curated_key_index(self.lake, self.use_case)
        if self.ids_path.exists():
            with self.ids_path.open("r+b") as f:
                f.truncate(self.checkpoint.ids * 8)  # ids appended by a micro-batch that never committed
        self._remember_recent_ids()
        self.alerts.firing = {(a, k) for a, k in self.checkpoint.firing}
        self.alerts.last_seen = dict.fromkeys(self.checkpoint.sources, 0.0)
        self.alerts.start(time.time())
        for alert, key in self.alerts.firing:
            self.metrics.firing.labels(self.use_case.name, alert, key).set(1)
        self.broker.ensure_group(self.names.events, self.names.group)

    def _remember_recent_ids(self) -> None:
        """The index of accepted event ids holds the newest ``id_memory`` of them (16 bytes each): an
        event sent again after that many others is caught by the use case's key, where it declares
        one, not by its id. The file keeps them all (8 bytes each)."""
        self.ids = KeyIndex()
        if not self.ids_path.exists():
            return
        total = self.ids_path.stat().st_size // 8
        keep = min(total, self.config.id_memory)
        tail = np.fromfile(self.ids_path, dtype=np.uint64, offset=(total - keep) * 8, count=keep)
        self.ids.add(tail, batch="an earlier micro-batch")

    def _stream_artefacts(self) -> list[Path]:
        uc = self.use_case.name
        return [
            *(self.layout.curated / uc).glob(f"{EVENT_DATE}=*/{STREAM_PREFIX}*.parquet"),
            *(self.layout.quarantine / uc).glob(f"{STREAM_PREFIX}*.parquet"),
            *(self.layout.ledger / uc).glob(f"{STREAM_PREFIX}*.json"),
            *(self.layout.raw / uc / "stream").glob(f"{STREAM_PREFIX}*.jsonl"),
        ]

    def _remove_uncommitted(self) -> int:
        """Stream artefacts newer than the last committed micro-batch (ids sort in commit order)."""
        last = self.checkpoint.last_batch
        stale = [p for p in self._stream_artefacts() if p.name.rsplit(".", 1)[0] > last]
        for path in stale:
            path.unlink()
        return len(stale)

    # -- the loop ---------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        """Consume until ``stop`` is set; what is buffered then is committed before returning."""
        self.recover()
        after: str | None = "0"  # first the entries delivered before and never acknowledged, then new ones
        buffer: list[Delivery] = []
        opened = 0.0
        outage: float | None = None
        last_status = 0.0
        while not stop.is_set():
            now = time.monotonic()
            wait = self.config.max_seconds - (now - opened) if buffer else 0.2
            try:
                got = self.broker.read(
                    self.names.events,
                    self.names.group,
                    self.config.consumer,
                    count=self.config.max_events - len(buffer),
                    block_ms=int(max(wait, 0.001) * 1000),
                    after=after,
                )
                if outage is not None:
                    log.warning("the broker answers again after %.1f s", time.monotonic() - outage)
                    outage = None
                    self.metrics.broker_up.labels(self.use_case.name).set(1)
            except BrokerUnavailable as err:
                outage = self._broker_down(err, outage)
                continue
            if after is not None:
                if not got:
                    after = None
                    continue
                after = got[-1].entry
            # Pending entries after a crash, and any entry handed out again (a group made anew): what the
            # checkpoint holds already is acknowledged, not processed twice.
            got = self._skip_committed(got)
            if got and not buffer:
                opened = time.monotonic()
            buffer += got
            if buffer and (
                len(buffer) >= self.config.max_events or time.monotonic() - opened >= self.config.max_seconds
            ):
                self._flush(buffer)
                buffer = []
            self._publish(self.alerts.tick(time.time()))
            if time.monotonic() - last_status >= 1.0:
                last_status = time.monotonic()
                self._status()
        if buffer and not self.abandoned.is_set():
            self._flush(buffer)

    def _broker_down(self, err: BrokerUnavailable, since: float | None) -> float:
        if since is None:
            log.error("%s; retrying", err)
            self.metrics.broker_up.labels(self.use_case.name).set(0)
            since = time.monotonic()
        time.sleep(min(0.1 * 2 ** min((time.monotonic() - since), 5), 2.0))
        return since

    def _skip_committed(self, got: list[Delivery]) -> list[Delivery]:
        """Entries committed before a crash cut off their acknowledgement: acknowledged now, not processed."""
        if not got or entry_key(got[0].entry) > (done := entry_key(self.checkpoint.last_entry)):
            return got
        committed = [d.entry for d in got if entry_key(d.entry) <= done]
        if committed:
            log.info("%d entries were committed before the last stop: acknowledged without processing", len(committed))
            self._until_done(lambda: self.broker.ack(self.names.events, self.names.group, committed))
        return [d for d in got if entry_key(d.entry) > done]

    def _until_done(self, action: Callable[[], Any]) -> Any:
        """An idempotent broker call, repeated until the broker answers (the checkpoint may wait on it)."""
        since: float | None = None
        while True:
            try:
                return action()
            except BrokerUnavailable as err:
                since = self._broker_down(err, since)

    def _status(self) -> None:
        try:
            undelivered, pending = self.broker.backlog(self.names.events, self.names.group)
        except BrokerUnavailable:
            return
        self.metrics.backlog.labels(self.use_case.name, "undelivered").set(undelivered)
        self.metrics.backlog.labels(self.use_case.name, "pending").set(pending)

    # -- one micro-batch ---------------------------------------------------
    def _flush(self, deliveries: list[Delivery]) -> MicroBatch:
        cp = self.checkpoint
        window = cp.window or window_id(deliveries[0].entry)
        batch_id = micro_batch_id(window, cp.window_seq)
        arrival = datetime.now(UTC)
        mb = curate_events(
            deliveries,
            self.use_case,
            batch_id=batch_id,
            validator=self.validator,
            keys=self.keys,
            ids=self.ids,
            arrival=arrival,
            max_bytes=self.config.max_event_bytes,
        )
        at = arrival.isoformat(timespec="milliseconds")
        raw_path = self._land_raw(mb)
        for row in mb.quarantined:
            fields = {"batch": batch_id, "raw": json.dumps(row.raw), "reasons": json.dumps(row.reasons)}
            entry = row.raw.get("entry") or row.raw.get(ENTRY)
            if self._until_done(lambda e=entry, f=fields: self.broker.dead_letter(self.names.dead, e, f)):
                self.metrics.dead_letters.labels(self.use_case.name).inc()
        with self.lake.batch_writer(self.use_case.name, batch_id) as writer:
            writer.write(mb.accepted, quarantine_rows(mb.quarantined, batch_id=batch_id, at=at))
        reasons = Counter(failure_kind(r) for row in mb.quarantined for r in row.reasons)
        self.lake.record(
            IngestResult(
                use_case=self.use_case.name,
                batch_id=batch_id,
                source=f"stream:{self.names.events}#{deliveries[0].entry}..{deliveries[-1].entry}",
                raw_path=str(raw_path),
                rows_received=mb.received,
                rows_accepted=len(mb.accepted),
                rows_quarantined=len(mb.quarantined),
                status=batch_status(accepted=len(mb.accepted), quarantined=len(mb.quarantined)),
                ingested_at=at,
                failure_counts=dict(reasons),
            )
        )
        with self.ids_path.open("ab") as f:
            f.write(mb.accepted_ids.tobytes())
            f.flush()
            os.fsync(f.fileno())
        self.ids.add(mb.accepted_ids, batch=batch_id)
        if len(self.ids) > 1.5 * self.config.id_memory:
            self._remember_recent_ids()
        if self.keys is not None:
            self.keys.settle(batch_id)

        changes = self.alerts.observe(
            pd.concat([mb.accepted.reset_index(drop=True), mb.meta], axis=1),
            received=mb.received,
            quarantined=len(mb.quarantined),
            sources=mb.sources,
            now=time.time(),
        )
        window_done = cp.window_accepted + len(mb.accepted) >= self.use_case.stream.window_rows
        self.checkpoint = Checkpoint(
            last_entry=deliveries[-1].entry,
            last_batch=batch_id,
            window=None if window_done else window,
            window_seq=0 if window_done else cp.window_seq + 1,
            window_accepted=0 if window_done else cp.window_accepted + len(mb.accepted),
            window_quarantined=0 if window_done else cp.window_quarantined + len(mb.quarantined),
            ids=cp.ids + len(mb.accepted_ids),
            received=cp.received + mb.received,
            accepted=cp.accepted + len(mb.accepted),
            quarantined=cp.quarantined + len(mb.quarantined),
            firing=sorted([a, k] for a, k in self.alerts.firing),
            sources=sorted(self.alerts.last_seen),
        )
        if window_done:
            self._close_window(window, cp, mb)
        self.checkpoint.save(self.checkpoint_path)  # the commit
        committed = time.time()
        self._until_done(lambda: self.broker.ack(self.names.events, self.names.group, [d.entry for d in deliveries]))

        self._count(mb, reasons, committed)
        self._publish(changes)
        if window_done and self._announce is not None:
            self._announce(*self._window_event(window, cp, mb))
        if self._score is not None and len(mb.accepted):
            self._score(mb)
        return mb

    def _land_raw(self, mb: MicroBatch) -> Path:
        """Every delivery as it came, one JSON line each, read-only: nothing the broker gave is lost."""
        lines = []
        for d in mb.deliveries:
            fields = {
                k.decode("utf-8", "backslashreplace"): v.decode("utf-8", "backslashreplace")
                for k, v in d.fields.items()
            }
            lines.append(orjson.dumps({"entry": d.entry, "fields": fields}))
        path = self.layout.raw / self.use_case.name / "stream" / f"{mb.batch_id}.jsonl"
        if path.exists():
            path.chmod(0o644)  # a micro-batch made again after a crash
        _durable_write(path, b"\n".join(lines) + b"\n")
        path.chmod(0o444)
        return path

    def _close_window(self, window: str, cp: Checkpoint, mb: MicroBatch) -> None:
        record = {
            "window": window,
            "micro_batches": cp.window_seq + 1,
            "rows_accepted": cp.window_accepted + len(mb.accepted),
            "rows_quarantined": cp.window_quarantined + len(mb.quarantined),
            "last_entry": mb.deliveries[-1].entry,
            "closed_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        _durable_write(self.folder / "windows" / f"{window}.json", json.dumps(record, indent=1).encode())
        log.info(
            "window %s closed: %d rows accepted, %d quarantined",
            window,
            record["rows_accepted"],
            record["rows_quarantined"],
        )

    def _window_event(self, window: str, cp: Checkpoint, mb: MicroBatch) -> tuple[str, dict[str, str], dict[str, Any]]:
        accepted = cp.window_accepted + len(mb.accepted)
        quarantined = cp.window_quarantined + len(mb.quarantined)
        resource = {"prefect.resource.id": f"mlops.batch.{window}", "mlops.use-case": self.use_case.name}
        payload = {
            "use_case": self.use_case.name,
            "batch_id": window,
            "source": f"stream:{self.names.events}",
            "status": batch_status(accepted=accepted, quarantined=quarantined),
            "rows_received": accepted + quarantined,
            "rows_accepted": accepted,
            "rows_quarantined": quarantined,
        }
        return WINDOW_EVENT, resource, payload

    def _count(self, mb: MicroBatch, reasons: Counter[str], committed: float) -> None:
        uc, m = self.use_case.name, self.metrics
        m.events.labels(uc, "accepted").inc(len(mb.accepted))
        m.events.labels(uc, "quarantined").inc(len(mb.quarantined))
        for reason, n in reasons.items():
            m.reasons.labels(uc, reason).inc(n)
        m.micro_batches.labels(uc).inc()
        m.last_commit.labels(uc).set(committed)
        latencies = committed - mb.produced_at
        histogram = m.latency.labels(uc, "curated")
        for value in latencies:
            histogram.observe(float(value))
        if self._latency_log is not None:
            self._latency_log.write(latencies.astype(np.float32).tobytes())
            self._latency_log.flush()

    def _publish(self, changes: list[AlertChange]) -> None:
        for change in changes:
            uc = self.use_case.name
            self.metrics.firing.labels(uc, change.alert, change.key).set(1 if change.status == "firing" else 0)
            self.metrics.alerts.labels(uc, change.alert, change.status).inc()
            log.warning(
                "alert %s %s (%s%s): %s",
                change.alert,
                change.status.upper(),
                change.key,
                "" if change.value is None else f", value {change.value:g}",
                change.condition,
            )
            self._on_alert(change)

    def close(self) -> None:
        if self._latency_log is not None:
            self._latency_log.close()
