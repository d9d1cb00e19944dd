"""The ingestion flow on real files: landing, GX validation, curated and quarantine datasets."""

from __future__ import annotations

import json
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pandas as pd
import pytest

from core.layout import StateLayout
from pipelines.drops import corrupt
from pipelines.ingest import ingest_flow
from pipelines.storage import DataLake
from tests.conftest import csv_bytes


def _month(bike_raw: pd.DataFrame, name: str) -> pd.DataFrame:
    return bike_raw[bike_raw.mnth == name]


def test_clean_batch_is_curated_by_event_date(state_dir: Path, bike_raw, tmp_path, bike):
    path = tmp_path / "april.csv"
    path.write_bytes(csv_bytes(_month(bike_raw, "April")))
    result = ingest_flow(source=str(path), use_case="bike_demand", state_dir=str(state_dir))
    assert result["status"] == "accepted"
    assert result["rows_received"] == result["rows_accepted"] == 719 and result["rows_quarantined"] == 0
    layout = StateLayout(state_dir)
    partitions = sorted(p.name for p in (layout.curated / "bike_demand").iterdir())
    assert partitions[0] == "event_date=2011-04-01" and partitions[-1] == "event_date=2011-04-30"
    curated = DataLake(layout).read_curated("bike_demand")
    assert len(curated) == 719 and curated.event_time.is_monotonic_increasing
    assert curated.hr.dtype == "Int64" and curated.temp.dtype == "float64"
    raw = Path(result["raw_path"])
    assert raw.read_bytes() == path.read_bytes()
    assert raw.stat().st_mode & 0o222 == 0  # landed read-only
    assert Path(result["data_docs"]).is_file()


def test_corrupted_batch_quarantines_bad_rows_with_reasons(state_dir: Path, bike_raw, tmp_path, bike):
    path = tmp_path / "july.csv"
    path.write_bytes(corrupt(_month(bike_raw, "July"), bike))
    result = ingest_flow(source=str(path), use_case="bike_demand", state_dir=str(state_dir))
    assert result["status"] == "partial"
    assert result["rows_received"] == 744 == result["rows_accepted"] + result["rows_quarantined"]
    assert result["rows_quarantined"] == 36 + 1 + 3
    quarantine = DataLake(StateLayout(state_dir)).read_quarantine("bike_demand")
    assert len(quarantine) == result["rows_quarantined"]
    reasons = [json.loads(r) for r in quarantine.reasons]
    assert sum("expect_column_values_to_be_between(windspeed, min=0.0, max=1.0)" in r for r in reasons) == 36
    assert sum(any(x.startswith("malformed") for x in r) for r in reasons) == 3
    assert sum(any("is not a valid int" in x for x in r) for r in reasons) == 1
    # the original values are kept, so a fixed feed can be replayed
    sentinel = quarantine[quarantine.reasons.str.contains("windspeed")].iloc[0]
    assert json.loads(sentinel.raw)["windspeed"] == "-99"


def test_reingesting_the_same_bytes_is_a_no_op(state_dir: Path, bike_raw, tmp_path):
    first, second = tmp_path / "a.csv", tmp_path / "renamed.csv"
    first.write_bytes(csv_bytes(_month(bike_raw, "May")))
    second.write_bytes(first.read_bytes())
    one = ingest_flow(source=str(first), use_case="bike_demand", state_dir=str(state_dir))
    files_before = sorted(StateLayout(state_dir).curated.rglob("*.parquet"))
    two = ingest_flow(source=str(second), use_case="bike_demand", state_dir=str(state_dir))
    assert two["duplicate"] is True and two["batch_id"] == one["batch_id"]
    assert sorted(StateLayout(state_dir).curated.rglob("*.parquet")) == files_before
    assert len(DataLake(StateLayout(state_dir)).read_curated("bike_demand")) == 744


@pytest.mark.parametrize(
    ("make", "reason", "received"),
    [
        (lambda f: f.drop(columns=["temp"]), "missing columns ['temp']", 720),
        (lambda f: f.assign(colour="red"), "unexpected columns ['colour']", 720),
        (lambda f: f.iloc[0:0], "no data rows", 0),
    ],
)
def test_broken_batch_is_rejected_whole_and_kept(state_dir: Path, bike_raw, tmp_path, make, reason, received):
    path = tmp_path / "broken.csv"
    path.write_bytes(csv_bytes(make(_month(bike_raw, "June"))))
    result = ingest_flow(source=str(path), use_case="bike_demand", state_dir=str(state_dir))
    assert result["status"] == "rejected" and reason in result["reason"]
    assert result["rows_received"] == result["rows_quarantined"] == received and result["rows_accepted"] == 0
    assert Path(result["raw_path"]).read_bytes() == path.read_bytes()
    lake = DataLake(StateLayout(state_dir))
    assert lake.read_curated("bike_demand").empty
    assert reason in lake.read_quarantine("bike_demand").reasons.iloc[0]


