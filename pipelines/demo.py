"""`make demo`: a year of production on real data, month by month.

The first months bootstrap a champion. Every later month arrives as a batch
drop (one of them corrupted the way real feeds break), is ingested, served
through real HTTP requests to the running service, labelled through
``/feedback``, monitored for drift, and retrained where drift is found.
"""

from __future__ import annotations

import json
import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from core.layout import StateLayout
from core.progress import progress
from core.usecase import UseCase
from models.frames import coerce_features, target_vector
from models.metrics import evaluate, model_output
from pipelines.bootstrap import ingest_month
from pipelines.drops import bootstrap_months, period_labels, period_of, read_raw, records_and_labels, split_into_drops
from pipelines.traffic import ServedMonth, running_service, serve_month

# While a rollout runs, records go one per request, as live hourly traffic would: a canary routes
# per request, so day-sized batches would judge candidate and stable on different days' weather.
ROLLOUT_RECORDS_PER_REQUEST = 1
# ...and at a live rate, so that the month's traffic spans the rollout: its steps need labelled
# samples from the candidate (the bike canary asks for 50 at 25 %, then 50 at 50 %), which a
# month of ~720 records sent as fast as the service answers (a couple of milliseconds each) would
# be over before. At this rate a month lasts ~9 s; the compressed canary decides in ~5 s.
ROLLOUT_REQUESTS_PER_SECOND = 80.0


# -- pure helpers ---------------------------------------------------------------------------------
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
    # Classification: the threshold that labelled most of the month, and the labels' precision and recall
    decision_threshold: float | None = None
    precision_at_threshold: float | None = None
    recall_at_threshold: float | None = None
    fairness: dict[str, float] = field(default_factory=dict)  # the gaps between groups on the month's labels


def label_quality(served: ServedMonth, y: np.ndarray, use_case: UseCase) -> dict[str, float | None]:
    """How good the labels users got were (classification): precision and recall of the positive
    label against the truth, at the threshold that gave most of them."""
    if use_case.task != "classification" or not served.labels:
        return {}
    flagged = np.asarray([label == use_case.positive_class for label in served.labels])
    truth = np.asarray(y, dtype=bool)
    hits = float((flagged & truth).sum())
    thresholds = [t for t in served.thresholds if t is not None]
    return {
        "decision_threshold": max(set(thresholds), key=thresholds.count) if thresholds else None,
        "precision_at_threshold": hits / flagged.sum() if flagged.sum() else None,
        "recall_at_threshold": hits / truth.sum() if truth.sum() else None,
    }


def _at_threshold(row: MonthRow) -> str:
    def share(value: float | None) -> str:
        return "-" if value is None else f"{value:.2f}"

    return (
        f", labels at threshold {row.decision_threshold:.3g}: precision {share(row.precision_at_threshold)}, "
        f"recall {share(row.recall_at_threshold)}"
    )


