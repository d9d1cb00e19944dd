"""The heavy flows deployed to a ``docker`` work pool on a real Prefect server, with their trigger.

That the pool's worker then runs each flow in a container of its own is shown on a real engine
(tests/e2e/docker: the drift test's retraining).
"""

from __future__ import annotations

import asyncio

from pipelines.containers import POOL_TYPE, FlowContainer, ensure_pool
from pipelines.monitor import DRIFT_EVENT
from pipelines.settings import PipelineSettings
from pipelines.worker import HEAVY_FLOWS, deployments, to_pool


def test_train_and_retrain_go_to_the_pool_and_the_rest_stay_with_the_worker():
    from prefect.client.orchestration import get_client

    settings = PipelineSettings(flow_pool="containers-it")
    served = to_pool(deployments(use_case="bike_demand", settings=settings), pool="containers-it")
    assert {d.flow_name for d in served} == {"watch-inbox", "monitor", "deploy"}

    async def read() -> tuple:
        async with get_client() as client:
            pool = await client.read_work_pool("containers-it")
            pooled = {name: await client.read_deployment_by_name(f"{name}/bike_demand") for name in sorted(HEAVY_FLOWS)}
            automations = await client.read_automations_by_name("retrain-on-drift-bike_demand")
            return pool, pooled, automations

    pool, pooled, automations = asyncio.run(read())
    assert pool.type == POOL_TYPE
    for name, deployment in pooled.items():
        assert deployment.work_pool_name == "containers-it", name
        assert deployment.entrypoint.startswith("pipelines.") and deployment.pull_steps in (None, [])
    (automation,) = automations  # the drift trigger: an Automation that runs the pooled retrain deployment
    assert automation.trigger.expect == {DRIFT_EVENT}
    assert str(automation.actions[0].deployment_id) == str(pooled["retrain"].id)


def test_the_flow_worker_makes_the_pool_s_containers_like_its_own():
    from prefect.client.orchestration import get_client

    ensure_pool("containers-defaults")  # as the worker does first: the Docker worker's own template
    container = FlowContainer(
        image="mlops-loop:platform",
        networks=("proj_default",),
        volumes=("proj_lake:/data/state",),
        env={"MLOPS_TRACKING_URI": "http://mlflow:5000"},
        memory_limit="3g",
    )
    ensure_pool("containers-defaults", container=container)  # then the flow worker, at its start

    async def read():
        async with get_client() as client:
            return await client.read_work_pool("containers-defaults")

    properties = asyncio.run(read()).base_job_template["variables"]["properties"]
    assert properties["image"]["default"] == "mlops-loop:platform"
    assert properties["volumes"]["default"] == ["proj_lake:/data/state"]
    assert properties["env"]["default"] == {"MLOPS_TRACKING_URI": "http://mlflow:5000"}
    assert properties["mem_limit"]["default"] == "3g" and properties["image_pull_policy"]["default"] == "Never"
