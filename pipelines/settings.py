"""Settings of a pipeline process (CLI, Prefect worker, demo)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from core.settings import CommonSettings


class PipelineSettings(CommonSettings):
    serving_url: str | None = Field(
        default=None, description="Base URL of the serving service to tell about a new champion."
    )
    admin_token: str = Field(default="dev-admin-token", description="Token for the service's admin endpoints.")
    auto_retrain: bool = Field(
        default=True,
        description="Start the retraining flow inline when monitoring finds drift. The stack sets it false: "
        "there a Prefect Automation on the drift event starts retraining.",
    )
    rollout_profile: Literal["standard", "fast"] = Field(
        default="standard",
        description="Rollout timings: the use case's `deployment.config` (standard) or its compressed "
        "`deployment.demo_config` (fast: seconds per step, for demos and tests).",
    )
    inbox: str | None = Field(
        default=None, description="Folder or URL (fsspec: path, s3://, http://) watched for new batch files."
    )
    ingest_interval_seconds: float = Field(default=60, gt=0, description="How often the inbox is scanned.")
    ingest_chunk_rows: int = Field(
        default=5_000,
        ge=100,
        description="Rows parsed, typed and validated at a time: memory follows the chunk, not the file.",
    )
    monitor_interval_seconds: float = Field(
        default=3600, gt=0, description="How often the prediction log is checked for drift."
    )
    monitor_window_hours: float = Field(default=24, gt=0, description="Prediction-log window of a scheduled check.")
    evidently_workspace: str | None = Field(
        default=None, description="Evidently workspace that every drift report is added to (for `evidently ui`)."
    )
    pushgateway_url: str | None = Field(
        default=None, description="Prometheus Pushgateway for pipeline metrics (drift share, quarantined rows)."
    )
