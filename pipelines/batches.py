"""Pure functions that turn the bytes of a batch file into typed rows, or explain why not.

No row is ever dropped silently: every data row of a file ends up either in the
typed frame or in the list of rejected rows with its reasons.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import pandas as pd

from core.usecase import EVENT_TIME_COLUMN, UseCase

ROW_NUMBER = "__row__"  # 1-based position of the data row in its file


class BatchRejected(ValueError):
    """The batch as a whole is unusable (structure broken); every row goes to quarantine."""

    def __init__(self, reason: str, *, rows_received: int) -> None:
        super().__init__(reason)
        self.reason = reason
        self.rows_received = rows_received


@dataclass
class RejectedRow:
    row_number: int
    raw: dict[str, str] | list[str]
    reasons: list[str]


@dataclass
class ParsedBatch:
    """Well-shaped rows as strings (plus ``__row__``), and the malformed ones."""

    frame: pd.DataFrame
    malformed: list[RejectedRow] = field(default_factory=list)

    @property
    def rows_received(self) -> int:
        return len(self.frame) + len(self.malformed)


def count_data_lines(data: bytes) -> int:
    """Rows a broken file claims to hold: its non-blank lines after the header."""
    lines = [ln for ln in data.splitlines() if ln.strip()]
    return max(len(lines) - 1, 0)


def parse_csv(data: bytes, use_case: UseCase) -> ParsedBatch:
    """Split a CSV batch into well-shaped rows and malformed ones; reject a broken structure whole."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise BatchRejected(
            f"file is not UTF-8 text ({err.reason} at byte {err.start})", rows_received=count_data_lines(data)
        ) from None
    rows = [r for r in csv.reader(io.StringIO(text)) if r]
    if not rows:
        raise BatchRejected("file is empty: no header and no rows", rows_received=0)
    header, body = [h.strip() for h in rows[0]], rows[1:]
    expected = use_case.columns
    duplicates = sorted({h for h in header if header.count(h) > 1})
    missing = [c for c in expected if c not in header]
    extra = [c for c in header if c not in expected]
    problems = []
    if duplicates:
        problems.append(f"duplicate columns {duplicates}")
    if missing:
        problems.append(f"missing columns {missing}")
    if extra:
        problems.append(f"unexpected columns {extra}")
    if problems:
        raise BatchRejected(
            f"header does not match the schema of '{use_case.name}': " + "; ".join(problems), rows_received=len(body)
        )
    if not body:
        raise BatchRejected("file has a header but no data rows", rows_received=0)

    good: list[list[str]] = []
    numbers: list[int] = []
    malformed: list[RejectedRow] = []
    for number, row in enumerate(body, start=1):
        if len(row) != len(header):
            malformed.append(RejectedRow(number, row, [f"malformed: expected {len(header)} fields, got {len(row)}"]))
        else:
            good.append(row)
            numbers.append(number)
    frame = pd.DataFrame(good, columns=header, dtype=object)[expected] if good else pd.DataFrame(columns=expected)
    frame[ROW_NUMBER] = numbers
    return ParsedBatch(frame=frame, malformed=malformed)


