"""What a user sees when the stack cannot start: each a clear message naming what and where."""

from __future__ import annotations

import socket
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.e2e.docker.conftest import write_env
from tests.support.compose import Project, run

pytestmark = [pytest.mark.slow, pytest.mark.docker]


@pytest.fixture
def project(tmp_path: Path, engine: None) -> Iterator[Project]:
    env_file, env = write_env(tmp_path)
    project = Project(name=f"mlops-test-{uuid.uuid4().hex[:8]}", env_file=env_file, env=env)
    yield project
    project.compose("down", "-v", "--remove-orphans", "--timeout", "5", timeout=120, check=False)
    assert project.leftovers() == {}


@pytest.mark.parametrize("secret", ["POSTGRES_PASSWORD", "MLOPS_ADMIN_TOKEN", "GRAFANA_ADMIN_PASSWORD"])
def test_a_missing_secret_names_the_variable_and_the_file(project: Project, secret: str):
    project.env_file.write_text(
        "".join(f"{k}={'' if k == secret else v}\n" for k, v in project.env.items())
    )  # as copied from .env.example, with that secret still empty
    refused = project.compose("config", "--quiet", check=False, timeout=60)
    assert refused.returncode != 0
    assert f"required variable {secret} is missing a value: set {secret} in .env (see .env.example)" in refused.stderr


def test_a_taken_port_names_the_address(project: Project, images):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", int(project.env["PUSHGATEWAY_PORT"])))
        taken.listen()
        failed = project.compose("up", "-d", "--no-deps", "pushgateway", check=False, timeout=120)
    assert failed.returncode != 0
    assert f"127.0.0.1:{project.env['PUSHGATEWAY_PORT']}" in failed.stderr
    assert "address already in use" in failed.stderr or "port is already allocated" in failed.stderr


def test_a_service_that_never_gets_healthy_is_named_by_up_wait(project: Project, tmp_path: Path, images):
    broken = tmp_path / "broken-healthcheck.yml"
    broken.write_text(
        "services:\n  pushgateway:\n    healthcheck:\n"
        '      test: ["CMD", "false"]\n      interval: 1s\n      retries: 2\n      start_period: 0s\n'
    )
    base = ["docker", "compose", "-f", str(ROOT / "docker-compose.yml"), "-f", str(broken), "-p", project.name,
            "--env-file", str(project.env_file)]  # fmt: skip
    failed = run(
        [*base, "up", "-d", "--wait", "--wait-timeout", "60", "--no-deps", "pushgateway"], check=False, timeout=180
    )
    assert failed.returncode != 0
    assert "pushgateway" in failed.stderr and "unhealthy" in failed.stderr


def test_a_stopped_engine_is_named_with_its_address():
    checked = subprocess.run(
        [str(ROOT / "tests" / "docker" / "engine.sh"), "check"],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/local/bin:/usr/bin:/bin", "DOCKER_HOST": "unix:///nonexistent/docker.sock"},
        timeout=60,
    )
    assert checked.returncode != 0
    assert "no Docker engine answers at unix:///nonexistent/docker.sock" in checked.stderr
