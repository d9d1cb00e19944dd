"""`make demo`: a year of production on real data, month by month.

The first months bootstrap a champion. Every later month arrives as a batch
drop (one of them corrupted the way real feeds break), is ingested, served
through real HTTP requests to the running service, labelled through
``/feedback``, monitored for drift, and retrained where drift is found.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd

from core.layout import StateLayout
from core.usecase import UseCase
from models.frames import coerce_features, target_vector
from models.metrics import evaluate, model_output
from pipelines.batches import derive_event_time

# While a rollout runs, records go one per request, as live hourly traffic would: a canary routes
# per request, so day-sized batches would judge candidate and stable on different days' weather.
ROLLOUT_RECORDS_PER_REQUEST = 1


# -- pure helpers ---------------------------------------------------------------------------------
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


@dataclass
class MonthRow:
    month: str
    rows_received: int
    rows_accepted: int
    rows_quarantined: int
    drift_detected: bool
    drift_share: float
    live_model_version: str
    live_error: float
    baseline_error: float
    retrained: bool
    promoted_version: str | None = None  # the version a rollout promoted during this month
    challenger_version: str | None = None  # retrained at the end of this month, rolled out next month
    rollout: dict[str, Any] | None = None  # the rollout that ran on this month's traffic


def format_table(rows: list[MonthRow], metric: str) -> str:
    head = (
        f"{'month':<8} {'recv':>5} {'acc':>5} {'quar':>5}  {'served by':<10} {'rollout on this traffic':<26} "
        f"{'drift':>9}  {'live ' + metric:>10} {'baseline':>9}  retrained"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        drift = f"{'yes' if r.drift_detected else 'no'} {r.drift_share:4.2f}"
        rollout = (
            f"{r.rollout['strategy']} v{r.rollout['candidate_version']} {r.rollout['outcome']}" if r.rollout else "-"
        )
        retrained = (
            f"yes -> v{r.challenger_version}" if r.challenger_version else ("yes, kept" if r.retrained else "no")
        )
        served = "v" + ",v".join(r.live_model_version.split(","))
        lines.append(
            f"{r.month:<8} {r.rows_received:>5} {r.rows_accepted:>5} {r.rows_quarantined:>5}  {served:<10} "
            f"{rollout:<26} {drift:>9}  {r.live_error:>10.4g} {r.baseline_error:>9.4g}  {retrained}"
        )
    return "\n".join(lines)


def story(rows: list[MonthRow]) -> dict[str, Any]:
    """The numbers that tell whether retraining paid off: errors after the first retraining."""
    first = next((i for i, r in enumerate(rows) if r.retrained), None)
    after = rows[first + 1 :] if first is not None else []
    return {
        "first_retrain_month": rows[first].month if first is not None else None,
        "months_after_first_retrain": len(after),
        "mean_live_error_after": float(np.mean([r.live_error for r in after])) if after else None,
        "mean_baseline_error_after": float(np.mean([r.baseline_error for r in after])) if after else None,
    }


# -- the running service ----------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def running_service(
    *, use_case: str, state_dir: Path, log_path: Path, timeout: float = 120, env: dict[str, str] | None = None
) -> Iterator[str]:
    """Start the service as its own process and wait until /ready answers 200."""
    port = free_port()
    env = {**os.environ, "MLOPS_STATE_DIR": str(state_dir), "MLOPS_USE_CASE": use_case, **(env or {})}
    cmd = [
        sys.executable,
        "-m",
        "uvicorn",
        "services.serving.app:app_from_env",
        "--factory",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "warning",
    ]
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + timeout
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"the service exited with code {proc.returncode}; see {log_path}")
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(f"{url}/ready", timeout=2).status_code == 200:
                        break
                if time.monotonic() > deadline:
                    raise TimeoutError(f"the service was not ready after {timeout:.0f}s; see {log_path}")
                time.sleep(0.2)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()


@dataclass
class ServedMonth:
    ids: list[str]
    predictions: np.ndarray
    versions: list[str]


def serve_month(
    client: httpx.Client,
    *,
    month: str,
    features: list[dict[str, Any]],
    labels: list[Any],
    per_request: int = 24,
    label_every: int = 24,
) -> ServedMonth:
    """Send the month's records (``per_request`` per call) and post the labels back a day's worth at a time."""
    ids: list[str] = []
    values: list[float] = []
    versions: set[str] = set()
    labelled = 0

    def post_labels(upto: int) -> None:
        fb = client.post(
            "/feedback",
            json={
                "labels": [
                    {"id": i, "label": y} for i, y in zip(ids[labelled:upto], labels[labelled:upto], strict=True)
                ]
            },
        )
        fb.raise_for_status()

    for n, start in enumerate(range(0, len(features), per_request)):
        chunk = features[start : start + per_request]
        response = client.post(
            "/predict", json=chunk if len(chunk) > 1 else chunk[0], headers={"X-Request-ID": f"{month}-{n:04d}"}
        )
        response.raise_for_status()
        body = response.json()
        versions.add(response.headers["X-Model-Version"])
        ids += [p["id"] for p in body["predictions"]]
        values += [p["value"] for p in body["predictions"]]
        if len(ids) - labelled >= label_every:
            post_labels(len(ids))
            labelled = len(ids)
    if labelled < len(ids):
        post_labels(len(ids))
    return ServedMonth(ids, np.asarray(values), sorted(versions, key=int))


# -- the flow of the year ---------------------------------------------------------------------------
def clear_previous_run(layout: StateLayout) -> None:
    """Remove what an earlier demo wrote; Prefect's database is kept (it only makes start-up faster)."""
    for path in (
        layout.raw,
        layout.curated,
        layout.quarantine,
        layout.ledger,
        layout.gx,
        layout.data_docs,
        layout.reports,
        layout.drops,
        layout.mlflow_artifacts,
    ):
        if path.exists():
            for child in path.rglob("*"):
                if child.is_file():
                    child.chmod(0o644)  # raw files are landed read-only
            shutil.rmtree(path)
    for path in (layout.mlflow_db, layout.prediction_db, layout.root / "demo-summary.json"):
        for candidate in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
            candidate.unlink(missing_ok=True)


