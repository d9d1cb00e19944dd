"""The per-event checks and Great Expectations agree, row by row, on the same hostile rows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core.usecase import UseCase
from pipelines.batches import ROW_NUMBER, coerce_types
from pipelines.stream.checks import EventValidator
from pipelines.validation import GxValidator
from tests.conftest import DATA


def hostile(raw: pd.DataFrame, use_case: UseCase, *, seed: int) -> pd.DataFrame:
    """Real rows with every column broken somewhere: nulls, bounds crossed, unknown categories, text."""
    rng = np.random.default_rng(seed)
    frame = raw.sample(400, random_state=seed).reset_index(drop=True).astype(object)
    for name, spec in use_case.schema_.columns.items():
        rows = rng.choice(len(frame), size=12, replace=False)
        bad = ["", "NaN", "abc", "-1", "1e9", "0.5", "Yes ", "None"]
        if spec.max is not None:
            bad += [str(spec.max + 1), str(spec.max)]
        if spec.min is not None:
            bad += [str(spec.min - 0.001), str(spec.min)]
        for r in rows:
            frame.loc[r, name] = str(rng.choice(bad))
    frame[ROW_NUMBER] = np.arange(1, len(frame) + 1)
    return frame


@pytest.mark.parametrize("name", ["bike", "credit"])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_event_checks_fail_the_rows_gx_fails_for_the_same_reasons(name: str, seed: int, request, tmp_path: Path):
    use_case: UseCase = request.getfixturevalue(name)
    raw = pd.read_csv(DATA / ("Bikeshare.csv" if name == "bike" else "Default.csv"), dtype=str, keep_default_na=False)
    typed, _ = coerce_types(hostile(raw, use_case, seed=seed), use_case)
    gx = GxValidator(context_root=tmp_path / "gx", docs_dir=tmp_path / "docs").validate(typed, use_case, docs=False)
    events = EventValidator(use_case).validate(typed, use_case)
    assert gx.failures, "the hostile rows should fail somewhere"
    as_sets = {row: sorted(reasons) for row, reasons in gx.failures.items()}
    assert {row: sorted(reasons) for row, reasons in events.failures.items()} == as_sets
