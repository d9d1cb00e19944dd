"""Raw landing, the ingestion ledger, and the curated and quarantine datasets.

Layout under the state directory::

    raw/<use case>/<sha256>.csv                     immutable, content-addressed
    ledger/<use case>/<sha256>.json                 one record per ingested batch
    curated/<use case>/event_date=YYYY-MM-DD/<sha256>-0.parquet
    quarantine/<use case>/<sha256>.parquet          rejected rows with their reasons
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from core.layout import StateLayout
from core.usecase import EVENT_TIME_COLUMN

EVENT_DATE = "event_date"


def content_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class IngestResult:
    use_case: str
    batch_id: str
    source: str
    raw_path: str
    rows_received: int
    rows_accepted: int
    rows_quarantined: int
    status: str  # "accepted" | "partial" | "rejected"
    reason: str | None = None
    ingested_at: str = ""
    duplicate: bool = False
    failure_counts: dict[str, int] = field(default_factory=dict)
    data_docs: str | None = None

    def __post_init__(self) -> None:
        if self.rows_received != self.rows_accepted + self.rows_quarantined:
            raise AssertionError(
                f"row invariant broken for batch {self.batch_id}: received {self.rows_received} != "
                f"accepted {self.rows_accepted} + quarantined {self.rows_quarantined}"
            )


def _atomic_write(path: Path, data: bytes | pd.DataFrame) -> None:
    """Write beside the target, then rename: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    if isinstance(data, pd.DataFrame):
        data.to_parquet(tmp, index=False)
    else:
        tmp.write_bytes(data)
    tmp.replace(path)


class DataLake:
    """File-based storage of one state directory."""

    def __init__(self, layout: StateLayout) -> None:
        self.layout = layout

    def land_raw(self, use_case: str, data: bytes) -> tuple[str, Path]:
        """Store the bytes under their hash, read-only; landing the same bytes twice is a no-op."""
        batch_id = content_hash(data)
        path = self.layout.raw / use_case / f"{batch_id}.csv"
        if not path.exists():
            _atomic_write(path, data)
            path.chmod(0o444)
        return batch_id, path

    def ledger_entry(self, use_case: str, batch_id: str) -> IngestResult | None:
        path = self.layout.ledger / use_case / f"{batch_id}.json"
        if not path.exists():
            return None
        return IngestResult(**json.loads(path.read_text()))

    def record(self, result: IngestResult) -> None:
        path = self.layout.ledger / result.use_case / f"{result.batch_id}.json"
        _atomic_write(path, json.dumps(asdict(result), indent=2).encode())

    def write_curated(self, use_case: str, batch_id: str, frame: pd.DataFrame) -> None:
        """One file per (event date, batch): rewriting a batch replaces its own files and nothing else."""
        if frame.empty:
            return
        dates = frame[EVENT_TIME_COLUMN].dt.strftime("%Y-%m-%d")
        for day, part in frame.groupby(dates, sort=True):
            _atomic_write(
                self.layout.curated / use_case / f"{EVENT_DATE}={day}" / f"{batch_id}.parquet",
                part.reset_index(drop=True),
            )

    def write_quarantine(self, use_case: str, batch_id: str, rows: list[dict[str, Any]]) -> Path | None:
        if not rows:
            return None
        path = self.layout.quarantine / use_case / f"{batch_id}.parquet"
        _atomic_write(path, pd.DataFrame(rows))
        return path

    def read_curated(self, use_case: str, *, until: pd.Timestamp | None = None) -> pd.DataFrame:
        folder = self.layout.curated / use_case
        files = sorted(folder.glob(f"{EVENT_DATE}=*/*.parquet")) if folder.exists() else []
        if until is not None:
            files = [f for f in files if f.parent.name.split("=", 1)[1] < until.strftime("%Y-%m-%d")]
        if not files:
            return pd.DataFrame()
        frame = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
        if until is not None:
            frame = frame[frame[EVENT_TIME_COLUMN] < until]
        return frame.sort_values(EVENT_TIME_COLUMN, kind="stable").reset_index(drop=True)

    def read_batch(self, use_case: str, batch_id: str) -> pd.DataFrame:
        """The accepted rows of one batch, in time order (empty when none was accepted)."""
        folder = self.layout.curated / use_case
        files = sorted(folder.glob(f"{EVENT_DATE}=*/{batch_id}.parquet")) if folder.exists() else []
        if not files:
            return pd.DataFrame()
        frame = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
        return frame.sort_values(EVENT_TIME_COLUMN, kind="stable").reset_index(drop=True)

    def quarantined_rows(self, use_case: str) -> int:
        """Rows quarantined over every batch so far, from the ledger (a gauge for dashboards)."""
        folder = self.layout.ledger / use_case
        entries = sorted(folder.glob("*.json")) if folder.exists() else []
        return sum(int(json.loads(p.read_text())["rows_quarantined"]) for p in entries)

    def read_quarantine(self, use_case: str) -> pd.DataFrame:
        folder = self.layout.quarantine / use_case
        files = sorted(folder.glob("*.parquet")) if folder.exists() else []
        return pd.concat([pd.read_parquet(f) for f in files], ignore_index=True) if files else pd.DataFrame()

    def data_version(self, use_case: str, *, until: pd.Timestamp | None = None) -> str:
        """A content hash of the curated files a training run reads: the data's version."""
        folder = self.layout.curated / use_case
        files = sorted(folder.glob(f"{EVENT_DATE}=*/*.parquet")) if folder.exists() else []
        if until is not None:
            files = [f for f in files if f.parent.name.split("=", 1)[1] < until.strftime("%Y-%m-%d")]
        digest = hashlib.sha256()
        for f in files:
            digest.update(f"{f.parent.name}/{f.name}".encode())
        return digest.hexdigest()[:16]
