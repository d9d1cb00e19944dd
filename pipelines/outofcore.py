"""Training and profiling on more rows than one process holds: the curated lake read day by day on Dask workers.

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

``profile_lake`` is the exploratory profile's lake-sized half: additive statistics per chunk on the
workers (analysis/lakestats.py), merged exactly on the client.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from prefect import flow, get_run_logger

from core.usecase import EVENT_TIME_COLUMN, UseCase
from models.ensemble import PartitionEnsemble
from models.frames import coerce_features, target_vector
from models.metrics import evaluate, model_output
from models.training import best_candidate, make_pipeline, select, split_for_training, tuning_window, with_params
from pipelines.cluster import shared
from pipelines.storage import EVENT_DATE


@dataclass(frozen=True)
class Day:
    """One event day of the lake: its files, rows and time range, from the Parquet footers."""

    files: tuple[str, ...]
    rows: int
    first: pd.Timestamp
    last: pd.Timestamp


# Candidates whose fitted size does not grow with the rows they learn from. A forest's trees grow
# until their leaves are small, so one fitted on a chunk of 500,000 rows is hundreds of megabytes:
# too large for a 1 GB worker to score with, and for a replica to serve. Seen: on the 5-million-row
# history, selection on 50,000 rows picks the forest (60 trees, depth 18), and its chunk fits on 1 GB
# workers were still running after 15 minutes; without it, the same run takes about two.
BOUNDED_SIZE = frozenset({"ridge", "hist_gradient_boosting"})


def bounded_candidates(use_case: UseCase) -> UseCase:
    """The use case with only the candidates whose model size is bounded (``BOUNDED_SIZE``)."""
    kept = {name: grid for name, grid in use_case.training.candidates.items() if name in BOUNDED_SIZE}
    if not kept:
        raise ValueError(
            f"out-of-core training needs a candidate whose size does not grow with the rows ({sorted(BOUNDED_SIZE)}); "
            f"the use case lists {sorted(use_case.training.candidates)}"
        )
    training = use_case.training.model_copy(update={"candidates": kept})
    return use_case.model_copy(update={"training": training})


def lake_days(lake: Path) -> list[Day]:
    """``index_lake``, refusing a lake with no data."""
    days = index_lake(lake)
    if not days:
        raise ValueError(f"no curated data under {lake}")
    return days


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
    if cut == len(ordered):  # no day, or one: nothing left to train on
        raise ValueError(f"{len(ordered)} days cannot be split into training and test days")
    return ordered[:cut], ordered[cut:]


def chunks(days: Sequence[Day], *, rows: int) -> list[list[Day]]:
    """Consecutive days grouped into chunks of at least ``rows`` rows (the last may hold fewer)."""
    out: list[list[Day]] = []
    held = rows  # a full chunk before the first day: the first day opens one
    for day in days:
        if held >= rows:
            out.append([])
            held = 0
        out[-1].append(day)
        held += day.rows
    return out


def read_days(days: Sequence[Day], *, columns: Sequence[str] | None = None) -> pd.DataFrame:
    frame = pd.concat([pd.read_parquet(f, columns=columns) for d in days for f in d.files], ignore_index=True)
    return frame.sort_values(EVENT_TIME_COLUMN, kind="stable").reset_index(drop=True)


def newest_rows(days: Sequence[Day], rows: int, *, columns: Sequence[str]) -> pd.DataFrame:
    """The newest ``rows`` rows of ``days`` (whole days, newest first until there are enough)."""
    start, held = len(days), 0
    while start > 0 and held < rows:
        start -= 1
        held += days[start].rows
    return read_days(days[start:], columns=columns).tail(rows).reset_index(drop=True)


# -- what runs on a worker: reads its own chunk, returns a small result ---------------------------------
def fit_chunk(days: list[Day], use_case: UseCase, algorithm: str, params: dict[str, Any]) -> Any:
    frame = read_days(days, columns=_columns(use_case))
    model = with_params(make_pipeline(use_case, algorithm), params)
    return model.fit(coerce_features(frame, use_case), target_vector(frame, use_case))


def score_chunk(days: list[Day], use_case: UseCase, model: Any) -> tuple[np.ndarray, np.ndarray]:
    frame = read_days(days, columns=_columns(use_case))
    return target_vector(frame, use_case), model_output(model, coerce_features(frame, use_case), use_case.task)


def score_days(
    days: Sequence[Day], use_case: UseCase, model: Any, *, client: Any, chunk_rows: int
) -> tuple[np.ndarray, np.ndarray]:
    """Labels and ``model``'s outputs over ``days``: the model sent to every worker once, each chunk scored on one."""
    on_workers = client.scatter(model, broadcast=True)
    scored = client.gather(
        client.map(score_chunk, chunks(days, rows=chunk_rows), use_case=use_case, model=on_workers, pure=False)
    )
    return np.concatenate([y for y, _ in scored]), np.concatenate([output for _, output in scored])