def test_empty_file_is_rejected(state_dir: Path, tmp_path):
    path = tmp_path / "empty.csv"
    path.write_bytes(b"")
    result = ingest_flow(source=str(path), use_case="bike_demand", state_dir=str(state_dir))
    assert result["status"] == "rejected" and "empty" in result["reason"] and result["rows_received"] == 0


def test_batch_over_http(state_dir: Path, bike_raw, tmp_path):
    """A real HTTP server on loopback serves the batch; fsspec reads it by URL."""
    (tmp_path / "aug.csv").write_bytes(csv_bytes(_month(bike_raw, "Aug")))
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(SimpleHTTPRequestHandler, directory=str(tmp_path)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/aug.csv"
        result = ingest_flow(source=url, use_case="bike_demand", state_dir=str(state_dir))
    finally:
        server.shutdown()
    assert result["source"] == url and result["rows_accepted"] == 731


def test_missing_source_fails_clearly(state_dir: Path, tmp_path):
    from pipelines.sources import SourceError

    with pytest.raises(SourceError, match="batch not found"):
        ingest_flow(source=str(tmp_path / "nope.csv"), use_case="bike_demand", state_dir=str(state_dir))


def test_batch_from_s3(state_dir: Path, bike_raw, tmp_path, monkeypatch):
    """A real S3-protocol server (moto) on loopback; fsspec/s3fs reads s3:// like AWS."""
    import socket
    import subprocess
    import sys
    import time

    import fsspec

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(
        [str(Path(sys.executable).with_name("moto_server")), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for var, value in {
            "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_DEFAULT_REGION": "us-east-1",
        }.items():
            monkeypatch.setenv(var, value)
        fs = fsspec.filesystem("s3", skip_instance_cache=True)
        deadline = time.monotonic() + 30
        while True:
            try:
                fs.mkdir("drops")
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.3)
        with fs.open("drops/2011-09.csv", "wb") as fh:
            fh.write(csv_bytes(_month(bike_raw, "Sept")))
        result = ingest_flow(source="s3://drops/2011-09.csv", use_case="bike_demand", state_dir=str(state_dir))
    finally:
        server.terminate()
        server.wait(timeout=10)
    assert result["status"] == "accepted" and result["rows_accepted"] == 717


def test_nan_and_infinite_values_are_quarantined(state_dir: Path, bike_raw, tmp_path):
    month = _month(bike_raw, "Oct").copy()
    month.iloc[0, month.columns.get_loc("temp")] = "NaN"
    month.iloc[1, month.columns.get_loc("hum")] = "inf"
    month.iloc[2, month.columns.get_loc("atemp")] = "-Infinity"
    path = tmp_path / "oct.csv"
    path.write_bytes(csv_bytes(month))
    result = ingest_flow(source=str(path), use_case="bike_demand", state_dir=str(state_dir))
    assert result["rows_quarantined"] == 3 and result["rows_accepted"] == len(month) - 3
    reasons = {
        row.row_number: json.loads(row.reasons)
        for row in DataLake(StateLayout(state_dir)).read_quarantine("bike_demand").itertuples()
    }
    assert reasons[1] == ["expect_column_values_to_not_be_null(temp)"]
    assert "type: hum='inf' is not finite" in reasons[2]
    assert "type: atemp='-Infinity' is not finite" in reasons[3]


def test_rows_re_sent_in_other_bytes_are_quarantined_as_duplicates_pointing_at_their_batch(
    state_dir: Path, bike_raw, tmp_path
):
    may = _month(bike_raw, "May")
    first = tmp_path / "may.csv"
    first.write_bytes(csv_bytes(may))
    original = ingest_flow(source=str(first), use_case="bike_demand", state_dir=str(state_dir))
    # the same rows again: a byte-order mark, CRLF line ends, the columns in another order, and
    # the first of June appended; plus one row repeated inside the batch
    june_first = _month(bike_raw, "June").head(24)
    again = pd.concat([may[list(reversed(may.columns))], june_first[list(reversed(may.columns))]])
    again = pd.concat([again, again.tail(1)])
    resent = tmp_path / "may-again.csv"
    resent.write_bytes(b"\xef\xbb\xbf" + csv_bytes(again).replace(b"\n", b"\r\n"))
    result = ingest_flow(source=str(resent), use_case="bike_demand", state_dir=str(state_dir))
    assert result["batch_id"] != original["batch_id"]  # other bytes: a new batch...
    assert result["rows_received"] == len(may) + 24 + 1 == result["rows_accepted"] + result["rows_quarantined"]
    assert result["rows_accepted"] == 24 and result["status"] == "partial"  # ...whose May is curated already
    assert result["failure_counts"] == {"duplicate": len(may) + 1}
    lake = DataLake(StateLayout(state_dir))
    curated = lake.read_curated("bike_demand")
    assert len(curated) == len(may) + 24 and curated.event_time.is_unique
    reasons = [json.loads(r)[0] for r in lake.read_quarantine("bike_demand").reasons]
    assert reasons.count(f"duplicate: its key (event_time) is curated already, in batch {original['batch_id']}") == len(
        may
    )
    assert reasons.count(f"duplicate: its key (event_time) repeats row {len(may) + 24} of this batch") == 1


def test_a_batch_read_in_small_chunks_ends_as_one_read_whole(state_dir: Path, bike_raw, tmp_path, bike, monkeypatch):
    from pipelines.runtime import get_runtime

    path = tmp_path / "july.csv"
    path.write_bytes(corrupt(_month(bike_raw, "July"), bike))
    whole = ingest_flow(source=str(path), use_case="bike_demand", state_dir=str(state_dir))
    other = tmp_path / "chunked"
    monkeypatch.setattr(get_runtime(str(other)).settings, "ingest_chunk_rows", 100)
    chunked = ingest_flow(source=str(path), use_case="bike_demand", state_dir=str(other))
    keep = ("rows_received", "rows_accepted", "rows_quarantined", "status", "failure_counts")
    assert {k: chunked[k] for k in keep} == {k: whole[k] for k in keep}
    one, many = DataLake(StateLayout(state_dir)), DataLake(StateLayout(other))
    pd.testing.assert_frame_equal(many.read_curated("bike_demand"), one.read_curated("bike_demand"))
    by_row = lambda q: q.sort_values("row_number")[["row_number", "raw", "reasons"]].reset_index(drop=True)  # noqa: E731
    pd.testing.assert_frame_equal(
        by_row(many.read_quarantine("bike_demand")), by_row(one.read_quarantine("bike_demand"))
    )
    assert len(list((StateLayout(other).curated / "bike_demand").glob("*/*-7.parquet"))) > 0  # eight chunks written


def test_a_batch_that_breaks_part_way_leaves_nothing_curated(state_dir: Path, bike_raw, tmp_path, monkeypatch):
    from pipelines.runtime import get_runtime

    monkeypatch.setattr(get_runtime(str(state_dir)).settings, "ingest_chunk_rows", 100)
    august = _month(bike_raw, "Aug")
    data = csv_bytes(august)
    path = tmp_path / "aug.csv"
    path.write_bytes(data[:40_000] + b"\xff\xfe" + data[40_000:])  # bytes that are no UTF-8, rows in
    result = ingest_flow(source=str(path), use_case="bike_demand", state_dir=str(state_dir))
    assert result["status"] == "rejected" and "not UTF-8 text" in result["reason"]
    assert result["rows_received"] == result["rows_quarantined"] == len(august) and result["rows_accepted"] == 0
    layout = StateLayout(state_dir)
    assert DataLake(layout).read_curated("bike_demand").empty  # the chunks before the break were taken back
    assert not (layout.root / "staging" / "bike_demand").exists() or not any(
        (layout.root / "staging" / "bike_demand").iterdir()
    )


def test_a_batch_with_no_row_accepted_is_rejected_saying_why(state_dir: Path, bike_raw, tmp_path):
    month = _month(bike_raw, "Sept").copy()
    month["temp"] = ""  # the column is empty in every row
    path = tmp_path / "sept.csv"
    path.write_bytes(csv_bytes(month))
    result = ingest_flow(source=str(path), use_case="bike_demand", state_dir=str(state_dir))
    assert result["status"] == "rejected" and result["rows_accepted"] == 0
    assert (
        result["reason"]
        == f"no row accepted: all {len(month)} quarantined (expect_column_values_to_not_be_null(temp) x{len(month)})"
    )
