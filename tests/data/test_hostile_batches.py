"""Hostile batch files, generated: every column type given values too large, too small, non-finite,
of the wrong type or empty; whole files compressed, re-encoded, re-delimited, re-sent or garbage.

For every one: each data row is accepted or quarantined exactly once, with reasons that say what and
stay one readable line, and the accepted rows are ones the curated dataset can hold; a file that
cannot be read at all is rejected whole with a bounded message, never a traceback.
"""

from __future__ import annotations

import bz2
import csv
import gzip
import io
import zipfile
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.usecase import UseCase
from pipelines.batches import DELIMITERS, MAX_EXACT_INT, BatchRejected, parse_csv, read_batch
from pipelines.curation import process_batch
from pipelines.dedup import KeyIndex
from tests.conftest import DATA

MAX_REASON = 400  # characters: a reason is one readable line
MAX_MESSAGE = 1000  # characters: a whole batch's rejection
ROWS = 24
PROFILE = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@dataclass
class NoExpectations:
    """The validator port with an empty suite: these properties are about parsing and typing."""

    @dataclass
    class Outcome:
        failures: dict[int, list[str]]
        docs_index: None = None

    def validate(self, frame: pd.DataFrame, use_case: UseCase, *, docs: bool = True) -> Any:
        return self.Outcome({})


@pytest.fixture(scope="module")
def base() -> dict[str, pd.DataFrame]:
    """A day of each dataset, as the text a feed sends."""
    return {
        "bike": pd.read_csv(DATA / "Bikeshare.csv", dtype=str, keep_default_na=False).head(ROWS),
        "credit": pd.read_csv(DATA / "Default.csv", dtype=str, keep_default_na=False).head(ROWS),
    }


def _csv(frame: pd.DataFrame) -> bytes:
    return frame.to_csv(index=False).encode()


HOSTILE = {
    "int": ["1e19", "1e308", "-1e308", "9007199254740993", "2.5", "0x10", "1_000", "inf", "NaN", "", "abc", "1e-400"],
    "float": ["1e309", "-1e309", "inf", "-Infinity", "nan", "", "1,5", "abc", "1e308", "--1", "0x1p3", " "],
    "category": ["", "other", "NULL", "ÿ" * 500, '"', "\x00", " clear ", "Clear"],
    "bool": ["2", "yes", "", "0.5"],
}


def _value(spec_type: str) -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from(HOSTILE.get(spec_type, HOSTILE["category"])),
        st.integers(min_value=-(2**80), max_value=2**80).map(str),
        st.floats(allow_nan=True, allow_infinity=True).map(repr),
        st.text(max_size=300),
    )


@st.composite
def hostile_batch(draw: st.DrawFn, use_case: UseCase) -> tuple[pd.DataFrame, dict[int, str]]:
    """Which cells of which rows get which hostile value (row numbers 1-based, as in files)."""
    changes = draw(
        st.lists(
            st.tuples(st.integers(1, ROWS), st.sampled_from(use_case.columns)), min_size=1, max_size=6, unique=True
        )
    )
    return {(row, column): draw(_value(use_case.schema_.columns[column].type)) for row, column in changes}


def _records(data: bytes) -> int:
    """Data rows of a file by the csv module's own reading: a bare CR or LF in an unquoted value ends a
    row there, so a value can add rows to the file it is written into."""
    return sum(1 for row in csv.reader(io.StringIO(data.decode(), newline="")) if row) - 1


def _check_invariant(use_case: UseCase, data: bytes) -> None:
    rows = _records(data)
    try:
        accepted, quarantined, _ = process_batch(
            data, use_case, validator=NoExpectations(), arrival=datetime(2011, 1, 1)
        )
    except BatchRejected as err:  # a value that broke the file's structure (a NUL, an unclosed quote)
        assert len(err.reason) <= MAX_MESSAGE and err.rows_received >= 0
        return
    numbers = sorted(r.row_number for r in quarantined)
    assert len(accepted) + len(quarantined) == rows
    assert len(set(numbers)) == len(numbers)  # quarantined once
    for row in quarantined:
        assert row.reasons and all(len(reason) <= MAX_REASON for reason in row.reasons)
    for name, spec in use_case.schema_.columns.items():
        values = accepted[name]
        if spec.type in ("int", "float", "bool"):
            finite = values.dropna().astype("float64")
            assert np.isfinite(finite).all()
            if spec.type == "int":
                assert (finite.abs() <= MAX_EXACT_INT).all()
    assert accepted["event_time"].notna().all() if len(accepted) else True


@pytest.mark.parametrize("name", ["bike", "credit"])
def test_hostile_values_in_any_column_are_quarantined_with_reasons_never_a_traceback(name, base, request):
    use_case: UseCase = request.getfixturevalue(name if name == "bike" else "credit")
    frame = base[name]

    @PROFILE
    @given(changes=hostile_batch(use_case))
    def check(changes: dict[tuple[int, str], str]) -> None:
        broken = frame.copy()
        for (row, column), value in changes.items():
            broken.loc[row - 1, column] = value
        _check_invariant(use_case, _csv(broken))

    check()


def test_values_out_of_integer_range_are_quarantined_naming_the_value(bike, base):
    broken = base["bike"].copy()
    broken.loc[0, "bikers"], broken.loc[1, "bikers"], broken.loc[2, "casual"] = "1e19", "1e308", "9007199254740993"
    accepted, quarantined, _ = process_batch(
        _csv(broken), bike, validator=NoExpectations(), arrival=datetime(2011, 1, 1)
    )
    reasons = {r.row_number: r.reasons for r in quarantined}
    beyond = "is out of range for an integer (beyond ±9,007,199,254,740,991)"
    assert reasons[1] == [f"type: bikers='1e19' {beyond}"] and reasons[2] == [f"type: bikers='1e308' {beyond}"]
    assert reasons[3] == [f"type: casual='9007199254740993' {beyond}"]  # a float64 would read it as 2^53
    assert len(accepted) == ROWS - 3


