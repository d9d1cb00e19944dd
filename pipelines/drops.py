"""Batch drops cut from a use case's data set: the periods of the demo (a month unless its YAML says
otherwise), the stack's bootstrap and sample batches.

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
from models.splits import time_ordered_split
from pipelines.batches import derive_event_time


def read_raw(use_case: UseCase) -> pd.DataFrame:
    """The use case's data set as strings, exactly as a batch file would carry it."""
    return pd.read_csv(use_case.resolve_source(), dtype=str, keep_default_na=False)


class DemoDataError(ValueError):
    """The data set cannot carry the demo as its YAML sets it up; the message says what it needs."""


def period_of(use_case: UseCase) -> str:
    return use_case.demo.period if use_case.demo is not None else "month"


def period_labels(times: pd.Series, period: str) -> pd.Series:
    """Each time's drop, as a label that sorts in time order: 2011-07-04 (a day, or the Monday of a
    week), 2011-07 (a month), 2011-Q3, 2011."""
    if period == "day":
        return times.dt.strftime("%Y-%m-%d")
    if period == "week":
        return (times.dt.normalize() - pd.to_timedelta(times.dt.weekday, unit="D")).dt.strftime("%Y-%m-%d")
    if period == "month":
        return times.dt.strftime("%Y-%m")
    if period == "quarter":
        return times.dt.year.astype(str) + "-Q" + times.dt.quarter.astype(str)
    return times.dt.strftime("%Y")


def period_start(label: str, period: str) -> datetime:
    """When the drop labelled ``label`` begins (and arrives)."""
    if period in ("day", "week"):
        return datetime.fromisoformat(label)
    if period == "month":
        return datetime.fromisoformat(f"{label}-01")
    if period == "quarter":
        year, quarter = label.split("-Q")
        return datetime(int(year), 3 * int(quarter) - 2, 1)
    return datetime(int(label), 1, 1)


_FREQ = {"day": "D", "week": "W-MON", "month": "MS", "quarter": "QS", "year": "YS"}


def split_into_drops(raw: pd.DataFrame, use_case: UseCase, *, year: int = 2011) -> dict[str, pd.DataFrame]:
    """Raw rows (strings, as in the file) grouped into one drop per period (``demo.period``), in time order.

    Rows whose event time cannot be derived go with the first drop, whose ingestion quarantines them.
    """
    period = period_of(use_case)
    if use_case.event_time.kind == "arrival":
        # No time in the data: rows arrive in file order, spread evenly over twelve periods from the year's start.
        starts = pd.Series(pd.date_range(datetime(year, 1, 1), periods=12, freq=_FREQ[period]))
        index = np.arange(len(raw)) * 12 // max(len(raw), 1)
        labels = pd.Series(period_labels(starts, period).to_numpy()[index], index=raw.index)
    else:
        # derive_event_time reads the raw strings as ingestion's typed values (numbers, dates) would be read
        labels = period_labels(derive_event_time(raw, use_case, arrival=datetime(year, 1, 1)), period)
        labels = labels.fillna(labels.dropna().min() if labels.notna().any() else "")
    return {label: raw[labels == label] for label in sorted(set(labels))}


def bootstrap_months(drops: dict[str, pd.DataFrame], use_case: UseCase) -> list[str]:
    """The drops that bootstrap the first model (those that begin before ``demo.bootstrap_until``).

    Raises DemoDataError when the data set cannot carry the demo: no drop before it, none after
    it, or bootstrap rows whose event times cannot make a train, a validation and a test window.
    """
    if use_case.demo is None:
        raise ValueError(f"use case '{use_case.name}' has no 'demo' section")
    period, until = period_of(use_case), pd.Timestamp(use_case.demo.bootstrap_until)
    first = [label for label in drops if pd.Timestamp(period_start(label, period)) < until]
    later = [label for label in drops if label not in first]
    span = f"{len(drops)} {period}s ({', '.join(list(drops)[:3])}{', ...' if len(drops) > 3 else ''})"
    if not first or not later:
        raise DemoDataError(
            f"the demo needs {period}s before and after demo.bootstrap_until ({use_case.demo.bootstrap_until}) "
            f"to bootstrap on and replay; the data holds {span}: move bootstrap_until, or set demo.period"
        )
    rows = pd.concat([drops[label] for label in first])
    if use_case.event_time.kind == "arrival":  # every row of a drop arrives when its period begins
        times = pd.Series([period_start(label, period) for label in first for _ in range(len(drops[label]))])
    else:
        times = derive_event_time(rows, use_case, arrival=datetime(2011, 1, 1))
    split = use_case.training.split
    try:
        time_ordered_split(
            pd.DataFrame({"t": times.dropna().to_numpy()}),
            time_column="t",
            validation_fraction=split.validation_fraction,
            test_fraction=split.test_fraction,
        )
    except ValueError as err:
        raise DemoDataError(
            f"the bootstrap {period}s ({', '.join(first)}) hold {len(rows)} rows at {times.nunique()} distinct "
            f"event times, too few for a time-aware train, validation and test window ({err}): move "
            "demo.bootstrap_until later, or spread rows that share a time with event_time.step"
        ) from None
    return first


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