def _columns(use_case: UseCase) -> list[str]:
    return [*use_case.features, use_case.target, EVENT_TIME_COLUMN]


def sums_of_chunk(days: list[Day], use_case: UseCase) -> Any:
    from analysis.lakestats import chunk_sums

    return chunk_sums(read_days(days, columns=_columns(use_case)), use_case)


def profile_lake(lake: Path, use_case: UseCase, *, client: Any, chunk_rows: int = 500_000) -> dict[str, Any]:
    """The lake's profile (analysis/lakestats.py): each chunk's sums on a worker, added up here."""
    from analysis.lakestats import summarize

    days = lake_days(lake)
    parts = client.gather(client.map(sums_of_chunk, chunks(days, rows=chunk_rows), use_case=use_case, pure=False))
    profile = summarize(sum(parts[1:], parts[0]), use_case)
    profile["days"] = {"first": str(days[0].first), "last": str(days[-1].last), "count": len(days)}
    return profile


@dataclass
class OutOfCoreResult:
    model: PartitionEnsemble
    algorithm: str
    params: dict[str, Any]
    test_metrics: dict[str, float]
    rows: dict[str, int]  # train, test, selection
    workers: set[str]
    seconds: dict[str, float]
    sample: pd.DataFrame  # the selection rows: the model's input example and monitoring reference come from them
    test_days: list[Day]

    @property
    def members(self) -> int:
        return len(self.model.members_)


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
    use_case = bounded_candidates(use_case)
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    days = lake_days(lake)
    training_days, test_days = split_days(days, test_fraction=use_case.training.split.test_fraction)
    sample = newest_rows(training_days, selection_rows, columns=_columns(use_case))
    seconds["index and read the selection rows"] = time.perf_counter() - started

    with (
        get_task_stream(client=client) as stream,
        joblib.parallel_backend("dask", client=client, wait_for_workers_timeout=60),
    ):
        started = time.perf_counter()
        split = split_for_training(sample, use_case)  # the test window here stays unused: the lake's test days judge
        tuning = tuning_window(split, use_case)
        candidates = select(
            use_case,
            coerce_features(tuning, use_case),
            target_vector(tuning, use_case),
            coerce_features(split.validation, use_case),
            target_vector(split.validation, use_case),
            n_jobs=-1,
            share=lambda data: shared(client, data, timeout=60),  # a lost worker's fits rerun elsewhere
        )
        selected = best_candidate(candidates, use_case)
        seconds["model selection"] = time.perf_counter() - started

        started = time.perf_counter()
        parts = client.map(
            fit_chunk, chunks(training_days, rows=chunk_rows), use_case=use_case,
            algorithm=selected.algorithm, params=selected.best_params, pure=False,
        )  # fmt: skip
        model = PartitionEnsemble.from_fitted(client.gather(parts))
        seconds["fit"] = time.perf_counter() - started

        started = time.perf_counter()
        y_test, test_output = score_days(test_days, use_case, model, client=client, chunk_rows=chunk_rows)
        seconds["test"] = time.perf_counter() - started
    return OutOfCoreResult(
        model=model,
        algorithm=selected.algorithm,
        params=selected.best_params,
        test_metrics=evaluate(use_case.task, y_test, test_output),
        rows={
            "train": sum(d.rows for d in training_days),
            "test": sum(d.rows for d in test_days),
            "selection": len(sample),
        },
        workers={task["worker"] for task in stream.data},
        seconds=seconds,
        sample=sample,
        test_days=test_days,
    )


