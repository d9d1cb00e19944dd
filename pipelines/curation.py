"""Curation, pure: a batch's or a micro-batch's rows parsed, typed, validated and de-duplicated, each
row accepted or quarantined with its reasons. The ingestion flow and the stream consumer share it;
neither Prefect nor Great Expectations is imported here (the validator is passed in).
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, BinaryIO, Protocol

import pandas as pd

from core.usecase import UseCase
from pipelines.batches import (
    ROW_NUMBER,
    ParsedBatch,
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
from pipelines.storage import DataLake


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
        # Data Docs render the first chunk's run (the whole batch, unless it is larger than a chunk).
        yield curate(parsed, use_case, validator=validator, arrival=arrival, seen=seen, keys=keys, docs=i == 0)


def curate(
    parsed: ParsedBatch,
    use_case: UseCase,
    *,
    validator: BatchValidator,
    arrival: datetime,
    seen: Counter[pd.Timestamp] | None = None,
    keys: KeyIndex | None = None,
    failures: dict[int, list[str]] | None = None,
    docs: bool = False,
) -> Chunk:
    """One chunk's rows typed, validated, timed and de-duplicated: each accepted, or quarantined with
    its reasons. ``failures``: reasons found before (a stream's duplicate event ids), by row number."""
    typed, type_failures = coerce_types(parsed.frame, use_case)
    outcome = validator.validate(typed, use_case, docs=docs) if len(typed) else None
    failures = merge_failures(failures or {}, type_failures, outcome.failures if outcome else {})
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
    return Chunk(result.accepted, result.quarantined, outcome)


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


def batch_status(*, accepted: int, quarantined: int) -> str:
    """accepted: every row; partial: some rows quarantined; rejected: no row accepted."""
    return "accepted" if not quarantined else "partial" if accepted else "rejected"


def top_reasons(reasons: Counter[str], n: int = 3) -> str:
    """The most frequent reasons, with their counts."""
    return "; ".join(f"{reason} x{count}" for reason, count in reasons.most_common(n))