def format_table(rows: list[MonthRow], metric: str, *, period: str = "month") -> str:
    """One line per drop; the first column named by the period a drop holds (the YAML's demo.period)."""
    width = max([8, len(period), *(len(r.month) for r in rows)])
    head = (
        f"{period:<{width}} {'recv':>5} {'acc':>5} {'quar':>5}  {'served by':<10} {'rollout on this traffic':<26} "
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
            f"{r.month:<{width}} {r.rows_received:>5} {r.rows_accepted:>5} {r.rows_quarantined:>5}  {served:<10} "
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


def run_demo(*, use_case: str, state_dir: Path, months: int | None = None) -> dict[str, Any]:
    from pipelines.bootstrap import bootstrap_flow
    from pipelines.deploy import deploy_flow
    from pipelines.monitor import monitor_flow
    from pipelines.runtime import get_runtime

    started = time.monotonic()
    rt = get_runtime(str(state_dir))
    layout = rt.layout
    clear_previous_run(layout)
    uc = rt.use_case(use_case)
    metric = uc.promotion.metric
    period = period_of(uc)
    drops = split_into_drops(read_raw(uc), uc)
    first_months = bootstrap_months(drops, uc)

    def ingest(month: str) -> dict[str, Any]:
        return ingest_month(use_case=uc, month=month, frame=drops[month], state_dir=str(state_dir))

    print(f"[demo] {uc.name}: bootstrap on {', '.join(first_months)}")
    boot = bootstrap_flow(use_case=uc.name, state_dir=str(state_dir))
    trained, bootstrap_rows = boot["trained"], boot["rows"]
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
    # The demo's own service, on a loopback port for the length of the run: dev mode lets it take the
    # public default token that the demo's flows send (a real deployment sets MLOPS_ADMIN_TOKEN).
    dev = {"MLOPS_DEV_MODE": "true"}
    with running_service(use_case=uc.name, state_dir=state_dir, log_path=service_log, env=dev) as url:
        rt.settings.serving_url = url
        with httpx.Client(base_url=url, timeout=60) as client, progress(uc.name, total=len(month_names)) as step:
            for month in month_names:
                result = ingest(month)
                accepted = rt.lake.read_curated(uc.name)
                accepted = accepted[period_labels(accepted["event_time"], period) == month]
                features, labels = records_and_labels(accepted, uc)
                window_start = time.time()
                rollout = None
                if challenger is None:
                    served = serve_month(client, month=month, features=features, labels=labels)
                else:
                    # Last month's challenger goes through a real canary on this month's traffic.
                    rolling_out = threading.Event()
                    rolling_out.set()
                    with ThreadPoolExecutor(max_workers=1) as pool:
                        traffic = pool.submit(
                            serve_month,
                            client,
                            month=month,
                            features=features,
                            labels=labels,
                            per_request=ROLLOUT_RECORDS_PER_REQUEST,
                            pace_per_s=ROLLOUT_REQUESTS_PER_SECOND,
                            pace_while=rolling_out,
                        )
                        try:
                            rollout = deploy_flow(
                                use_case=uc.name,
                                candidate_version=challenger,
                                overrides=uc.deployment.demo_config,
                                timeout_s=120,
                                state_dir=str(state_dir),
                            )
                        finally:
                            rolling_out.clear()  # the rest of the month as fast as it is answered
                        served = traffic.result()
                window_end = time.time() + 1e-3
                y = target_vector(accepted, uc)
                live = evaluate(uc.task, y, served.predictions)[metric]
                labelled = label_quality(served, y, uc)
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
                    fairness=monitored.get("fairness") or {},
                    **labelled,
                )
                rows.append(row)
                step(
                    1,
                    f"[demo] {month}: {row.rows_accepted}/{row.rows_received} rows accepted, "
                    f"served by v{row.live_model_version}"
                    + (
                        f" ({rollout['strategy']} of v{rollout['candidate_version']}: {rollout['outcome']})"
                        if rollout
                        else ""
                    )
                    + f", drift {row.drift_share:.2f}, live {metric} {row.live_error:.4g} "
                    f"(bootstrap model {row.baseline_error:.4g})"
                    + (_at_threshold(row) if row.decision_threshold is not None else "")
                    + "".join(f", {k.removeprefix('fairness_')} {v:.3f}" for k, v in row.fairness.items())
                    + (f", retrained -> challenger v{challenger}" if challenger else ""),
                )

    summary = {
        "use_case": uc.name,
        "metric": metric,
        "higher_is_better": uc.higher_is_better,
        "period": period,  # what each entry of "months" holds: a month unless the YAML's demo.period says otherwise
        "bootstrap": {"months": first_months, "rows": bootstrap_rows, "model_version": baseline_version},
        "months": [asdict(r) for r in rows],
        "story": story(rows),
        "reports": reports,
        "eda_reports": str(layout.reports / uc.name / "eda"),  # one per data version a model was trained on
        "model_cards": str(layout.reports / uc.name / "cards"),  # one per registered version
        "wall_seconds": round(time.monotonic() - started, 1),
    }
    path = layout.root / "demo-summary.json"
    path.write_text(json.dumps(summary, indent=2))
    print()
    print(format_table(rows, metric, period=period))
    s = summary["story"]
    if s["first_retrain_month"]:
        print(
            f"\nFirst retraining after {s['first_retrain_month']}. Over the {s['months_after_first_retrain']} "
            f"{period}s after it, mean live {metric} {s['mean_live_error_after']:.4g} vs "
            f"{s['mean_baseline_error_after']:.4g} had the bootstrap model stayed in production."
        )
    print(f"\nExploratory analysis of each data version a model was trained on: {summary['eda_reports']}/")
    print(f"A model card for each registered version: {summary['model_cards']}/ (or: mlops model-card VERSION)")
    summary["summary_path"] = str(path)
    return summary
