"""EDA flow: the exploratory analysis of one dataset version, as an HTML report and a JSON summary.

Run on its own (``mlops eda``) and by the training flow for the version it trains on; the files
are written once per data version, at ``<state>/reports/<use_case>/eda/<data_version>.html|json``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from prefect import flow, get_run_logger, task

from core.layout import StateLayout
from core.usecase import UseCase
from pipelines.runtime import get_runtime


@dataclass(frozen=True)
class EdaReport:
    html: Path
    summary: Path

    @property
    def files(self) -> list[Path]:
        return [self.html, self.summary]


def report_paths(layout: StateLayout, use_case: str, data_version: str) -> EdaReport:
    folder = layout.reports / use_case / "eda"
    return EdaReport(html=folder / f"{data_version}.html", summary=folder / f"{data_version}.json")


@task
def write_eda(frame: pd.DataFrame, use_case: UseCase, *, data_version: str, layout: StateLayout) -> EdaReport:
    """Profile ``frame`` and write its report, unless this data version has one already."""
    from analysis.eda import profile
    from analysis.report import render

    paths = report_paths(layout, use_case.name, data_version)
    if paths.html.exists() and paths.summary.exists():
        return paths
    summary = profile(frame, use_case, data_version=data_version)
    paths.html.parent.mkdir(parents=True, exist_ok=True)
    # The page first: a summary on disk means the report is complete.
    paths.html.write_text(render(summary, frame, use_case))
    paths.summary.write_text(json.dumps(summary, indent=1, allow_nan=False))
    return paths


def headline(paths: EdaReport) -> dict[str, Any]:
    """What a caller shows: where the report is, and its warnings."""
    summary = json.loads(paths.summary.read_text())
    return {
        "data_version": summary["data_version"],
        "rows": summary["rows"],
        "report": str(paths.html),
        "summary": str(paths.summary),
        "warnings": [f"{w['severity']}: {w['message']}" for w in summary["warnings"]],
    }


@flow(name="eda", log_prints=True)
def eda_flow(use_case: str, until: str | None = None, state_dir: str | None = None) -> dict[str, Any]:
    """The exploratory analysis of the curated data (optionally only rows before ``until``)."""
    rt = get_runtime(state_dir)
    uc = rt.use_case(use_case)
    cutoff = pd.Timestamp(until) if until else None
    frame = rt.lake.read_curated(use_case, until=cutoff)
    if frame.empty:
        raise ValueError(f"no curated data for '{use_case}'{f' before {until}' if until else ''}: ingest a batch first")
    paths = write_eda(frame, uc, data_version=rt.lake.data_version(use_case, until=cutoff), layout=rt.layout)
    result = headline(paths)
    for warning in result["warnings"]:
        get_run_logger().info("EDA %s", warning)
    return result
