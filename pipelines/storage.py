"""Raw landing, the ingestion ledger, and the curated and quarantine datasets.

Layout under the state directory::

    raw/<use case>/<sha256>.csv                     immutable, content-addressed
    ledger/<use case>/<sha256>.json                 one record per ingested batch
    curated/<use case>/event_date=YYYY-MM-DD/<sha256>[-<chunk>].parquet
    quarantine/<use case>/<sha256>[-<chunk>].parquet  rejected rows with their reasons
    staging/<use case>/<sha256>/                    a batch being written, until it commits
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import shutil
import uuid
from collections.abc import Iterable
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

    def land_raw(self, use_case: str, data: bytes | Iterable[bytes]) -> tuple[str, Path]:
        """Store the bytes (or a stream of blocks) under their hash, read-only; landing the same bytes
        twice is a no-op. A stream goes to disk as it arrives: memory holds one block."""
        folder = self.layout.raw / use_case
        folder.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256()
        tmp = folder / f".landing-{uuid.uuid4().hex}"
        try:
            with tmp.open("wb") as out:
                for block in [data] if isinstance(data, bytes) else data:
                    digest.update(block)
                    out.write(block)
            batch_id = digest.hexdigest()
            path = folder / f"{batch_id}.csv"
            if path.exists():
                tmp.unlink()
            else:
                tmp.chmod(0o444)
                tmp.replace(path)
        finally:
            tmp.unlink(missing_ok=True)
        return batch_id, path

    def ledger_entry(self, use_case: str, batch_id: str) -> IngestResult | None:
        path = self.layout.ledger / use_case / f"{batch_id}.json"
        if not path.exists():
            return None
        return IngestResult(**json.loads(path.read_text()))

    def record(self, result: IngestResult) -> None:
        path = self.layout.ledger / result.use_case / f"{result.batch_id}.json"
        _atomic_write(path, json.dumps(asdict(result), indent=2).encode())

    def batch_writer(self, use_case: str, batch_id: str) -> BatchWriter:
        return BatchWriter(self.layout, use_case, batch_id)

    def curated_keys(self, use_case: str, columns: list[str]) -> list[tuple[str, pd.DataFrame]]:
        """The key columns of every curated file, with the batch that wrote it."""
        folder = self.layout.curated / use_case
        files = sorted(folder.glob(f"{EVENT_DATE}=*/*.parquet")) if folder.exists() else []
        return [(f.stem.split("-")[0], pd.read_parquet(f, columns=columns)) for f in files]

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
        files = sorted(folder.glob(f"{EVENT_DATE}=*/{batch_id}*.parquet")) if folder.exists() else []
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


class BatchWriter:
    """One batch's accepted and quarantined rows, written chunk by chunk to a staging folder and
    moved into the curated and quarantine datasets on ``commit``: readers never see part of a batch,
    and a batch rejected part-way (``abort``, or leaving the ``with`` block on an error) leaves nothing.

    Files: chunk k of the batch writes ``<batch id>.parquet`` (k = 0) or ``<batch id>-<k>.parquet``
    per event date, and the same in quarantine. Committing replaces the batch's earlier files and
    nothing else.
    """

    def __init__(self, layout: StateLayout, use_case: str, batch_id: str) -> None:
        self._layout, self._use_case, self._batch_id = layout, use_case, batch_id
        self._staging = layout.root / "staging" / use_case / batch_id
        shutil.rmtree(self._staging, ignore_errors=True)  # a crashed run's leftovers
        self._chunks = 0

    def __enter__(self) -> BatchWriter:
        return self

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        if kind is None:
            self.commit()
        else:
            self.abort()

    def write(self, accepted: pd.DataFrame, quarantined: list[dict[str, Any]]) -> None:
        name = self._batch_id if self._chunks == 0 else f"{self._batch_id}-{self._chunks}"
        self._chunks += 1
        if not accepted.empty:
            dates = accepted[EVENT_TIME_COLUMN].dt.strftime("%Y-%m-%d")
            for day, part in accepted.groupby(dates, sort=True):
                _atomic_write(
                    self._staging / "curated" / f"{EVENT_DATE}={day}" / f"{name}.parquet", part.reset_index(drop=True)
                )
        if quarantined:
            _atomic_write(self._staging / "quarantine" / f"{name}.parquet", pd.DataFrame(quarantined))

    def commit(self) -> None:
        curated, quarantine = self._layout.curated / self._use_case, self._layout.quarantine / self._use_case
        # Folder by folder, file by file: a batch of millions of rows stages many files, and a list
        # of them all would cost memory that grows with the batch.
        for old in itertools.chain(
            curated.glob(f"{EVENT_DATE}=*/{self._batch_id}*.parquet"), quarantine.glob(f"{self._batch_id}*.parquet")
        ):
            old.unlink()
        folders = [*_folders(self._staging / "curated", curated), (self._staging / "quarantine", quarantine)]
        for staged_dir, target_dir in folders:
            if not staged_dir.is_dir():
                continue
            target_dir.mkdir(parents=True, exist_ok=True)
            with os.scandir(staged_dir) as entries:
                for entry in entries:
                    Path(entry.path).replace(target_dir / entry.name)
        self.abort()

    def abort(self) -> None:
        shutil.rmtree(self._staging, ignore_errors=True)


def _folders(staged: Path, target: Path) -> list[tuple[Path, Path]]:
    """Each staged event-date folder and where it goes (a few hundred at most: one per date)."""
    if not staged.is_dir():
        return []
    with os.scandir(staged) as entries:
        return [(Path(e.path), target / e.name) for e in entries if e.is_dir()]
