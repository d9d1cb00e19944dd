"""How each stage of the loop grows with the data: ingest, validate, train, register, drift report.

    python -m benchmarks.pipeline [--sizes 10000,100000,1000000] [--cluster] [--history 5000000] [--no-record]

With ``--cluster``, two more rows: training with model selection's fits on two local Dask worker
processes (1 thread and 1 GB each), and out-of-core training of the same lake on them
(``pipelines/outofcore.py``). ``--history N`` adds a column: a lake of N rows (the year replayed
with noise, ``benchmarks/history.py``) larger than a worker's memory, where only the out-of-core
row runs.

Rows are drawn from the bike data's own distributions: whole rows resampled
with replacement (so the relations between calendar, weather and demand hold),
the weather features jittered within their ranges, and event times spread
over the year. Each stage calls the same code the flows call, in-process and
without Prefect's engine, so the table shows the stages' own cost.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmarks import record

ROOT = Path(__file__).resolve().parents[1]
STAGES = ("ingest", "validate", "train", "register", "drift report")
CLUSTER_STAGES = ("train, 2 Dask workers", "train out-of-core, 2 Dask workers")
WORKER_MEMORY = "1GB"


def synthetic_batch(raw: pd.DataFrame, rows: int, *, seed: int = 0) -> bytes:
    """``rows`` rows as a CSV batch file, drawn from the data's distributions."""
    rng = np.random.default_rng(seed)
    out = raw.sample(n=rows, replace=True, random_state=seed).reset_index(drop=True)
    for col in ("temp", "atemp", "hum", "windspeed"):
        out[col] = np.clip(out[col].astype(float) + rng.normal(0, 0.02, rows), 0, 1).round(4)
    out = out.sort_values(["day", "hr"], kind="stable").reset_index(drop=True)
    buffer = io.StringIO()
    out.to_csv(buffer, index=False)
    return buffer.getvalue().encode()


def timed(fn: Any, *args: Any, **kwargs: Any) -> tuple[Any, float]:
    started = time.perf_counter()
    result = fn(*args, **kwargs)
    return result, time.perf_counter() - started


def run_size(
    rows: int, raw: pd.DataFrame, workdir: Path, *, tuning_rows: int | None, cluster: str | None = None
) -> dict[str, float]:
    from core.layout import StateLayout
    from core.settings import default_usecases_dir
    from core.usecase import load_use_case
    from models.frames import coerce_features, target_vector
    from models.metrics import model_output
    from models.registry import MlflowRegistry, TrainingRecord
    from models.training import train
    from monitoring.drift import PREDICTION, TARGET, run_report
    from pipelines.batches import coerce_types, finalize_types, merge_failures, parse_csv, triage, with_event_time
    from pipelines.storage import DataLake
    from pipelines.validation import GxValidator

    uc = load_use_case("bike_demand", usecases_dir=default_usecases_dir())
    uc = uc.model_copy(update={"training": uc.training.model_copy(update={"tuning_rows": tuning_rows})})
    layout = StateLayout(workdir / f"state-{rows}").ensure()
    data = synthetic_batch(raw, rows)
    times: dict[str, float] = {}

    # ingest = parse + type + land + write curated; validate = the Great Expectations suite
    started = time.perf_counter()
    lake = DataLake(layout)
    batch_id, _ = lake.land_raw(uc.name, data)
    parsed = parse_csv(data, uc)
    typed, type_failures = coerce_types(parsed.frame, uc)
    validator = GxValidator(context_root=layout.gx, docs_dir=layout.data_docs)
    outcome, times["validate"] = timed(validator.validate, typed, uc)
    result = triage(parsed, typed, merge_failures(type_failures, outcome.failures))
    accepted = with_event_time(finalize_types(result.accepted, uc), uc, arrival=datetime(2011, 1, 1))
    with lake.batch_writer(uc.name, batch_id) as writer:
        writer.write(accepted, [])
    times["ingest"] = time.perf_counter() - started - times["validate"]

    frame = lake.read_curated(uc.name)
    trained, times["train"] = timed(train, frame, uc)

    registry = MlflowRegistry(tracking_uri=layout.tracking_uri, artifact_root=layout.mlflow_artifacts)
    import sklearn

    record = TrainingRecord(
        experiment="scaling",
        model_name=uc.model_name,
        model=trained.model,
        params=trained.params,
        metrics=trained.test_metrics,
        tags={"rows": str(rows)},
        input_example=coerce_features(frame.head(3), uc),
        reference=trained.reference,
        artifacts=[],
        pip_requirements=[f"scikit-learn=={sklearn.__version__}"],
    )
    _, times["register"] = timed(registry.log_and_register, record)

    # drift: the whole batch, with the model's predictions and its labels, against the reference
    def drift() -> Any:
        current = coerce_features(frame, uc)
        current[PREDICTION] = model_output(trained.model, current, uc.task)
        current[TARGET] = target_vector(frame, uc)
        return run_report(
            reference=trained.reference,
            current=current,
            numerical=uc.numeric_features,
            categorical=uc.categorical_features,
            task=uc.task,
            threshold=uc.monitoring.drift_share,
            out_dir=layout.reports,
            name=f"scaling-{rows}",
            drift_options=uc.monitoring.model_dump(include={"num_method", "num_threshold"}, exclude_none=True),
        )

    _, times["drift report"] = timed(drift)
    times["rows_accepted"] = float(len(accepted))
    if cluster is not None:
        times.update(on_cluster(frame, layout.curated / uc.name, uc, cluster, tuning_rows=tuning_rows))
    return times