# -- the flow: profile, train, compare with the champion on the same days, register -----------------------
@flow(name="train-out-of-core", log_prints=True)
def train_out_of_core_flow(
    use_case: str,
    state_dir: str | None = None,
    selection_rows: int = 200_000,
    chunk_rows: int = 500_000,
) -> dict[str, Any]:
    """Train on the whole curated lake on the Dask cluster (MLOPS_DASK_ADDRESS), chunk by chunk; register the
    ensemble, champion only if it beats the champion on the same test days. The lake's profile is logged with it.
    """
    from importlib.metadata import version

    from models.frames import example_frame, signature_columns
    from models.promotion import decide_promotion
    from models.registry import CHAMPION, TrainingRecord
    from models.training import build_reference
    from pipelines.cluster import compute
    from pipelines.runtime import get_runtime
    from pipelines.train import MODEL_REQUIREMENTS, name_by_verdict

    logger = get_run_logger()
    rt = get_runtime(state_dir)
    uc = rt.use_case(use_case)
    lake = rt.layout.curated / uc.name
    with compute(rt.settings) as cluster:
        if cluster.client is None:
            raise ValueError("out-of-core training runs on a Dask cluster: set MLOPS_DASK_ADDRESS to its scheduler")
        profile = profile_lake(lake, uc, client=cluster.client, chunk_rows=chunk_rows)
        logger.info("profiled %s rows over %s days on the cluster", f"{profile['rows']:,}", profile["days"]["count"])
        result = train_out_of_core(
            lake, uc, client=cluster.client, selection_rows=selection_rows, chunk_rows=chunk_rows
        )
        champion = rt.registry.by_alias(uc.model_name, CHAMPION)
        champion_score = None
        if champion is not None:
            model = rt.registry.load(uc.model_name, champion.version)
            y, output = score_days(result.test_days, uc, model, client=cluster.client, chunk_rows=chunk_rows)
            champion_score = evaluate(uc.task, y, output)[uc.promotion.metric]
    logger.info(
        "%s x%d on %s rows; test %s", result.algorithm, result.members, result.rows["train"], result.test_metrics
    )
    decision = decide_promotion(
        metric=uc.promotion.metric,
        candidate_score=result.test_metrics[uc.promotion.metric],
        champion_score=champion_score,
        margin=uc.promotion.margin,
        higher_is_better=uc.higher_is_better,
    )
    folder = rt.layout.reports / uc.name / "eda"
    folder.mkdir(parents=True, exist_ok=True)
    profile_path = folder / f"lake-{profile['rows']}-rows-{profile['days']['last'][:10]}.json"
    profile_path.write_text(json.dumps(profile, indent=1, allow_nan=False))
    record = TrainingRecord(
        experiment=uc.name,
        model_name=uc.model_name,
        model=result.model,
        params={"algorithm": result.algorithm, **result.params, "members": result.members, "chunk_rows": chunk_rows},
        metrics={f"test_{k}": v for k, v in result.test_metrics.items()}
        | ({"champion_test_score": champion_score} if champion_score is not None else {}),
        tags={  # named as the train flow names them
            "use_case": uc.name,
            "algorithm": result.algorithm,
            "training": "out-of-core",
            "rows": str(result.rows["train"] + result.rows["test"]),
            "promotion_metric": uc.promotion.metric,
            "promotion_verdict": decision.verdict,
            "promotion_reason": decision.reason,
            "training_compute": f"dask {cluster.address}, {len(result.workers)} workers",
        },
        input_example=example_frame(result.sample.head(20), uc).head(3),
        input_columns=signature_columns(uc),
        reference=build_reference(result.model, result.sample, uc),
        artifacts=[],
        pip_requirements=[f"{p}=={version(p)}" for p in MODEL_REQUIREMENTS],
        reports={"eda": [profile_path]},
    )
    ref = rt.registry.log_and_register(record)
    name_by_verdict(rt.registry, ref, decision)
    logger.info("model %s v%s: %s (%s)", uc.model_name, ref.version, decision.verdict, decision.reason)
    return {
        "model_name": uc.model_name,
        "version": ref.version,
        "algorithm": result.algorithm,
        "members": result.members,
        "rows": result.rows,
        "test_metrics": result.test_metrics,
        "decision": asdict(decision),
        "champion_version": champion.version if champion else None,
        "dask_workers": sorted(result.workers),
        "profile": str(profile_path),
        "seconds": result.seconds,
    }
