"""Ingestion flow: read a batch, land it immutably, validate it, split accepted rows from quarantine.

A batch is landed on disk as it arrives and then read back in chunks (``MLOPS_INGEST_CHUNK_ROWS``):
each chunk is parsed, typed, validated and written before the next is read, so memory follows the
chunk, not the file. The chunks of a batch are staged and committed together (``BatchWriter``).
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO, Protocol

import pandas as pd
from prefect import flow, get_run_logger, task

from core.usecase import UseCase
from pipelines.batches import (
    MAX_EXACT_INT,
    ROW_NUMBER,
    BatchRejected,
    RejectedRow,
    coerce_types,
    finalize_types,
    merge_failures,
    read_batch,
    triage,
    untimed_failures,
    with_event_time,
)
from pipelines.dedup import KeyIndex, duplicate_failures, key_hashes
from pipelines.runtime import get_runtime
from pipelines.sources import iter_source
from pipelines.storage import DataLake, IngestResult


class BatchValidator(Protocol):
    def validate(self, frame: pd.DataFrame, use_case: UseCase, *, docs: bool = True) -> Any: ...


@dataclass
class Chunk:
    """One chunk's outcome: every row of it accepted or quarantined, and the suite's verdict on it."""

    accepted: pd.DataFrame
    quarantined: list[RejectedRow]
    validation: Any


def process_chunks(
    source: bytes | BinaryIO,
    use_case: UseCase,
    *,
    validator: BatchValidator,
    arrival: datetime,
    chunk_rows: int,
    keys: KeyIndex | None = None,
) -> Iterator[Chunk]:
    """Parse, type, validate and de-duplicate a batch chunk by chunk.

    Raises ``BatchRejected`` when its structure is broken, possibly after some chunks were
    yielded: the caller takes those back. ``keys``: the keys already curated (with
    ``deduplication`` declared); the batch's own accepted keys are added as they come.
    """
    seen: Counter[pd.Timestamp] = Counter()  # an event-time step counts on across chunks
    for i, parsed in enumerate(read_batch(source, use_case, chunk_rows=chunk_rows)):
        typed, type_failures = coerce_types(parsed.frame, use_case)
        # Data Docs render the first chunk's run (the whole batch, unless it is larger than a chunk).
        outcome = validator.validate(typed, use_case, docs=i == 0) if len(typed) else None
        failures = merge_failures(type_failures, outcome.failures if outcome else {})
        framed = with_event_time(finalize_types(typed, use_case), use_case, arrival=arrival, seen=seen)
        failures = merge_failures(failures, untimed_failures(framed, failures, use_case))
        if keys is not None and use_case.deduplication is not None and len(framed):
            key = use_case.deduplication.key
            candidates = ~framed[ROW_NUMBER].isin(failures).to_numpy()
            duplicates = duplicate_failures(
                key_hashes(framed, key), framed[ROW_NUMBER].to_numpy(), keys, key=key, candidates=candidates
            )
            failures = merge_failures(failures, duplicates)
        result = triage(parsed, framed, failures)
        yield Chunk(result.accepted, result.quarantined, outcome)


def process_batch(
    data: bytes, use_case: UseCase, *, validator: BatchValidator, arrival: datetime, keys: KeyIndex | None = None
) -> tuple[pd.DataFrame, list[RejectedRow], Any]:
    """A whole batch in memory, in one chunk (small batches, tests). Raises ``BatchRejected``."""
    (chunk,) = process_chunks(data, use_case, validator=validator, arrival=arrival, chunk_rows=sys.maxsize, keys=keys)
    return chunk.accepted, chunk.quarantined, chunk.validation


def curated_key_index(lake: DataLake, use_case: UseCase) -> KeyIndex | None:
    """The keys already curated, when the use case declares what makes two rows the same."""
    if use_case.deduplication is None:
        return None
    key = use_case.deduplication.key
    return KeyIndex.of([(batch, key_hashes(frame, key)) for batch, frame in lake.curated_keys(use_case.name, key)])


def quarantine_rows(rows: list[RejectedRow], *, batch_id: str, at: str) -> list[dict[str, Any]]:
    return [
        {
            "batch_id": batch_id,
            "row_number": r.row_number,
            "raw": json.dumps(r.raw),
            "reasons": json.dumps(r.reasons),
            "quarantined_at": at,
        }
        for r in rows
    ]


def failure_kind(reason: str) -> str:
    """What the ledger counts a reason under: its kind for type, parse, event-time and duplicate failures (whose
    text names a value or a row), the whole text for an expectation."""
    return reason.split(":")[0] if reason.startswith(("type", "malformed", "duplicate", "event_time")) else reason


def _top(reasons: Counter[str], n: int = 3) -> str:
    """The most frequent reasons, with their counts."""
    return "; ".join(f"{reason} x{count}" for reason, count in reasons.most_common(n))


@task(retries=2, retry_delay_seconds=1)
def land(source: str, use_case: str, state_dir: str | None) -> tuple[str, Path]:
    """The batch's bytes, streamed to the raw landing zone under their content hash."""
    return get_runtime(state_dir).lake.land_raw(use_case, iter_source(source))