def on_cluster(
    frame: pd.DataFrame | None, lake: Path, uc: Any, address: str, *, tuning_rows: int | None
) -> dict[str, float]:
    """Training with its fits on the cluster (the flow's path), and out-of-core training of the lake."""
    from distributed import Client

    from models.training import train
    from pipelines.cluster import compute
    from pipelines.outofcore import train_out_of_core
    from pipelines.settings import PipelineSettings

    times = {}
    if frame is not None:
        with compute(PipelineSettings(dask_address=address)) as used:
            _, times[CLUSTER_STAGES[0]] = timed(train, frame, uc, n_jobs=used.n_jobs, share=used.share)
    with Client(address, set_as_default=False) as client:
        _, times[CLUSTER_STAGES[1]] = timed(
            train_out_of_core, lake, uc, client=client, selection_rows=tuning_rows or 200_000
        )
    return times


def table(results: dict[int, dict[str, float]]) -> str:
    sizes = sorted(results)
    head = "| stage | " + " | ".join(f"{n:,} rows" for n in sizes) + " | growth (last step) |"
    lines = [head, "|---|" + "---:|" * (len(sizes) + 1)]
    stages = [s for s in (*STAGES, *CLUSTER_STAGES) if any(s in results[n] for n in sizes)]
    for stage in stages:
        values = [results[n].get(stage) for n in sizes]
        measured = [(n, v) for n, v in zip(sizes, values, strict=True) if v is not None]
        growth = "-"
        if len(measured) > 1 and measured[-2][1] > 0:
            (rows_before, before), (rows_after, after) = measured[-2:]
            growth = f"{after / before:.1f}x for {rows_after / rows_before:.0f}x rows"
        cells = " | ".join("-" if v is None else f"{v:.1f} s" for v in values)
        lines.append(f"| {stage} | {cells} | {growth} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.pipeline", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000,1000000", help="Comma-separated row counts")
    parser.add_argument(
        "--no-record", action="store_true", help="Do not append the table to the results log (docs/performance.md)"
    )
    parser.add_argument(
        "--tuning-rows",
        default="100000",
        help="The use case's training.tuning_rows for this run ('all': tune on every row, as before the cap)",
    )
    parser.add_argument(
        "--cluster", action="store_true", help=f"Also train on two local Dask workers ({WORKER_MEMORY} each)"
    )
    parser.add_argument(
        "--history", type=int, default=0, help="Also train out-of-core on a replayed history of this many rows"
    )
    args = parser.parse_args(argv)
    os.environ.update(DO_NOT_TRACK="true", MLFLOW_DISABLE_TELEMETRY="true", GIT_PYTHON_REFRESH="quiet")
    raw = pd.read_csv(ROOT / "data" / "Bikeshare.csv", dtype=str, keep_default_na=False)
    results: dict[int, dict[str, float]] = {}
    tuning = None if args.tuning_rows == "all" else int(args.tuning_rows)
    with tempfile.TemporaryDirectory(prefix="mlops-scaling-") as tmp, local_cluster(args.cluster) as address:
        run_size(2_000, raw, Path(tmp) / "warm-up", tuning_rows=tuning)  # imports and caches, not timed
        for rows in (int(s) for s in args.sizes.split(",")):
            results[rows] = run_size(rows, raw, Path(tmp), tuning_rows=tuning, cluster=address)
            timings = {s: v for s, v in results[rows].items() if s in (*STAGES, *CLUSTER_STAGES)}
            print(f"{rows:>9,} rows: " + ", ".join(f"{s} {v:.1f} s" for s, v in timings.items()), flush=True)
        if args.history and address:
            from benchmarks.history import write_history
            from core.settings import default_usecases_dir
            from core.usecase import load_use_case

            lake = Path(tmp) / "history" / "bike_demand"
            written = write_history(lake, rows=args.history)
            uc = load_use_case("bike_demand", usecases_dir=default_usecases_dir())
            results[written] = on_cluster(None, lake, uc, address, tuning_rows=tuning)
            print(f"{written:>9,} rows (history): {results[written]}", flush=True)
    text = table(results)
    print(text)
    if not args.no_record:
        stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
        record(
            f"## Pipeline scaling, {stamp}\n\n{os.cpu_count()} cores, "
            f"training.tuning_rows={args.tuning_rows}"
            + (f"; Dask: 2 local worker processes, 1 thread and {WORKER_MEMORY} each" if args.cluster else "")
            + f".\n\n{text}"
        )
    return 0


@contextmanager
def local_cluster(wanted: bool) -> Iterator[str | None]:
    """Two Dask worker processes on this machine (the stack's worker shape), or none."""
    if not wanted:
        yield None
        return
    import dask
    from distributed import LocalCluster

    # As the stack's scheduler runs: every worker keeps its copy of the training data (pipelines/cluster.py).
    with (
        dask.config.set({"distributed.scheduler.active-memory-manager.start": False}),
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, memory_limit=WORKER_MEMORY, dashboard_address=None
        ) as cluster,
    ):
        yield cluster.scheduler_address


if __name__ == "__main__":
    sys.exit(main())
