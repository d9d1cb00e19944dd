"""Pure functions that turn the bytes of a batch file into typed rows, or explain why not.

No row is ever dropped silently: every data row of a file ends up either in the
typed frame or in the list of rejected rows with its reasons.
"""

from __future__ import annotations

import bz2
import csv
import gzip
import io
import itertools
import math
import sys
import zipfile
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import BinaryIO, TextIO

import numpy as np
import pandas as pd

from core.usecase import EVENT_TIME_COLUMN, UseCase

ROW_NUMBER = "__row__"  # 1-based position of the data row in its file
# The largest integer below which every integer is a float64 (numbers are parsed as float64 first):
# beyond it two different integers read the same, and a curated int64 column could not hold 1e19.
MAX_EXACT_INT = 2**53 - 1


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


BLOCK_BYTES = 1 << 20


def count_data_lines(stream: BinaryIO) -> int:
    """Rows a broken file claims to hold: its non-blank lines after the header, read in blocks."""
    lines, pending = 0, b""
    try:
        while block := stream.read(BLOCK_BYTES):
            *complete, pending = (pending + block).split(b"\n")
            lines += sum(1 for line in complete if line.strip())
    except (OSError, EOFError, ValueError, zlib.error):
        pass  # a stream that breaks part-way: what it held until then
    lines += 1 if pending.strip() else 0
    return max(lines - 1, 0)


# Compressed files, recognised by their first bytes whatever their name (a `.csv.gz`, a `.csv` that is one).
COMPRESSIONS: tuple[tuple[bytes, str], ...] = ((b"\x1f\x8b", "gzip"), (b"BZh", "bz2"), (b"PK\x03\x04", "zip"))
# Byte-order marks and the codec that reads past them. UTF-32 first: its little-endian mark starts with UTF-16's.
BOMS: tuple[tuple[bytes, str], ...] = (
    (b"\xff\xfe\x00\x00", "utf-32"),
    (b"\x00\x00\xfe\xff", "utf-32"),
    (b"\xef\xbb\xbf", "utf-8-sig"),
    (b"\xff\xfe", "utf-16"),
    (b"\xfe\xff", "utf-16"),
)
# Files that are not CSV at all, by their first bytes: said by name rather than parsed as text.
FORMATS: tuple[tuple[bytes, str], ...] = (
    (b"PAR1", "a Parquet file"),
    (b"\xd0\xcf\x11\xe0", "an Excel 97-2003 workbook"),
    (b"%PDF", "a PDF document"),
    (b"\x89PNG", "a PNG image"),
    (b"SQLite format 3\x00", "an SQLite database"),
    (b"ARROW1", "an Arrow file"),
)
DELIMITERS = (";", "\t", "|")
LISTED = 5  # columns named in a message; the rest are counted
# Errors a stream raises part-way through a damaged file: a compressed stream that breaks, text
# that is not in its encoding, a field no CSV reader takes.
STREAM_ERRORS = (OSError, EOFError, zlib.error, UnicodeDecodeError, csv.Error)


def listed(names: list[str]) -> str:
    """Column names in a message: the first few, and how many more (a JSON file's header is one huge line)."""
    quoted = [shown(n) for n in names[:LISTED]]
    return "[" + ", ".join(quoted) + (f", ... and {len(names) - LISTED} more" if len(names) > LISTED else "") + "]"


def _head(stream: BinaryIO, n: int = 16) -> bytes:
    """The first bytes of a stream, which stays where it was."""
    position = stream.tell()
    head = stream.read(n)
    stream.seek(position)
    return head


def decompressed(stream: BinaryIO) -> BinaryIO:
    """The file's bytes as a stream, uncompressed on the fly when they are gzip, bz2 or a one-file zip."""
    kind = next((name for magic, name in COMPRESSIONS if _head(stream).startswith(magic)), None)
    if kind == "gzip":
        return gzip.GzipFile(fileobj=stream, mode="rb")
    if kind == "bz2":
        return bz2.BZ2File(stream, mode="rb")
    if kind is None:
        return stream
    try:
        archive = zipfile.ZipFile(stream)
        members = [m for m in archive.infolist() if not m.is_dir()]
    except (OSError, EOFError, ValueError, zipfile.BadZipFile) as err:
        raise BatchRejected(f"file starts as zip but does not open as one: {err}", rows_received=0) from None
    names = [m.filename for m in members]
    if "[Content_Types].xml" in names:
        raise BatchRejected("file is an Excel workbook (xlsx), not CSV: export the sheet as CSV", rows_received=0)
    if len(members) != 1:
        raise BatchRejected(
            f"zip archive holds {len(members)} files {listed(names)}: send one CSV per batch", rows_received=0
        )
    return archive.open(members[0])


