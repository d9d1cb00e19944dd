"""Flows in containers of their own: the Prefect ``docker`` work pool that runs train and retrain.

A retrain holds gigabytes and both cores for minutes; run as a subprocess of the worker, it would
starve the flows that watch the inbox and check drift. With ``MLOPS_FLOW_POOL`` set, the worker
deploys train and retrain to a ``docker`` work pool, and ``mlops flow-worker`` (Prefect's Docker
worker from ``prefect-docker``) starts one container per flow run.

A flow container is made like the container of the flow worker itself: the same image, networks,
named volumes (the lake, the Evidently workspace) and ``MLOPS_*`` settings. The worker reads them
from its own container at start and writes them into the pool's job template as defaults, so the
compose file states them once and a project name of any kind works. On Kubernetes the same two
deployments go to a ``kubernetes`` pool (deploy/kubernetes/prefect/kubernetes-work-pool.json).
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

POOL_TYPE = "docker"
# What flow runs share with the rest of the stack: the curated lake and the Evidently workspace.
# The inbox (read by watch-inbox only) and the engine's socket stay with the workers.
SHARED_PATHS = ("/data/state", "/data/evidently")


class NoOwnContainer(RuntimeError):
    """The flow worker cannot read its own container: no engine on the socket, or not started in a container."""


@dataclass(frozen=True)
class FlowContainer:
    """What every flow container of the pool gets."""

    image: str
    networks: tuple[str, ...]
    volumes: tuple[str, ...]  # "volume-name:/path"
    env: dict[str, str]
    memory_limit: str | None = None


def like(inspected: dict[str, Any], *, memory_limit: str | None = None) -> FlowContainer:
    """A flow container made like the container ``docker inspect`` describes (the flow worker's own)."""
    variables = dict(item.split("=", 1) for item in inspected["Config"]["Env"] if "=" in item)
    return FlowContainer(
        image=inspected["Config"]["Image"],
        networks=tuple(sorted(inspected["NetworkSettings"]["Networks"])),
        volumes=tuple(
            sorted(
                f"{mount['Name']}:{mount['Destination']}"
                for mount in inspected["Mounts"]
                if mount["Type"] == "volume" and mount["Destination"] in SHARED_PATHS
            )
        ),
        env={key: value for key, value in sorted(variables.items()) if key.startswith("MLOPS_")},
        memory_limit=memory_limit,
    )


def job_template(base: dict[str, Any], container: FlowContainer) -> dict[str, Any]:
    """The pool's base job template with the flow container's settings as its defaults.

    A deployment can still override any of them (``job_variables``), as Prefect's templates allow.
    """
    template = copy.deepcopy(base)
    defaults = {
        "image": container.image,
        # The image is the worker's own and is on this engine already; there may be no registry to ask.
        "image_pull_policy": "Never",
        "networks": list(container.networks),
        "volumes": list(container.volumes),
        "env": container.env,
        # A finished run's container goes; its output is streamed into the worker's log and the run's.
        "auto_remove": True,
        "stream_output": True,
        "mem_limit": container.memory_limit,
    }
    properties = template["variables"]["properties"]
    for name, value in defaults.items():
        properties[name]["default"] = value
    return template


def own_container() -> dict[str, Any]:
    """``docker inspect`` of the container this process runs in (Docker names a container's host after its id)."""
    import socket

    import docker
    from docker.errors import DockerException, NotFound

    try:
        client = docker.from_env()
    except DockerException as err:
        raise NoOwnContainer(
            f"the container engine does not answer on its socket ({err}); mount /var/run/docker.sock"
        ) from None
    try:
        return client.api.inspect_container(socket.gethostname())
    except NotFound:
        raise NoOwnContainer(
            "the flow worker copies its flow containers from its own container, and this process does not run "
            "in one the engine knows; start it as the stack's flow-worker service"
        ) from None


def ensure_pool(name: str, *, container: FlowContainer | None = None) -> None:
    """Create the ``docker`` work pool when it is missing; with ``container``, set its job template's defaults."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate, WorkPoolUpdate
    from prefect.exceptions import ObjectAlreadyExists
    from prefect_docker.worker import DockerWorker

    base = DockerWorker.get_default_base_job_template()
    template = job_template(base, container) if container else base
    with get_client(sync_client=True) as client:
        try:
            client.create_work_pool(WorkPoolCreate(name=name, type=POOL_TYPE, base_job_template=template))
            log.info("work pool %s created", name)
        except ObjectAlreadyExists:
            if container:
                client.update_work_pool(name, WorkPoolUpdate(base_job_template=template))
                log.info("work pool %s: flow containers made like %s", name, container.image)
