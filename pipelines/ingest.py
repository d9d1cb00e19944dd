"""Ingestion flow: read a batch, land it immutably, validate it, split accepted rows from quarantine."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any, Protocol

import pandas as pd
from prefect import flow, get_run_logger, task

from core.usecase import UseCase
from pipelines.batches import (
    BatchRejected,
    RejectedRow,
    coerce_types,
    finalize_types,
    merge_failures,
    parse_csv,
    triage,
    with_event_time,
)
from pipelines.runtime import get_runtime
from pipelines.sources import read_source
from pipelines.storage import IngestResult


class BatchValidator(Protocol):
    def validate(self, frame: pd.DataFrame, use_case: UseCase) -> Any: ...


def process_batch(
    data: bytes, use_case: UseCase, *, validator: BatchValidator, arrival: datetime
) -> tuple[pd.DataFrame, list[RejectedRow], Any]:
    """Parse, type and validate one batch. Raises ``BatchRejected`` when its structure is broken."""
    parsed = parse_csv(data, use_case)
    typed, type_failures = coerce_types(parsed.frame, use_case)
    outcome = validator.validate(typed, use_case) if len(typed) else None
    failures = merge_failures(type_failures, outcome.failures if outcome else {})
    result = triage(parsed, typed, failures)
    accepted = with_event_time(finalize_types(result.accepted, use_case), use_case, arrival=arrival)
    return accepted, result.quarantined, outcome


def quarantine_rows(rows: list[RejectedRow], *, batch_id: str, at: str) -> list[dict[str, Any]]:
    import json

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


def _top(reasons: Counter[str], n: int = 3) -> str:
    """The most frequent reasons, with their counts."""
    return "; ".join(f"{reason} x{count}" for reason, count in reasons.most_common(n))


@task(retries=2, retry_delay_seconds=1)
def fetch(source: str) -> bytes:
    return read_source(source)


@flow(name="ingest", log_prints=True)
def ingest_flow(
    source: str, use_case: str, arrival: datetime | None = None, state_dir: str | None = None
) -> dict[str, Any]:
    """Ingest one batch file. Idempotent: the same bytes are ingested once, whatever their name."""
    logger = get_run_logger()
    rt = get_runtime(state_dir)
    uc = rt.use_case(use_case)
    data = fetch(source)
    batch_id, raw_path = rt.lake.land_raw(uc.name, data)
    previous = rt.lake.ledger_entry(uc.name, batch_id)
    if previous is not None:
        logger.info("batch %s already ingested on %s: nothing to do", batch_id[:12], previous.ingested_at)
        return asdict(previous) | {"duplicate": True}

    now = datetime.now(UTC)
    at = now.isoformat(timespec="seconds")
    try:
        accepted, rejected, outcome = process_batch(data, uc, validator=rt.validator, arrival=arrival or now)
    except BatchRejected as err:
        rows = [RejectedRow(0, {"file": str(raw_path)}, [f"batch rejected: {err.reason}"])]
        rt.lake.write_quarantine(uc.name, batch_id, quarantine_rows(rows, batch_id=batch_id, at=at))
        result = IngestResult(
            use_case=uc.name,
            batch_id=batch_id,
            source=source,
            raw_path=str(raw_path),
            rows_received=err.rows_received,
            rows_accepted=0,
            rows_quarantined=err.rows_received,
            status="rejected",
            reason=err.reason,
            ingested_at=at,
        )
        rt.lake.record(result)
        logger.error(
            "batch %s rejected whole: %s (%d rows kept in quarantine with the raw file %s)",
            batch_id[:12],
            err.reason,
            err.rows_received,
            raw_path,
        )
        return asdict(result)

    rt.lake.write_curated(uc.name, batch_id, accepted)
    rt.lake.write_quarantine(uc.name, batch_id, quarantine_rows(rejected, batch_id=batch_id, at=at))
    reasons = Counter(
        reason.split("(")[0].split(":")[0] if reason.startswith(("type", "malformed")) else reason
        for row in rejected
        for reason in row.reasons
    )
    result = IngestResult(
        use_case=uc.name,
        batch_id=batch_id,
        source=source,
        raw_path=str(raw_path),
        rows_received=len(accepted) + len(rejected),
        rows_accepted=len(accepted),
        rows_quarantined=len(rejected),
        status="accepted" if not rejected else "partial" if len(accepted) else "rejected",
        # Every row quarantined: the batch gave nothing, whatever the cause, and says so.
        reason=None if len(accepted) else f"no row accepted: all {len(rejected)} quarantined ({_top(reasons)})",
        ingested_at=at,
        failure_counts=dict(reasons),
        data_docs=str(outcome.docs_index) if outcome and outcome.docs_index else None,
    )
    rt.lake.record(result)
    if result.status == "rejected":
        logger.error("batch %s: %s", batch_id[:12], result.reason)
    logger.info(
        "batch %s: %d received, %d accepted, %d quarantined",
        batch_id[:12],
        result.rows_received,
        result.rows_accepted,
        result.rows_quarantined,
    )
    return asdict(result)
