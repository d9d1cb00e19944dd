"""The stack on a container engine: images built once per session, one Compose project for the tests.

The engine itself is started by `make test` / `make test-docker` (tests/docker/engine.sh); here it
must answer, or every test of this folder fails saying so.
"""

from __future__ import annotations

import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.support.compose import Images, Project, StackError, free_port, prepare_images, run

TOKEN = "docker-test-admin-token-0123456789"
PORT_VARIABLES = ("GATEWAY_PORT", "GATEWAY_TLS_PORT", "MLFLOW_PORT", "PREFECT_PORT", "EVIDENTLY_PORT",
                  "PUSHGATEWAY_PORT", "PROMETHEUS_PORT", "GRAFANA_PORT", "REDIS_PORT", "DASK_PORT")  # fmt: skip


def log(message: str) -> None:
    print(f"[docker] {message}", file=sys.stderr, flush=True)


@pytest.fixture(scope="session")
def engine() -> None:
    if run(["docker", "info"], check=False, timeout=60).returncode != 0:
        pytest.fail("no Docker engine answers: run the Docker tests with `make test-docker` (it starts one)")
    if run(["docker", "compose", "version"], check=False, timeout=60).returncode != 0:
        pytest.fail("`docker compose` (Compose v2) is missing: `make test-docker` installs it")


@pytest.fixture(scope="session")
def images(engine: None) -> Images:
    """The official images (or their stand-ins) and the project's two images, built from the Dockerfile."""
    started = time.monotonic()
    prepared = prepare_images(log=log)
    log(f"images ready in {time.monotonic() - started:.0f} s; unavailable here: {prepared.unavailable or 'none'}")
    return prepared


def write_env(folder: Path, **overrides: str) -> tuple[Path, dict[str, str]]:
    env = {
        "POSTGRES_PASSWORD": "docker-test-password-0123",
        "MLOPS_ADMIN_TOKEN": TOKEN,
        "GRAFANA_ADMIN_PASSWORD": "docker-test-grafana-0123",
        **{variable: str(free_port()) for variable in PORT_VARIABLES},
        # The flow worker reaches the engine's socket through the socket's group.
        "DOCKER_GID": str(Path("/var/run/docker.sock").stat().st_gid),
        **overrides,
    }
    path = folder / ".env"
    path.write_text("".join(f"{key}={value}\n" for key, value in env.items()))
    return path, env


@pytest.fixture(scope="module")
def stack(images: Images, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Project]:
    """The whole file up (but for services whose image nothing here can give), torn down with its volumes."""
    folder = tmp_path_factory.mktemp("stack")
    inbox = folder / "inbox"
    inbox.mkdir()
    inbox.chmod(0o755)  # the worker reads it as its own user (uid 10001)
    tls = folder / "tls"  # the gateway's certificate, made as a user makes it
    run(["make", "-s", "certs", f"TLS={tls}"], cwd=ROOT, timeout=120)
    env_file, env = write_env(
        folder,
        MLOPS_ROLLOUT_PROFILE="fast",
        # Each look at the inbox is a flow run in a process of its own (~2 s of CPU on two cores).
        MLOPS_INGEST_INTERVAL_SECONDS="8",
        MLOPS_INBOX_DIR=str(inbox),
        GATEWAY_TLS_DIR=str(tls),
    )
    services = images.services()
    project = Project(
        name=f"mlops-test-{uuid.uuid4().hex[:8]}", env_file=env_file, env=env, services=services, inbox=inbox
    )
    try:
        started = time.monotonic()
        log(f"docker compose up -d --wait {' '.join(services)}")
        try:
            project.compose("up", "-d", "--wait", "--wait-timeout", "600", *services, timeout=900)
        except StackError as err:
            pytest.fail(f"the stack did not come up healthy: {err}\n{project.logs()}")
        log(f"stack healthy in {time.monotonic() - started:.0f} s")
        yield project
    finally:
        # What each container said, kept beside the test's other files, then nothing left behind.
        (folder / "compose.log").write_text(project.logs(tail=400))
        project.compose("down", "-v", "--remove-orphans", "--timeout", "20", timeout=300, check=False)
        left = project.leftovers()
        assert left == {}, f"`docker compose down -v` left {left}"
