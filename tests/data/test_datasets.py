"""Data tests: the vendored datasets are the ones documented, and pass their own use case's suite."""

from __future__ import annotations

import hashlib
import re
from datetime import datetime
from pathlib import Path

import pytest

from pipelines.batches import parse_csv
from pipelines.curation import process_batch
from pipelines.validation import GxValidator
from tests.conftest import DATA


def _documented() -> dict[str, tuple[int, str]]:
    table = (DATA / "README.md").read_text()
    return {
        m[0]: (int(m[1].replace(",", "")), m[2])
        for m in re.findall(r"\| `(\w+\.csv)` \| ([\d,]+) \| `([0-9a-f]{64})`", table)
    }


@pytest.mark.parametrize("name", ["Bikeshare.csv", "Default.csv"])
def test_file_matches_its_provenance_note(name):
    rows, sha = _documented()[name]
    data = (DATA / name).read_bytes()
    assert hashlib.sha256(data).hexdigest() == sha
    assert data.count(b"\n") - 1 == rows


@pytest.mark.parametrize("fixture", ["bike", "credit"])
def test_every_row_passes_the_use_case_suite(fixture, request, tmp_path: Path):
    use_case = request.getfixturevalue(fixture)
    data = Path(use_case.resolve_source()).read_bytes()
    validator = GxValidator(context_root=tmp_path / "gx", docs_dir=tmp_path / "docs")
    accepted, rejected, outcome = process_batch(data, use_case, validator=validator, arrival=datetime(2011, 1, 1))
    assert rejected == [] and outcome.success
    assert len(accepted) == parse_csv(data, use_case).rows_received


def test_bike_data_covers_2011_hour_by_hour(bike_frame):
    assert bike_frame.event_time.min() == datetime(2011, 1, 1, 0)
    assert bike_frame.event_time.max() == datetime(2011, 12, 31, 23)
    assert bike_frame.event_time.is_unique and bike_frame.event_time.is_monotonic_increasing
    assert (bike_frame.casual + bike_frame.registered == bike_frame.bikers).all()


def test_credit_data_is_imbalanced_as_documented(credit):
    import pandas as pd

    frame = pd.read_csv(credit.resolve_source())
    assert 0.02 < (frame["default"] == "Yes").mean() < 0.05