def decoded(stream: BinaryIO) -> TextIO:
    """The file as a text stream: the encoding its byte-order mark announces, else UTF-8; other formats named."""
    try:
        head = stream.peek(16)[:16] if hasattr(stream, "peek") else _head(stream)
    except STREAM_ERRORS as err:
        raise BatchRejected(f"file does not decompress: {err}", rows_received=0) from None
    kind = next((name for magic, name in FORMATS if head.startswith(magic)), None)
    if kind is not None:
        raise BatchRejected(f"file is {kind}, not CSV", rows_received=0)
    encoding = next((codec for mark, codec in BOMS if head.startswith(mark)), None)
    if encoding is None and b"\x00" in head:
        raise BatchRejected(
            "file holds NUL bytes: UTF-16 or UTF-32 text without a byte-order mark, or not text at all; "
            "save it as UTF-8 (or with a byte-order mark)",
            rows_received=0,
        )
    # newline="": the csv module reads line ends itself (a quoted field may hold one).
    return io.TextIOWrapper(stream, encoding=encoding or "utf-8", errors="strict", newline="")


def _header_problems(header: list[str], use_case: UseCase, delimiter: str) -> str | None:
    expected = use_case.columns
    duplicates = sorted({h for h in header if header.count(h) > 1})
    missing = [c for c in expected if c not in header]
    extra = [c for c in header if c not in expected]
    problems = []
    if duplicates:
        problems.append(f"duplicate columns {listed(duplicates)}")
    if missing:
        problems.append(f"missing columns {listed(missing)}")
    if extra:
        problems.append(f"unexpected columns {listed(extra)}")
    if not problems:
        return None
    return (
        f"header does not match the schema of '{use_case.name}': "
        + "; ".join(problems)
        + _delimiter_hint(header, delimiter, expected)
    )


def read_batch(source: bytes | BinaryIO, use_case: UseCase, *, chunk_rows: int) -> Iterator[ParsedBatch]:
    """A CSV batch as chunks of at most ``chunk_rows`` data rows, read as a stream: memory stays
    bounded by the chunk, not the file. Row numbers run on across chunks.

    Compressed files are decompressed, a byte-order mark decides the encoding. A file of another
    format, a header that does not match the schema (with a hint when another delimiter would
    fit), or a file that breaks part-way (bytes that are not text in its encoding, a stream that
    does not decompress) raises BatchRejected with a message of bounded length and the rows the
    file holds: a caller that wrote earlier chunks must take them back.
    """
    raw = io.BytesIO(source) if isinstance(source, bytes) else source
    start = raw.tell()
    text = decoded(decompressed(raw))
    delimiter = use_case.source.delimiter
    rows = (r for r in csv.reader(text, delimiter=delimiter) if r)
    read = 0
    try:
        first = next(rows, None)
        if first is None:
            raise BatchRejected("file is empty: no header and no rows", rows_received=0)
        if first[0].lstrip().startswith(("{", "[")):
            raise BatchRejected("file looks like JSON, not CSV: ingestion reads CSV with a header row", rows_received=0)
        header = [h.strip() for h in first]
        problem = _header_problems(header, use_case, delimiter)
        if problem is not None:
            raise BatchRejected(problem, rows_received=sum(1 for _ in rows))
        width, order = len(header), [header.index(c) for c in use_case.columns]
        while True:
            good: list[list[str]] = []
            numbers: list[int] = []
            malformed: list[RejectedRow] = []
            for row in itertools.islice(rows, chunk_rows):
                read += 1
                if len(row) != width:
                    malformed.append(RejectedRow(read, row, [f"malformed: expected {width} fields, got {len(row)}"]))
                else:
                    good.append([row[i] for i in order])
                    numbers.append(read)
            if not good and not malformed:
                break
            frame = pd.DataFrame(good, columns=use_case.columns, dtype=object)
            frame[ROW_NUMBER] = numbers
            yield ParsedBatch(frame=frame, malformed=malformed)
        if read == 0:
            raise BatchRejected("file has a header but no data rows", rows_received=0)
    except STREAM_ERRORS as err:
        raise BatchRejected(_stream_failure(err, read), rows_received=_rows_claimed(raw, start, read)) from None


