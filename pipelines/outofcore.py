"""Training on more rows than one process holds: the curated lake read day by day on Dask workers.

The lake is Parquet, one folder per event day (``event_date=YYYY-MM-DD``). Nothing here reads all of
it in one place:

1. **Index.** Each day's row count and time range come from the files' footers, not their rows.
2. **Split by time.** Whole days: the oldest train, the newest ``test_fraction`` of the rows test
   (the validation share goes to training: model selection below has its own).
3. **Model selection** on the newest training rows that fit one process (``selection_rows``), with
   the same candidates, grids and time-series folds as ``models.training.train``; its fits on the
   cluster.
4. **Fit.** The winner, with its parameters, is fitted once per chunk of consecutive days (about
   ``chunk_rows`` rows), each on a worker that reads only its chunk's files. The model is their
   ``PartitionEnsemble``.
5. **Test.** Each worker scores test chunks with the ensemble; only labels and predictions travel.

Peak memory per worker is one chunk and what fitting it costs, whatever the lake's size.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from core.usecase import EVENT_TIME_COLUMN, UseCase
from models.ensemble import PartitionEnsemble
from models.frames import coerce_features, target_vector
from models.metrics import evaluate, model_output
from models.training import make_pipeline, train, with_params
from pipelines.storage import EVENT_DATE


@dataclass(frozen=True)
class Day:
    """One event day of the lake: its files, rows and time range, from the Parquet footers."""

    files: tuple[str, ...]
    rows: int
    first: pd.Timestamp
    last: pd.Timestamp


def index_lake(folder: Path) -> list[Day]:
    """The lake's days, oldest first, read from the files' metadata only."""
    import pyarrow.parquet as pq

    days = []
    for day in sorted(folder.glob(f"{EVENT_DATE}=*")):
        files = sorted(day.glob("*.parquet"))
        if not files:
            continue
        rows, firsts, lasts = 0, [], []
        for path in files:
            meta = pq.ParquetFile(path).metadata
            column = meta.schema.to_arrow_schema().get_field_index(EVENT_TIME_COLUMN)
            if column < 0:
                raise ValueError(f"{path} has no {EVENT_TIME_COLUMN} column: not a curated lake file")
            rows += meta.num_rows
            for group in range(meta.num_row_groups):
                stats = meta.row_group(group).column(column).statistics
                if stats is None or not stats.has_min_max:
                    raise ValueError(f"{path} keeps no min/max statistics for {EVENT_TIME_COLUMN}")
                firsts.append(pd.Timestamp(stats.min))
                lasts.append(pd.Timestamp(stats.max))
        days.append(Day(files=tuple(str(f) for f in files), rows=rows, first=min(firsts), last=max(lasts)))
    return days


def split_days(days: Sequence[Day], *, test_fraction: float) -> tuple[list[Day], list[Day]]:
    """Oldest days train, the newest (about ``test_fraction`` of the rows) test; whole days only."""
    ordered = sorted(days, key=lambda d: d.first)
    for before, after in itertools.pairwise(ordered):
        if after.first < before.last:
            raise ValueError(f"days overlap in time ({before.last} after {after.first}): not a lake by event day")
    total = sum(d.rows for d in ordered)
    test_rows, cut = 0, len(ordered)
    while cut > 1 and test_rows < total * test_fraction:
        cut -= 1
        test_rows += ordered[cut].rows
    if cut == 0 or cut == len(ordered):
        raise ValueError(f"{len(ordered)} days cannot be split into training and test days")
    return ordered[:cut], ordered[cut:]


def chunks(days: Sequence[Day], *, rows: int) -> list[list[Day]]:
    """Consecutive days grouped into chunks of at least ``rows`` rows (the last may hold fewer)."""
    out: list[list[Day]] = [[]]
    for day in days:
        if sum(d.rows for d in out[-1]) >= rows:
            out.append([])
        out[-1].append(day)
    return [c for c in out if c]


def read_days(days: Sequence[Day], *, columns: Sequence[str] | None = None) -> pd.DataFrame:
    frame = pd.concat([pd.read_parquet(f, columns=columns) for d in days for f in d.files], ignore_index=True)
    return frame.sort_values(EVENT_TIME_COLUMN, kind="stable").reset_index(drop=True)


def newest_rows(days: Sequence[Day], rows: int, *, columns: Sequence[str]) -> pd.DataFrame:
    """The newest ``rows`` rows of ``days`` (whole days, newest first until there are enough)."""
    taken: list[Day] = []
    for day in reversed(days):
        if sum(d.rows for d in taken) >= rows:
            break
        taken.insert(0, day)
    return read_days(taken, columns=columns).tail(rows).reset_index(drop=True)


# -- what runs on a worker: reads its own chunk, returns a small result ---------------------------------
def fit_chunk(days: list[Day], use_case: UseCase, algorithm: str, params: dict[str, Any]) -> Any:
    frame = read_days(days, columns=_columns(use_case))
    model = with_params(make_pipeline(use_case, algorithm), params)
    return model.fit(coerce_features(frame, use_case), target_vector(frame, use_case))


def score_chunk(days: list[Day], use_case: UseCase, model: Any) -> tuple[np.ndarray, np.ndarray]:
    frame = read_days(days, columns=_columns(use_case))
    return target_vector(frame, use_case), model_output(model, coerce_features(frame, use_case), use_case.task)


def _columns(use_case: UseCase) -> list[str]:
    return [*use_case.features, use_case.target, EVENT_TIME_COLUMN]


@dataclass
class OutOfCoreResult:
    model: PartitionEnsemble
    algorithm: str
    params: dict[str, Any]
    test_metrics: dict[str, float]
    rows: dict[str, int]  # train, test, selection
    members: int
    workers: set[str]
    seconds: dict[str, float]


def train_out_of_core(
    lake: Path,
    use_case: UseCase,
    *,
    client: Any,
    selection_rows: int = 200_000,
    chunk_rows: int = 500_000,
) -> OutOfCoreResult:
    """Select on the newest rows that fit, fit the winner chunk by chunk on the workers, test on the newest days.

    ``client``: a ``distributed.Client``; the selection's fits go to its workers through joblib.
    """
    import joblib
    from distributed import get_task_stream

    if use_case.task != "regression":
        raise ValueError("out-of-core training averages regressors; a classifier's probabilities are not supported")
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    days = index_lake(lake)
    if not days:
        raise ValueError(f"no curated data under {lake}")
    training_days, test_days = split_days(days, test_fraction=use_case.training.split.test_fraction)
    sample = newest_rows(training_days, selection_rows, columns=_columns(use_case))
    seconds["index and read the selection rows"] = time.perf_counter() - started

    with (
        get_task_stream(client=client) as stream,
        joblib.parallel_backend("dask", client=client, wait_for_workers_timeout=60),
    ):
        started = time.perf_counter()
        selected = train(sample, use_case, n_jobs=-1)
        seconds["model selection"] = time.perf_counter() - started

        started = time.perf_counter()
        parts = client.map(
            fit_chunk, chunks(training_days, rows=chunk_rows), use_case=use_case,
            algorithm=selected.algorithm, params=selected.params, pure=False,
        )  # fmt: skip
        model = PartitionEnsemble.from_fitted(client.gather(parts))
        seconds["fit"] = time.perf_counter() - started

        started = time.perf_counter()
        shared = client.scatter(model, broadcast=True)
        scored = client.gather(
            client.map(score_chunk, chunks(test_days, rows=chunk_rows), use_case=use_case, model=shared, pure=False)
        )
        y_test = np.concatenate([y for y, _ in scored])
        test_output = np.concatenate([output for _, output in scored])
        seconds["test"] = time.perf_counter() - started
    return OutOfCoreResult(
        model=model,
        algorithm=selected.algorithm,
        params=selected.params,
        test_metrics=evaluate(use_case.task, y_test, test_output),
        rows={
            "train": sum(d.rows for d in training_days),
            "test": sum(d.rows for d in test_days),
            "selection": len(sample),
        },
        members=len(model.members_),
        workers={task["worker"] for task in stream.data},
        seconds=seconds,
    )
