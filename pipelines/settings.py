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
    dask_address: str | None = Field(
        default=None,
        description="A Dask scheduler (tcp://host:8786): model selection's fits (candidates x grid x folds) "
        "run on its workers. None: in the training process.",
    )
    dask_fallback: Literal["fail", "local"] = Field(
        default="fail",
        description="When the scheduler does not answer: fail the training run with a message that says "
        "so, or train in the process instead (logged).",
    )
    dask_timeout_seconds: float = Field(
        default=15, gt=0, description="How long to wait for the scheduler, and for its first worker."
    )
    flow_pool: str | None = Field(
        default=None,
        description="A Prefect `docker` work pool: the worker deploys the train and retrain flows to it, so "
        "each of their runs gets a container of its own (`mlops flow-worker` serves the pool). None: they run "
        "as subprocesses of the worker, like the other flows.",
    )
    flow_memory_limit: str | None = Field(
        default=None,
        description="The memory limit of each flow container (Docker's form: 2g, 512m). None: no limit.",
    )
    local_prefect_idle_minutes: float = Field(
        default=10,
        ge=0,
        description="Without PREFECT_API_URL, the first command that runs a flow starts a local Prefect server "
        "under PREFECT_HOME and later ones reuse it; it stops after this many minutes with no request "
        "(`mlops prefect stop` stops it at once). 0: no shared server, Prefect's temporary one per command.",
    )


class StreamSettings(PipelineSettings):
    """Settings of ``mlops stream`` (the consumer service, the producer, the benchmark)."""

    stream_url: str = Field(
        default="redis://127.0.0.1:6379/0", description="The broker: a Redis server (Redis Streams), as a URL."
    )
    stream_prefix: str = Field(
        default="mlops",
        pattern=r"^[A-Za-z0-9_.-]+$",
        description="Prefix of a use case's broker keys: <prefix>:<use case>:events, :dead (dead letters), :lease.",
    )
    stream_max_len: int = Field(
        default=1_000_000,
        ge=1_000,
        description="Retention: the producer trims the stream to about this many entries. Keep it well above "
        "the consumer's backlog: an entry trimmed before it was read is lost (it arrives as malformed).",
    )
    stream_batch_events: int = Field(
        default=2_000, ge=1, le=100_000, description="A micro-batch is committed at this many events ..."
    )
    stream_batch_seconds: float = Field(
        default=0.5, gt=0, le=60, description="... or this long after its first event arrived, whichever is first."
    )
    stream_max_event_bytes: int = Field(
        default=65_536, ge=256, description="Larger events are dead-lettered as malformed (the raw landing keeps them)."
    )
    stream_consumer: str = Field(default="consumer", description="The consumer's name in the broker's group.")
    stream_id_memory: int = Field(
        default=5_000_000,
        ge=1_000,
        description="Accepted event ids checked for re-sent events (16 bytes each in memory); an event sent "
        "again after more than this many others is caught by the use case's deduplication.key only.",
    )
    stream_lease_seconds: float = Field(
        default=15, gt=1, description="One consumer holds a stream; a standby takes over this long after it died."
    )
    stream_metrics_port: int = Field(
        default=9108, ge=0, le=65535, description="The consumer's Prometheus metrics (0: any free port)."
    )
    stream_webhook_url: str | None = Field(default=None, description="Alert changes are POSTed here as JSON.")
    stream_score: bool = Field(
        default=True, description="Score accepted events through MLOPS_SERVING_URL (when it is set), labels included."
    )
