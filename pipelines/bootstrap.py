"""Bootstrap: the first champion, from the first months of the use case's data set.

A fresh stack has an empty registry, and a service with no champion is not
ready. The bootstrap ingests the months before ``demo.bootstrap_until`` as
ordinary batch drops (validated, landed, curated) and trains on them. It does
nothing when the registry already has a champion, so it can run on every start.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
from prefect import flow, get_run_logger

from core.layout import StateLayout
from core.usecase import UseCase
from models.registry import CHAMPION
from monitoring.drift import ensure_project
from pipelines.drops import bootstrap_months, corrupt, period_of, period_start, read_raw, split_into_drops
from pipelines.ingest import ingest_flow
from pipelines.runtime import get_runtime
from pipelines.train import train_flow


def drop_arrival(label: str, use_case: UseCase) -> datetime:
    """A drop arrives when its period begins (a monthly drop on the 1st of its month)."""
    return period_start(label, period_of(use_case))


def write_drop(layout: StateLayout, use_case: UseCase, month: str, frame: pd.DataFrame) -> Path:
    """The month's batch file, corrupted when the use case's demo says this month's feed breaks."""
    drop_dir = layout.drops / use_case.name
    drop_dir.mkdir(parents=True, exist_ok=True)
    path = drop_dir / f"{month}.csv"
    corrupted = use_case.demo is not None and month == use_case.demo.corrupt_batch
    path.write_bytes(corrupt(frame, use_case) if corrupted else frame.to_csv(index=False).encode())
    return path


def ingest_month(*, use_case: UseCase, month: str, frame: pd.DataFrame, state_dir: str | None) -> dict[str, Any]:
    rt = get_runtime(state_dir)
    path = write_drop(rt.layout, use_case, month, frame)
    return ingest_flow(
        source=str(path), use_case=use_case.name, arrival=drop_arrival(month, use_case), state_dir=state_dir
    )


@flow(name="bootstrap", log_prints=True)
def bootstrap_flow(use_case: str, state_dir: str | None = None) -> dict[str, Any]:
    """Ingest the bootstrap months and train the first champion, unless there is one already.

    With an Evidently workspace configured, its project for the use case is created here too,
    before the Evidently UI starts (see ``monitoring.drift.ensure_project``).
    """
    logger = get_run_logger()
    rt = get_runtime(state_dir)
    uc = rt.use_case(use_case)
    if rt.settings.evidently_workspace:
        ensure_project(Path(rt.settings.evidently_workspace), uc.name)
    existing = rt.registry.by_alias(uc.model_name, CHAMPION)
    if existing is not None:
        logger.info("'%s' already has a champion (v%s): nothing to bootstrap", uc.model_name, existing.version)
        return {"bootstrapped": False, "champion": existing.version, "months": [], "rows": 0}
    drops = split_into_drops(read_raw(uc), uc)
    months = bootstrap_months(drops, uc)
    rows = sum(ingest_month(use_case=uc, month=m, frame=drops[m], state_dir=state_dir)["rows_accepted"] for m in months)
    trained = train_flow(use_case=uc.name, state_dir=state_dir)
    logger.info("bootstrapped v%s on %s (%d rows)", trained["version"], ", ".join(months), rows)
    return {"bootstrapped": True, "champion": trained["version"], "months": months, "rows": rows, "trained": trained}
