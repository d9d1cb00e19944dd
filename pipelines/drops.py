"""Batch drops cut from a use case's data set: the months of the demo, the stack's bootstrap and sample batches.

Pure functions of the raw rows (strings, as in the file) and the use case.
"""

from __future__ import annotations

import io
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from core.usecase import UseCase
from models.frames import coerce_features
from pipelines.batches import derive_event_time


def read_raw(use_case: UseCase) -> pd.DataFrame:
    """The use case's data set as strings, exactly as a batch file would carry it."""
    return pd.read_csv(use_case.resolve_source(), dtype=str, keep_default_na=False)


def split_into_drops(raw: pd.DataFrame, use_case: UseCase, *, year: int = 2011) -> dict[str, pd.DataFrame]:
    """Raw rows (strings, as in the file) grouped into one drop per month, in time order."""
    if use_case.event_time.kind == "arrival":
        # No time in the data: rows arrive in file order, spread evenly over the year.
        month_index = np.arange(len(raw)) * 12 // len(raw)
        months = pd.Series([f"{year}-{m + 1:02d}" for m in month_index], index=raw.index)
    else:
        typed = raw.copy()
        et = use_case.event_time
        if et.kind == "day_of_year_hour":
            for col in (et.day_column, et.hour_column):
                typed[col] = pd.to_numeric(typed[col], errors="coerce")
        months = derive_event_time(typed, use_case, arrival=datetime(year, 1, 1)).dt.strftime("%Y-%m")
    return {month: raw[months == month] for month in sorted(set(months))}


def bootstrap_months(drops: dict[str, pd.DataFrame], use_case: UseCase) -> list[str]:
    """The months that bootstrap the first model (before ``demo.bootstrap_until``)."""
    if use_case.demo is None:
        raise ValueError(f"use case '{use_case.name}' has no 'demo' section")
    return [m for m in drops if m < use_case.demo.bootstrap_until[:7]]


def corrupt(frame: pd.DataFrame, use_case: UseCase, *, seed: int = 7) -> bytes:
    """A feed broken the way real ones break: a sensor outage writes an impossible value into one
    numeric feature for a block of consecutive rows, a few rows are truncated, one has text in a number.
    """
    rng = np.random.default_rng(seed)
    out = frame.copy().reset_index(drop=True)
    bounded = [f for f in use_case.numeric_features if use_case.schema_.columns[f].max is not None]
    sensor = bounded[-1] if bounded else use_case.numeric_features[0]
    start = int(rng.integers(0, max(len(out) - 40, 1)))
    out.loc[start : start + 35, sensor] = "-99"  # the outage's sentinel value, outside every declared range
    numeric = use_case.numeric_features[0]
    out.loc[min(start + 100, len(out) - 1), numeric] = "n/a"
    buffer = io.StringIO()
    out.to_csv(buffer, index=False)
    lines = buffer.getvalue().splitlines()
    for offset in (200, 201, 350):  # truncated mid-line, as when a writer dies
        i = 1 + min(offset, len(lines) - 2)
        lines[i] = ",".join(lines[i].split(",")[:4])
    return ("\n".join(lines) + "\n").encode()


def records_and_labels(frame: pd.DataFrame, use_case: UseCase) -> tuple[list[dict[str, Any]], list[Any]]:
    """Curated rows as /predict records (JSON types) and their labels as /feedback values."""
    X = coerce_features(frame, use_case)
    records = []
    for row in X.to_dict(orient="records"):
        records.append(
            {k: (int(v) if use_case.schema_.columns[k].type in ("int", "bool") else v) for k, v in row.items()}
        )
    labels = frame[use_case.target].tolist()
    labels = [str(v) for v in labels] if use_case.task == "classification" else [float(v) for v in labels]
    return records, labels
