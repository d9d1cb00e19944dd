"""The flow containers of the ``docker`` work pool are made like the flow worker's own container."""

from __future__ import annotations

from typing import Any

import pytest

from pipelines.containers import FlowContainer, job_template, like


def inspected(**overrides: Any) -> dict[str, Any]:
    """The parts of ``docker inspect`` the flow worker reads, as the engine reports them."""
    return {
        "Config": {
            "Image": "mlops-loop:platform",
            "Env": [
                "PATH=/usr/local/bin:/usr/bin",
                "MLOPS_TRACKING_URI=http://mlflow:5000",
                "MLOPS_DASK_ADDRESS=tcp://dask-scheduler:8786",
                "MLOPS_ADMIN_TOKEN=t=with=equals",
                "PREFECT_API_URL=http://prefect-server:4200/api",
                "DOCKER_GID",  # a variable with no value
            ],
        },
        "NetworkSettings": {"Networks": {"proj_default": {}, "proj_backend": {}}},
        "Mounts": [
            {"Type": "volume", "Name": "proj_lake", "Destination": "/data/state"},
            {"Type": "volume", "Name": "proj_evidently-workspace", "Destination": "/data/evidently"},
            {"Type": "volume", "Name": "proj_other", "Destination": "/data/scratch"},
            {"Type": "bind", "Source": "/var/run/docker.sock", "Destination": "/var/run/docker.sock"},
        ],
        **overrides,
    }


def test_a_flow_container_gets_the_image_networks_shared_volumes_and_mlops_settings_of_the_worker():
    container = like(inspected(), memory_limit="2g")
    assert container.image == "mlops-loop:platform"
    assert container.networks == ("proj_backend", "proj_default")
    # Only the lake and the Evidently workspace: never the engine's socket, nor a volume of the worker's own.
    assert container.volumes == ("proj_evidently-workspace:/data/evidently", "proj_lake:/data/state")
    assert container.env == {
        "MLOPS_ADMIN_TOKEN": "t=with=equals",
        "MLOPS_DASK_ADDRESS": "tcp://dask-scheduler:8786",
        "MLOPS_TRACKING_URI": "http://mlflow:5000",
    }
    assert container.memory_limit == "2g"


def test_the_job_template_takes_them_as_defaults_and_leaves_the_base_untouched():
    from prefect_docker.worker import DockerWorker

    base = DockerWorker.get_default_base_job_template()
    container = FlowContainer(
        image="img:1", networks=("n",), volumes=("v:/data/state",), env={"MLOPS_X": "1"}, memory_limit=None
    )
    template = job_template(base, container)
    defaults = {name: spec.get("default") for name, spec in template["variables"]["properties"].items()}
    assert defaults["image"] == "img:1" and defaults["image_pull_policy"] == "Never"
    assert defaults["networks"] == ["n"] and defaults["volumes"] == ["v:/data/state"]
    assert defaults["env"] == {"MLOPS_X": "1"} and defaults["auto_remove"] is True
    assert base["variables"]["properties"]["image"].get("default") != "img:1"
    # Every default set is a variable the Docker worker's job configuration reads.
    assert set(template["job_configuration"]) >= {"image", "image_pull_policy", "networks", "volumes", "env"}


def test_the_template_fits_the_docker_workers_job_configuration():
    """Prefect renders the template, a deployment adding nothing, into the worker's own configuration class."""
    import asyncio

    from prefect_docker.worker import DockerWorker, DockerWorkerJobConfiguration

    container = like(inspected())
    template = job_template(DockerWorker.get_default_base_job_template(), container)
    # The client only resolves block and variable references; the template has none.
    render = DockerWorkerJobConfiguration.from_template_and_values(template, {}, client=object())
    configuration = asyncio.run(render)
    assert configuration.image == "mlops-loop:platform" and configuration.image_pull_policy == "Never"
    assert configuration.volumes == list(container.volumes) and configuration.auto_remove
    assert configuration.env["MLOPS_TRACKING_URI"] == "http://mlflow:5000"


def test_a_container_without_a_shared_volume_is_read_as_such():
    container = like(inspected(Mounts=[]))
    assert container.volumes == ()
    with pytest.raises(KeyError):
        like({"Config": {"Env": []}})


def test_a_run_adds_to_the_containers_settings_without_losing_the_others():
    """What the Docker test does to train one run in its own process: an empty Dask address for that run."""
    import asyncio

    from prefect_docker.worker import DockerWorker, DockerWorkerJobConfiguration

    template = job_template(DockerWorker.get_default_base_job_template(), like(inspected()))
    render = DockerWorkerJobConfiguration.from_template_and_values(
        template, {"env": {"MLOPS_DASK_ADDRESS": ""}}, client=object()
    )
    env = asyncio.run(render).env
    assert env["MLOPS_DASK_ADDRESS"] == "" and env["MLOPS_TRACKING_URI"] == "http://mlflow:5000"
