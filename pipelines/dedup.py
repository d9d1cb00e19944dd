"""Rows that state a fact already curated: found by the use case's key, across batches and within one.

Content hashing makes the same *bytes* idempotent (a batch sent twice is ingested once), but feeds
re-send the same *rows* in other bytes: a byte-order mark, CRLF line ends, columns in another
order, a month that overlaps the last. The key (``deduplication.key`` in the YAML; bike: the
event time) names what makes two rows the same fact. Pure: hashes in, verdicts out; the lake
supplies the keys already curated.

Each key is hashed to 64 bits (pandas' hash of the normalised values): an index of N keys costs
16 bytes per key, whatever the key's columns, and a lookup is a binary search.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

THIS_BATCH = 0  # the batch code of rows of the batch being ingested


def key_hashes(frame: pd.DataFrame, columns: list[str]) -> np.ndarray:
    """One uint64 per row for the values of ``columns``, equal for equal values whatever their dtype
    (int64 or nullable Int64, a datetime's unit): how a curated file and a new batch agree."""
    normalised = {}
    for name in columns:
        values = frame[name]
        if pd.api.types.is_datetime64_any_dtype(values):
            normalised[name] = values.dt.tz_localize(None).astype("datetime64[ns]").astype("int64")
        elif pd.api.types.is_numeric_dtype(values):
            normalised[name] = values.astype("float64")
        else:
            normalised[name] = values.astype(str)
    return pd.util.hash_pandas_object(pd.DataFrame(normalised), index=False).to_numpy(dtype=np.uint64)


@dataclass
class _Segment:
    hashes: np.ndarray  # sorted
    codes: np.ndarray
    rows: np.ndarray


@dataclass
class KeyIndex:
    """Key hashes, each with the batch that holds it (a code into ``batches``) and its row there (-1
    when unknown: a row of a curated file).

    Kept as sorted segments whose sizes at least halve from one to the next (two neighbours of
    similar size are merged): adding a chunk costs its own sort plus amortised merges, and a
    lookup is a binary search per segment, of which there are O(log n).
    """

    segments: list[_Segment] = field(default_factory=list)
    batches: list[str] = field(default_factory=lambda: ["this batch"])

    @classmethod
    def of(cls, curated: list[tuple[str, np.ndarray]]) -> KeyIndex:
        """The index of curated keys: (batch id, its key hashes) per curated file."""
        index = cls()
        for batch_id, hashes in curated:
            index.add(hashes, batch=batch_id)
        return index

    def __len__(self) -> int:
        return sum(len(s.hashes) for s in self.segments)

    def add(self, hashes: np.ndarray, *, batch: str | None = None, rows: np.ndarray | None = None) -> None:
        """Add keys of ``batch`` (None: the batch being ingested, with their row numbers)."""
        if batch is None:
            code = THIS_BATCH
        elif batch in self.batches:
            code = self.batches.index(batch)
        else:
            self.batches.append(batch)
            code = len(self.batches) - 1
        hashes = np.asarray(hashes, dtype=np.uint64)
        if not len(hashes):
            return
        numbers = np.full(len(hashes), -1, dtype=np.int32) if rows is None else np.asarray(rows, dtype=np.int32)
        order = np.argsort(hashes, kind="stable")
        self.segments.append(_Segment(hashes[order], np.full(len(hashes), code, dtype=np.int32), numbers[order]))
        while len(self.segments) > 1 and len(self.segments[-1].hashes) * 2 >= len(self.segments[-2].hashes):
            newer, older = self.segments.pop(), self.segments.pop()
            merged = np.concatenate([older.hashes, newer.hashes])
            order = np.argsort(merged, kind="stable")
            self.segments.append(
                _Segment(
                    merged[order],
                    np.concatenate([older.codes, newer.codes])[order],
                    np.concatenate([older.rows, newer.rows])[order],
                )
            )

    def settle(self, batch: str) -> None:
        """The batch being ingested is committed as ``batch``: its keys are that batch's from now on
        (a long-running consumer commits many micro-batches into one index)."""
        if batch not in self.batches:
            self.batches.append(batch)
        code = self.batches.index(batch)
        for segment in self.segments:
            segment.codes[segment.codes == THIS_BATCH] = code

    def lookup(self, hashes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """For each hash: whether it is held, and by which batch code and row (-1, -1 when not)."""
        hashes = np.asarray(hashes, dtype=np.uint64)
        codes = np.full(len(hashes), -1, dtype=np.int32)
        rows = np.full(len(hashes), -1, dtype=np.int32)
        for segment in self.segments:
            at = np.minimum(np.searchsorted(segment.hashes, hashes), len(segment.hashes) - 1)
            hit = (segment.hashes[at] == hashes) & (codes < 0)
            codes[hit], rows[hit] = segment.codes[at[hit]], segment.rows[at[hit]]
        return codes >= 0, codes, rows

    def describe(self, code: int, row: int) -> str:
        """Where a key is held, as a duplicate's reason says it."""
        if code == THIS_BATCH:
            return f"repeats row {row} of this batch"
        return f"is curated already, in batch {self.batches[code]}"


def duplicate_failures(
    hashes: np.ndarray, row_numbers: np.ndarray, index: KeyIndex, *, key: list[str], candidates: np.ndarray
) -> dict[int, list[str]]:
    """Reasons for the rows whose key is in ``index`` or repeats an earlier row of the chunk; the other
    ``candidates`` (rows that passed every other check) are added to the index as this batch's.

    Only candidates are judged and added: a row quarantined for another reason holds no key, so
    its fixed re-send is not a duplicate.
    """
    failures: dict[int, list[str]] = {}
    named = ",".join(key)
    hashes, row_numbers = np.asarray(hashes, dtype=np.uint64), np.asarray(row_numbers)
    chosen = np.flatnonzero(candidates)
    held, codes, rows = index.lookup(hashes[chosen])
    first_in_chunk: dict[int, int] = {}
    keep: list[int] = []
    for j, i in enumerate(chosen):
        row = int(row_numbers[i])
        if held[j]:
            failures[row] = [f"duplicate: its key ({named}) {index.describe(int(codes[j]), int(rows[j]))}"]
        elif (earlier := first_in_chunk.get(int(hashes[i]))) is not None:
            failures[row] = [f"duplicate: its key ({named}) repeats row {earlier} of this batch"]
        else:
            first_in_chunk[int(hashes[i])] = row
            keep.append(i)
    index.add(hashes[keep], rows=row_numbers[keep])
    return failures