def _stream_failure(err: Exception, read: int) -> str:
    # Text is decoded in blocks of several KiB: the place is where reading had got to, not the byte.
    where = f"found reading on from data row {read}" if read else "found reading the first rows"
    if isinstance(err, UnicodeDecodeError):
        return (
            f"file is not {err.encoding.upper().replace('-SIG', '')} text ({err.reason}, {where}); save it as UTF-8, "
            "or with a byte-order mark for UTF-16 or UTF-32"
        )
    if isinstance(err, csv.Error):
        return f"file is not CSV that can be read ({shown(str(err))}, {where})"
    return f"file does not decompress ({type(err).__name__}: {shown(str(err))}, {where})"


def _rows_claimed(raw: BinaryIO, start: int, read: int) -> int:
    """The rows a file that broke part-way claims to hold: its lines, uncompressed as far as they go."""
    raw.seek(start)
    try:
        counted = count_data_lines(decompressed(raw))
    except BatchRejected:
        counted = 0
    return max(counted, read)


def parse_csv(data: bytes, use_case: UseCase) -> ParsedBatch:
    """A whole CSV batch in memory (small batches, tests): ``read_batch`` in one chunk."""
    (whole,) = read_batch(data, use_case, chunk_rows=sys.maxsize)
    return whole


def _delimiter_hint(header: list[str], delimiter: str, expected: list[str]) -> str:
    """When the header splits into the schema's columns on another delimiter, say so."""
    line = delimiter.join(header).replace('"', "")  # quotes around names: the other delimiter was not theirs
    for other in DELIMITERS:
        if other != delimiter and set(expected) <= {h.strip() for h in line.split(other)}:
            return (
                f". The header splits into the expected columns on {other!r}, not {delimiter!r}: "
                f"declare `source: {{delimiter: {other!r}}}` in the use case, or send comma-separated files"
            )
    return ""


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
            values = pd.to_numeric(stripped.where(~empty), errors="coerce").astype("float64")
            finite = values.notna() & np.isfinite(values.fillna(0))
            bad = ~empty & ~finite
            too_large = pd.Series(False, index=values.index)
            if spec.type in ("int", "bool"):
                too_large = finite & (values.abs() > MAX_EXACT_INT)
                bad |= too_large | (finite & (values.fillna(0) % 1 != 0))
            for idx in np.flatnonzero(bad.to_numpy()):
                value = stripped.iloc[idx]
                if too_large.iloc[idx]:
                    kind = f"out of range for an integer (beyond ±{MAX_EXACT_INT:,})"
                else:
                    kind = "not finite" if _is_nonfinite(value) else f"not a valid {spec.type}"
                failures.setdefault(int(rows[idx]), []).append(f"type: {name}={shown(value)} is {kind}")
            out[name] = values.where(~bad).astype("float64")
        elif spec.type == "datetime":
            et = use_case.event_time
            layout = et.format if et.kind == "column" and et.column == name else None  # the declared layout
            values = pd.to_datetime(stripped.where(~empty), errors="coerce", format=layout)
            bad = ~empty & values.isna()
            for idx in np.flatnonzero(bad.to_numpy()):
                failures.setdefault(int(rows[idx]), []).append(
                    f"type: {name}={shown(stripped.iloc[idx])} is not a datetime"
                )
            out[name] = values
        else:
            out[name] = stripped.where(~empty, None).astype(object)
    out[ROW_NUMBER] = frame[ROW_NUMBER].to_numpy()
    return out, failures


SHOWN_CHARS = 80  # of a bad value, in its reason: a reason stays one readable line


def shown(value: str) -> str:
    """A bad value as a reason quotes it: whole when short, else its start and its length."""
    if len(value) <= SHOWN_CHARS:
        return repr(value)
    return f"{value[:SHOWN_CHARS]!r}... ({len(value)} characters)"