def _zip(data: bytes) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("batch.csv", data)
    return out.getvalue()


WRAPPINGS = {
    "plain": lambda b: b,
    "gzip": gzip.compress,
    "bz2": bz2.compress,
    "zip": _zip,
    "utf-8 with BOM": lambda b: b"\xef\xbb\xbf" + b,
    "utf-16": lambda b: b.decode().encode("utf-16"),
    "utf-16-be with BOM": lambda b: b"\xfe\xff" + b.decode().encode("utf-16-be"),
    "utf-32": lambda b: b.decode().encode("utf-32"),
    "CRLF": lambda b: b.replace(b"\n", b"\r\n"),
    "no final newline": lambda b: b.rstrip(b"\n"),
}


@PROFILE
@given(wrap=st.sampled_from(sorted(WRAPPINGS)), rows=st.integers(1, ROWS), chunk=st.integers(1, ROWS + 1))
def test_compressed_and_re_encoded_files_read_as_the_plain_one_in_any_chunks(bike, base, wrap, rows, chunk):
    plain = _csv(base["bike"].head(rows))
    want = parse_csv(plain, bike).frame
    chunks = list(read_batch(WRAPPINGS[wrap](plain), bike, chunk_rows=chunk))
    got = pd.concat([c.frame for c in chunks], ignore_index=True)
    pd.testing.assert_frame_equal(got, want)
    assert len(chunks) == -(-rows // chunk)  # exact counts: ceil(rows / chunk) chunks, no phantom row


@pytest.mark.parametrize("delimiter", DELIMITERS)
def test_another_delimiter_is_named_in_a_hint_and_reads_when_declared(bike, base, delimiter):
    data = base["bike"].to_csv(index=False, sep=delimiter).encode()
    with pytest.raises(BatchRejected) as err:
        parse_csv(data, bike)
    assert f"splits into the expected columns on {delimiter!r}" in err.value.reason
    assert len(err.value.reason) <= MAX_MESSAGE and err.value.rows_received == ROWS
    declared = bike.model_copy(update={"source": bike.source.model_copy(update={"delimiter": delimiter})})
    pd.testing.assert_frame_equal(parse_csv(data, declared).frame, parse_csv(_csv(base["bike"]), bike).frame)


@pytest.mark.parametrize(
    ("data", "says"),
    [
        (b"PAR1" + b"\x00" * 100, "a Parquet file"),
        (b"%PDF-1.7\n", "a PDF document"),
        (_zip(b"a") + b"", None),  # replaced below: an xlsx
        (b'[{"season": 1}]', "looks like JSON"),
        (b'{"rows": []}\n', "looks like JSON"),
        (gzip.compress(b"season,mnth\n1,Jan\n")[:15], "does not decompress"),
        ("é".encode("utf-16-le") * 20, "NUL bytes"),
    ],
)
def test_files_of_another_kind_are_named_not_parsed(bike, data, says):
    if says is None:  # a workbook: a zip holding [Content_Types].xml
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w") as archive:
            archive.writestr("[Content_Types].xml", "<Types/>")
            archive.writestr("xl/workbook.xml", "<workbook/>")
        data, says = out.getvalue(), "Excel workbook"
    with pytest.raises(BatchRejected, match=says):
        parse_csv(data, bike)


def test_a_huge_json_file_is_answered_in_a_bounded_message(bike, base):
    data = base["bike"].to_json(orient="records").encode() * 200  # a long single line
    with pytest.raises(BatchRejected) as err:
        parse_csv(data, bike)
    assert len(err.value.reason) <= MAX_MESSAGE and "JSON" in err.value.reason


@PROFILE
@given(blob=st.binary(max_size=3000), with_header=st.booleans())
def test_any_bytes_get_rows_or_a_bounded_rejection(bike, blob, with_header):
    data = (",".join(bike.columns).encode() + b"\n" + blob) if with_header else blob
    try:
        parsed = parse_csv(data, bike)
    except BatchRejected as err:
        assert len(err.reason) <= MAX_MESSAGE and err.rows_received >= 0
        return
    assert parsed.rows_received == len(parsed.frame) + len(parsed.malformed) >= 1
    assert all(len(r.reasons[0]) <= MAX_REASON for r in parsed.malformed)


@PROFILE
@given(
    order=st.permutations(list(range(15))),
    wrap=st.sampled_from(["plain", "utf-8 with BOM", "CRLF", "gzip"]),
    repeats=st.integers(0, 3),
)
def test_rows_re_sent_in_any_bytes_are_duplicates_and_counts_still_add_up(bike, base, order, wrap, repeats):
    frame = base["bike"]
    first = _csv(frame)
    keys = KeyIndex()
    accepted, quarantined, _ = process_batch(
        first, bike, validator=NoExpectations(), arrival=datetime(2011, 1, 1), keys=keys
    )
    assert len(accepted) == ROWS and not quarantined
    resent = pd.concat([frame] + [frame.head(2)] * repeats)[[frame.columns[i] for i in order]]
    again, dropped, _ = process_batch(
        WRAPPINGS[wrap](_csv(resent)), bike, validator=NoExpectations(), arrival=datetime(2011, 1, 1), keys=keys
    )
    assert again.empty and len(dropped) == len(resent)  # received = accepted + quarantined, all as duplicates
    assert all(r.reasons[0].startswith("duplicate: its key (event_time) ") for r in dropped)