@flow(name="ingest", log_prints=True)
def ingest_flow(
    source: str, use_case: str, arrival: datetime | None = None, state_dir: str | None = None
) -> dict[str, Any]:
    """Ingest one batch file. Idempotent: the same bytes are ingested once, whatever their name."""
    logger = get_run_logger()
    rt = get_runtime(state_dir)
    uc = rt.use_case(use_case)
    batch_id, raw_path = land(source, uc.name, state_dir)
    previous = rt.lake.ledger_entry(uc.name, batch_id)
    if previous is not None:
        logger.info("batch %s already ingested on %s: nothing to do", batch_id[:12], previous.ingested_at)
        return asdict(previous) | {"duplicate": True}

    if uc.unbounded_integers:
        logger.warning(
            "integer columns %s declare no min or max: values up to ±%s pass; declare schema.columns.<name>.min/max",
            uc.unbounded_integers,
            f"{MAX_EXACT_INT:,}",
        )
    now = datetime.now(UTC)
    at = now.isoformat(timespec="seconds")
    batch = {"use_case": uc.name, "batch_id": batch_id, "source": source, "raw_path": str(raw_path), "ingested_at": at}
    accepted = quarantined = 0
    reasons: Counter[str] = Counter()
    docs: str | None = None
    try:
        # The writer commits the batch's chunks together when the block ends, and takes them back
        # when it ends on an error: a batch that breaks part-way is rejected whole.
        with rt.lake.batch_writer(uc.name, batch_id) as writer, raw_path.open("rb") as stream:
            chunks = process_chunks(
                stream,
                uc,
                validator=rt.validator,
                arrival=arrival or now,
                chunk_rows=rt.settings.ingest_chunk_rows,
                keys=curated_key_index(rt.lake, uc),
            )
            for chunk in chunks:
                writer.write(chunk.accepted, quarantine_rows(chunk.quarantined, batch_id=batch_id, at=at))
                accepted, quarantined = accepted + len(chunk.accepted), quarantined + len(chunk.quarantined)
                reasons.update(failure_kind(r) for row in chunk.quarantined for r in row.reasons)
                if docs is None and chunk.validation is not None and chunk.validation.docs_index:
                    docs = str(chunk.validation.docs_index)
    except BatchRejected as err:
        return _rejected(rt.lake, batch, err, logger=logger)
    result = IngestResult(
        **batch,
        rows_received=accepted + quarantined,
        rows_accepted=accepted,
        rows_quarantined=quarantined,
        status="accepted" if not quarantined else "partial" if accepted else "rejected",
        # Every row quarantined: the batch gave nothing, whatever the cause, and says so.
        reason=None if accepted else f"no row accepted: all {quarantined} quarantined ({_top(reasons)})",
        failure_counts=dict(reasons),
        data_docs=docs,
    )
    if result.reason:
        logger.error("batch %s: %s", batch_id[:12], result.reason)
    rt.lake.record(result)
    logger.info(
        "batch %s: %d received, %d accepted, %d quarantined", batch_id[:12], result.rows_received, accepted, quarantined
    )
    return asdict(result)


def _rejected(lake: DataLake, batch: dict[str, str], err: BatchRejected, *, logger: Any) -> dict[str, Any]:
    """The whole batch in quarantine: one entry pointing at the raw file, and the rows it holds."""
    rows = [RejectedRow(0, {"file": batch["raw_path"]}, [f"batch rejected: {err.reason}"])]
    with lake.batch_writer(batch["use_case"], batch["batch_id"]) as writer:
        writer.write(pd.DataFrame(), quarantine_rows(rows, batch_id=batch["batch_id"], at=batch["ingested_at"]))
    result = IngestResult(
        **batch,
        rows_received=err.rows_received,
        rows_accepted=0,
        rows_quarantined=err.rows_received,
        status="rejected",
        reason=err.reason,
    )
    lake.record(result)
    logger.error(
        "batch %s rejected whole: %s (%d rows kept in quarantine with the raw file %s)",
        batch["batch_id"][:12],
        err.reason,
        err.rows_received,
        batch["raw_path"],
    )
    return asdict(result)
