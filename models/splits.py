"""Time-aware splits: the model never sees the future of the rows it is scored on."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
from sklearn.model_selection import TimeSeriesSplit


@dataclass(frozen=True)
class TimeSplit:
    train: pd.DataFrame
    validation: pd.DataFrame
    test: pd.DataFrame

    def describe(self, time_column: str) -> dict[str, str | int]:
        out: dict[str, str | int] = {}
        for part in ("train", "validation", "test"):
            frame: pd.DataFrame = getattr(self, part)
            out[f"{part}_rows"] = len(frame)
            out[f"{part}_start"] = str(frame[time_column].min())
            out[f"{part}_end"] = str(frame[time_column].max())
        return out


def time_ordered_split(
    frame: pd.DataFrame, *, time_column: str, validation_fraction: float, test_fraction: float
) -> TimeSplit:
    """Oldest rows train, the next validate, the newest test.

    A split never cuts through one timestamp: rows that share an event time
    land in the same part, so no part holds a row later than the next part's
    first row.
    """
    if len(frame) < 30:
        raise ValueError(f"need at least 30 rows to split train/validation/test, got {len(frame)}")
    ordered = frame.sort_values(time_column, kind="stable").reset_index(drop=True)
    times = ordered[time_column]
    n = len(ordered)
    test_start = times.iloc[int(n * (1 - test_fraction))]
    val_start = times.iloc[int(n * (1 - test_fraction - validation_fraction))]
    train = ordered[times < val_start]
    validation = ordered[(times >= val_start) & (times < test_start)]
    test = ordered[times >= test_start]
    if train.empty or validation.empty or test.empty:
        raise ValueError(
            f"time split left a part empty (train={len(train)}, validation={len(validation)}, test={len(test)}): "
            "too few distinct event times"
        )
    return TimeSplit(train=train, validation=validation, test=test)


def time_series_cv(n_splits: int) -> TimeSeriesSplit:
    """Expanding-window folds over time-sorted rows: each fold validates on rows after its training rows."""
    return TimeSeriesSplit(n_splits=n_splits)