def coerce_types(frame: pd.DataFrame, use_case: UseCase) -> tuple[pd.DataFrame, dict[int, list[str]]]:
    """Parse each column to its declared type. Unparseable or non-finite values become failures, by row.

    Empty strings become nulls, which the validation suite then judges against
    the column's nullability: a missing value is a data-quality question, a
    value of the wrong type is a parse error.
    """
    failures: dict[int, list[str]] = {}
    out = pd.DataFrame(index=frame.index)
    rows = frame[ROW_NUMBER].to_numpy()
    for name, spec in use_case.schema_.columns.items():
        raw = frame[name].astype(object).where(frame[name].notna(), "")
        stripped = raw.astype(str).str.strip()
        empty = stripped.eq("") | stripped.str.lower().isin(["na", "nan", "null", "none"])
        if spec.type in ("int", "float", "bool"):
            values = pd.to_numeric(stripped.where(~empty), errors="coerce")
            bad = (~empty & values.isna()) | ~np.isfinite(values.fillna(0))
            if spec.type in ("int", "bool"):
                bad |= values.notna() & np.isfinite(values.fillna(0)) & (values.fillna(0) % 1 != 0)
            for idx in np.flatnonzero(bad.to_numpy()):
                value = stripped.iloc[idx]
                kind = "not finite" if _is_nonfinite(value) else f"not a valid {spec.type}"
                failures.setdefault(int(rows[idx]), []).append(f"type: {name}={value!r} is {kind}")
            out[name] = values.where(~bad).astype("float64")
        elif spec.type == "datetime":
            values = pd.to_datetime(stripped.where(~empty), errors="coerce")
            bad = ~empty & values.isna()
            for idx in np.flatnonzero(bad.to_numpy()):
                failures.setdefault(int(rows[idx]), []).append(f"type: {name}={stripped.iloc[idx]!r} is not a datetime")
            out[name] = values
        else:
            out[name] = stripped.where(~empty, None).astype(object)
    out[ROW_NUMBER] = frame[ROW_NUMBER].to_numpy()
    return out, failures


def _is_nonfinite(value: str) -> bool:
    try:
        return not math.isfinite(float(value))
    except ValueError:
        return False


def derive_event_time(frame: pd.DataFrame, use_case: UseCase, *, arrival: datetime) -> pd.Series:
    """The event time of each row, as the use case declares it."""
    et = use_case.event_time
    if et.kind == "column":
        return pd.to_datetime(frame[et.column])
    if et.kind == "day_of_year_hour":
        start = pd.Timestamp(year=et.year, month=1, day=1)
        return (
            start
            + pd.to_timedelta(frame[et.day_column].astype("float64") - 1, unit="D")
            + pd.to_timedelta(frame[et.hour_column].astype("float64"), unit="h")
        )
    return pd.Series(pd.Timestamp(arrival).tz_localize(None), index=frame.index)


def finalize_types(frame: pd.DataFrame, use_case: UseCase) -> pd.DataFrame:
    """Curated dtypes: nullable integers for int columns, so '3' stays 3 and a null stays a null."""
    out = frame.copy()
    for name, spec in use_case.schema_.columns.items():
        if spec.type in ("int", "bool"):
            out[name] = out[name].astype("Int64")
    return out


def with_event_time(frame: pd.DataFrame, use_case: UseCase, *, arrival: datetime) -> pd.DataFrame:
    out = frame.copy()
    out[EVENT_TIME_COLUMN] = derive_event_time(frame, use_case, arrival=arrival)
    return out


@dataclass
class Triage:
    """The outcome for every data row of a batch: accepted, or quarantined with reasons."""

    accepted: pd.DataFrame
    quarantined: list[RejectedRow]

    @property
    def rows(self) -> int:
        return len(self.accepted) + len(self.quarantined)


def triage(parsed: ParsedBatch, typed: pd.DataFrame, failures: dict[int, list[str]]) -> Triage:
    """Merge parse, type and validation failures; every row lands on exactly one side."""
    raw_by_row = parsed.frame.set_index(ROW_NUMBER)
    bad_rows = set(failures)
    quarantined = list(parsed.malformed)
    for number in sorted(bad_rows):
        raw = {k: ("" if v is None else str(v)) for k, v in raw_by_row.loc[number].to_dict().items()}
        quarantined.append(RejectedRow(number, raw, failures[number]))
    accepted = typed[~typed[ROW_NUMBER].isin(bad_rows)].drop(columns=[ROW_NUMBER])
    return Triage(accepted=accepted.reset_index(drop=True), quarantined=sorted(quarantined, key=lambda r: r.row_number))


def merge_failures(*sources: dict[int, list[str]]) -> dict[int, list[str]]:
    merged: dict[int, list[str]] = {}
    for source in sources:
        for row, reasons in source.items():
            merged.setdefault(row, []).extend(reasons)
    return merged