def _is_nonfinite(value: str) -> bool:
    try:
        return not math.isfinite(float(value))
    except ValueError:
        return False


def derive_event_time(
    frame: pd.DataFrame, use_case: UseCase, *, arrival: datetime, seen: Counter[pd.Timestamp] | None = None
) -> pd.Series:
    """The event time of each row, as the use case declares it; NaT where it cannot be derived (a
    missing or unreadable value, a day or hour outside the calendar, a time pandas cannot hold).

    Never raises: a row without a time is quarantined by the caller, never lost. ``seen`` carries
    a ``step``'s count of rows per value from one chunk of a batch to the next.
    """
    et = use_case.event_time
    if et.kind == "arrival":
        return pd.Series(pd.Timestamp(arrival).tz_localize(None), index=frame.index, dtype="datetime64[ns]")
    if et.kind == "day_of_year_hour":
        day = pd.to_numeric(frame[et.day_column], errors="coerce").astype("float64")
        hour = pd.to_numeric(frame[et.hour_column], errors="coerce").astype("float64")
        # In the calendar, and whole: the bounds keep the arithmetic inside what a timestamp holds.
        ok = day.between(1, 366) & hour.between(0, 23) & (day % 1 == 0) & (hour % 1 == 0)
        start = pd.Timestamp(year=et.year, month=1, day=1)
        times = start + pd.to_timedelta(day.where(ok) - 1, unit="D") + pd.to_timedelta(hour.where(ok), unit="h")
        return times.where(times.dt.year == et.year)  # day 366 of a year of 365 days is not in it
    values = frame[et.column]
    if pd.api.types.is_datetime64_any_dtype(values):
        times = values
    elif et.format is not None:
        times = pd.to_datetime(values.map(_as_text), format=et.format, errors="coerce")
    else:
        times = pd.to_datetime(values, errors="coerce", format="ISO8601")
    times = pd.Series(times, index=frame.index).dt.tz_localize(None) if len(times) else times
    if et.step is not None:
        times = _spread(times, pd.Timedelta(et.step), seen if seen is not None else Counter())
    return times


def _as_text(value: object) -> object:
    """A cell as the text a format reads: a whole number without its '.0' (a year typed as a number)."""
    if isinstance(value, float):
        return str(int(value)) if value == value and value.is_integer() and abs(value) < 1e15 else None
    return None if value is None or (isinstance(value, float) and value != value) else str(value)


def _spread(times: pd.Series, step: pd.Timedelta, seen: Counter[pd.Timestamp]) -> pd.Series:
    """The n-th row (in file order) that shares a time moved n steps after it."""
    offsets = []
    for value in times:
        if pd.isna(value):
            offsets.append(pd.NaT)
            continue
        offsets.append(step * seen[value])
        seen[value] += 1
    return times + pd.to_timedelta(pd.Series(offsets, index=times.index))


def finalize_types(frame: pd.DataFrame, use_case: UseCase) -> pd.DataFrame:
    """Curated dtypes: nullable integers for int columns, so '3' stays 3 and a null stays a null."""
    out = frame.copy()
    for name, spec in use_case.schema_.columns.items():
        if spec.type in ("int", "bool"):
            out[name] = out[name].astype("Int64")
    return out


def with_event_time(
    frame: pd.DataFrame, use_case: UseCase, *, arrival: datetime, seen: Counter[pd.Timestamp] | None = None
) -> pd.DataFrame:
    out = frame.copy()
    out[EVENT_TIME_COLUMN] = derive_event_time(frame, use_case, arrival=arrival, seen=seen)
    return out


def untimed_failures(framed: pd.DataFrame, failures: dict[int, list[str]], use_case: UseCase) -> dict[int, list[str]]:
    """Rows that passed every other check but whose event time cannot be derived, with the values it
    would come from."""
    missing = framed[EVENT_TIME_COLUMN].isna() & ~framed[ROW_NUMBER].isin(failures)
    out: dict[int, list[str]] = {}
    for _, row in framed[missing].iterrows():
        values = ", ".join(f"{c}={shown(str(row[c]))}" for c in use_case.event_time.source_columns)
        out[int(row[ROW_NUMBER])] = [f"event_time: cannot be derived from {values}"]
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
