"""The Prefect worker role: the loop's flows served as deployments, wired by schedules and events.

    watch-inbox  every MLOPS_INGEST_INTERVAL_SECONDS: ingest new batch files -> mlops.batch.ingested
    monitor      on mlops.batch.ingested (that batch) and every MLOPS_MONITOR_INTERVAL_SECONDS
                 (the prediction log's last MLOPS_MONITOR_WINDOW_HOURS)          -> mlops.drift.detected
    retrain      by an Automation on mlops.drift.detected: train, register a challenger, roll it out
    train        on demand: train and register (promoted only if it beats the champion)
    deploy       on demand: roll out the challenger (or any version) with any strategy

``Flow.serve``-style serving runs each flow run as a subprocess of this one and
creates the event triggers as Automations on the Prefect server. With MLOPS_FLOW_POOL set, the
heavy two, train and retrain, go to that ``docker`` work pool instead: each run gets a container
of its own (pipelines/containers.py), and a retrain cannot starve the inbox's watch.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from prefect.deployments.runner import EntrypointType
from prefect.events import DeploymentEventTrigger

from pipelines.deploy import deploy_flow
from pipelines.monitor import DRIFT_EVENT, monitor_flow, retrain_flow
from pipelines.settings import PipelineSettings
from pipelines.train import train_flow
from pipelines.watch import INGESTED_EVENT, watch_flow

# The flows whose runs get containers of their own when a work pool is configured.
HEAVY_FLOWS = frozenset({"train", "retrain"})


def deployments(*, use_case: str, settings: PipelineSettings) -> list[Any]:
    """The five deployments of one use case (a deployment's name is the use case).

    The heavy ones name their flow by module path: a flow container imports it from the installed
    package, with no source to pull.
    """
    heavy = {"entrypoint_type": EntrypointType.MODULE_PATH}
    watch = watch_flow.to_deployment(
        name=use_case,
        interval=timedelta(seconds=settings.ingest_interval_seconds),
        parameters={"use_case": use_case},
        concurrency_limit=1,  # a slow scan must not overlap the next one
        description="Ingest new batch files from the inbox; emits mlops.batch.ingested per new batch.",
    )
    monitor = monitor_flow.to_deployment(
        name=use_case,
        interval=timedelta(seconds=settings.monitor_interval_seconds),
        parameters={"use_case": use_case, "retrain": False},
        triggers=[
            DeploymentEventTrigger(
                name=f"check-new-batch-{use_case}",
                expect={INGESTED_EVENT},
                match={"prefect.resource.id": "mlops.batch.*", "mlops.use-case": use_case},
                parameters={"use_case": use_case, "retrain": False, "batch_id": "{{ event.payload.batch_id }}"},
            )
        ],
        description="Drift check of a new batch (on its event) or of the prediction log (on schedule).",
    )
    retrain = retrain_flow.to_deployment(
        name=use_case,
        parameters={"use_case": use_case, "deploy": "rollout"},
        triggers=[
            DeploymentEventTrigger(
                name=f"retrain-on-drift-{use_case}",
                expect={DRIFT_EVENT},
                match={"prefect.resource.id": f"mlops.model.{use_case}"},
                parameters={
                    "use_case": use_case,
                    "deploy": "rollout",
                    "reason": "drift share {{ event.payload.drift_share }} in {{ event.payload.name }}",
                },
            )
        ],
        concurrency_limit=1,  # two drift events close together retrain once at a time
        description="Retrain on all curated data; a better model becomes challenger and is rolled out.",
        **heavy,
    )
    train = train_flow.to_deployment(
        name=use_case,
        parameters={"use_case": use_case},
        concurrency_limit=1,
        description="Train on the curated data and register; promoted to champion only if it beats it.",
        **heavy,
    )
    deploy = deploy_flow.to_deployment(
        name=use_case,
        parameters={"use_case": use_case},
        description="Roll out the challenger (or candidate_version) with the use case's or a given strategy.",
    )
    return [watch, monitor, retrain, train, deploy]


def to_pool(deployments: list[Any], *, pool: str) -> list[Any]:
    """Deploy the heavy deployments to the ``docker`` work pool ``pool``; return the rest, to be served here."""
    from prefect import deploy

    from pipelines.containers import ensure_pool

    pooled = [d for d in deployments if d.flow_name in HEAVY_FLOWS]
    ensure_pool(pool)  # the flow worker sets its job template's defaults; it may start after this worker
    # No image to build or push: the pool's job template names the stack's own image.
    deploy(*pooled, work_pool_name=pool, build=False, push=False, print_next_steps_message=False)
    return [d for d in deployments if d.flow_name not in HEAVY_FLOWS]


def serve_deployments(*, use_case: str, settings: PipelineSettings) -> None:
    """Register the deployments and their Automations, then run flow runs until stopped."""
    from prefect import serve

    served = deployments(use_case=use_case, settings=settings)
    if settings.flow_pool:
        served = to_pool(served, pool=settings.flow_pool)
    serve(*served, print_starting_message=True)