def _records(frame: pd.DataFrame, use_case: UseCase) -> tuple[list[dict[str, Any]], list[Any]]:
    X = coerce_features(frame, use_case)
    records = []
    for row in X.to_dict(orient="records"):
        records.append(
            {k: (int(v) if use_case.schema_.columns[k].type in ("int", "bool") else v) for k, v in row.items()}
        )
    labels = frame[use_case.target].tolist()
    labels = [str(v) for v in labels] if use_case.task == "classification" else [float(v) for v in labels]
    return records, labels


def run_demo(*, use_case: str, state_dir: Path, months: int | None = None) -> dict[str, Any]:
    from pipelines.deploy import deploy_flow
    from pipelines.ingest import ingest_flow
    from pipelines.monitor import monitor_flow
    from pipelines.runtime import get_runtime
    from pipelines.train import train_flow

    started = time.monotonic()
    rt = get_runtime(str(state_dir))
    layout = rt.layout
    clear_previous_run(layout)
    uc = rt.use_case(use_case)
    metric = uc.promotion.metric
    raw = pd.read_csv(uc.resolve_source(), dtype=str, keep_default_na=False)
    drops = split_into_drops(raw, uc)
    first_months = bootstrap_months(drops, uc)
    drop_dir = layout.drops / uc.name
    drop_dir.mkdir(parents=True, exist_ok=True)

    def write_drop(month: str, frame: pd.DataFrame) -> Path:
        path = drop_dir / f"{month}.csv"
        corrupted = uc.demo is not None and month == uc.demo.corrupt_batch
        path.write_bytes(corrupt(frame, uc) if corrupted else frame.to_csv(index=False).encode())
        return path

    def arrival(month: str) -> datetime:
        return datetime.fromisoformat(f"{month}-01")

    def ingest(month: str) -> dict[str, Any]:
        """Drop the month's file and ingest it, arriving on the 1st."""
        return ingest_flow(
            source=str(write_drop(month, drops[month])),
            use_case=uc.name,
            arrival=arrival(month),
            state_dir=str(state_dir),
        )

    print(f"[demo] {uc.name}: bootstrap on {', '.join(first_months)}")
    bootstrap_rows = 0
    for month in first_months:
        bootstrap_rows += ingest(month)["rows_accepted"]
    trained = train_flow(use_case=uc.name, state_dir=str(state_dir))
    baseline_version = trained["version"]
    baseline_model = rt.registry.load(uc.model_name, baseline_version)
    print(
        f"[demo] bootstrap model v{baseline_version} ({trained['algorithm']}): test {metric}="
        f"{trained['test_metrics'][metric]:.4g}"
    )

    rows: list[MonthRow] = []
    reports: dict[str, str] = {"data_docs": str(layout.data_docs / "index.html")}
    month_names = [m for m in drops if m not in first_months][:months]
    service_log = layout.root / "logs" / "serving.log"
    challenger: str | None = None
    with running_service(use_case=uc.name, state_dir=state_dir, log_path=service_log) as url:
        rt.settings.serving_url = url
        with httpx.Client(base_url=url, timeout=60) as client:
            for month in month_names:
                result = ingest(month)
                accepted = rt.lake.read_curated(uc.name)
                accepted = (
                    accepted[accepted["event_time"].dt.strftime("%Y-%m") == month]
                    if uc.event_time.kind != "arrival"
                    else accepted[accepted["event_time"] == arrival(month)]
                )
                features, labels = _records(accepted, uc)
                window_start = time.time()
                rollout = None
                if challenger is None:
                    served = serve_month(client, month=month, features=features, labels=labels)
                else:
                    # Last month's challenger goes through a real canary on this month's traffic.
                    with ThreadPoolExecutor(max_workers=1) as pool:
                        traffic = pool.submit(
                            serve_month,
                            client,
                            month=month,
                            features=features,
                            labels=labels,
                            per_request=ROLLOUT_RECORDS_PER_REQUEST,
                        )
                        rollout = deploy_flow(
                            use_case=uc.name,
                            candidate_version=challenger,
                            overrides=uc.deployment.demo_config,
                            timeout_s=120,
                            state_dir=str(state_dir),
                        )
                        served = traffic.result()
                window_end = time.time() + 1e-3
                y = target_vector(accepted, uc)
                live = evaluate(uc.task, y, served.predictions)[metric]
                baseline = evaluate(uc.task, y, model_output(baseline_model, coerce_features(accepted, uc), uc.task))[
                    metric
                ]
                monitored = monitor_flow(
                    use_case=uc.name,
                    since=window_start,
                    until=window_end,
                    name=month,
                    retrain=True,
                    deploy="none",  # the next month's traffic carries the rollout
                    state_dir=str(state_dir),
                )
                retraining = monitored.get("retraining")
                challenger = retraining.get("challenger") if retraining else None
                reports[month] = monitored.get("html_report") or ""
                reports[f"{month}.json"] = monitored.get("json_report") or ""
                row = MonthRow(
                    month=month,
                    rows_received=result["rows_received"],
                    rows_accepted=result["rows_accepted"],
                    rows_quarantined=result["rows_quarantined"],
                    drift_detected=bool(monitored["drift_detected"]),
                    drift_share=float(monitored.get("drift_share", 0.0)),
                    live_model_version=",".join(served.versions),
                    live_error=float(live),
                    baseline_error=float(baseline),
                    retrained=retraining is not None,
                    promoted_version=rollout["candidate_version"]
                    if rollout and rollout["outcome"] == "promoted"
                    else None,
                    challenger_version=challenger,
                    rollout=rollout,
                )
                rows.append(row)
                print(
                    f"[demo] {month}: {row.rows_accepted}/{row.rows_received} rows accepted, "
                    f"served by v{row.live_model_version}"
                    + (
                        f" ({rollout['strategy']} of v{rollout['candidate_version']}: {rollout['outcome']})"
                        if rollout
                        else ""
                    )
                    + f", drift {row.drift_share:.2f}, live {metric} {row.live_error:.4g} "
                    f"(bootstrap model {row.baseline_error:.4g})"
                    + (f", retrained -> challenger v{challenger}" if challenger else "")
                )

    summary = {
        "use_case": uc.name,
        "metric": metric,
        "higher_is_better": uc.higher_is_better,
        "bootstrap": {"months": first_months, "rows": bootstrap_rows, "model_version": baseline_version},
        "months": [asdict(r) for r in rows],
        "story": story(rows),
        "reports": reports,
        "wall_seconds": round(time.monotonic() - started, 1),
    }
    path = layout.root / "demo-summary.json"
    path.write_text(json.dumps(summary, indent=2))
    print()
    print(format_table(rows, metric))
    s = summary["story"]
    if s["first_retrain_month"]:
        print(
            f"\nFirst retraining after {s['first_retrain_month']}. Over the {s['months_after_first_retrain']} "
            f"months after it, mean live {metric} {s['mean_live_error_after']:.4g} vs "
            f"{s['mean_baseline_error_after']:.4g} had the bootstrap model stayed in production."
        )
    summary["summary_path"] = str(path)
    return summary
