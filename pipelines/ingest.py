"""Ingestion flow: read a batch, land it immutably, validate it, split accepted rows from quarantine.

A batch is landed on disk as it arrives and then read back in chunks (``MLOPS_INGEST_CHUNK_ROWS``):
each chunk is parsed, typed, validated and written before the next is read, so memory follows the
chunk, not the file. The chunks of a batch are staged and committed together (``BatchWriter``).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
from prefect import flow, get_run_logger, task

from core.progress import progress
from pipelines.batches import MAX_EXACT_INT, BatchRejected, RejectedRow
from pipelines.curation import (
    batch_status,
    curated_key_index,
    failure_kind,
    process_chunks,
    quarantine_rows,
    top_reasons,
)
from pipelines.runtime import get_runtime
from pipelines.sources import iter_source
from pipelines.storage import DataLake, IngestResult


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
            size, read = raw_path.stat().st_size, 0
            with progress(f"ingest {batch_id[:12]}", total=size) as step:
                for chunk in chunks:
                    writer.write(chunk.accepted, quarantine_rows(chunk.quarantined, batch_id=batch_id, at=at))
                    step(stream.tell() - read, None)  # bytes of the landed file read so far
                    read = stream.tell()
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
        status=batch_status(accepted=accepted, quarantined=quarantined),
        # Every row quarantined: the batch gave nothing, whatever the cause, and says so.
        reason=None if accepted else f"no row accepted: all {quarantined} quarantined ({top_reasons(reasons)})",
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
