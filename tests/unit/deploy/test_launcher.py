"""The launcher's mapping of containers to local processes, and its errors, without starting a stack."""

from __future__ import annotations

import shutil
import socket
from pathlib import Path

import pytest

from deploy.compose import ComposeError, interpolate, read_env_file
from deploy.launcher import Launcher, LauncherError, Rewriter, _duration
from tests.conftest import ROOT

SECRETS = "POSTGRES_PASSWORD=pw-0123456789\nMLOPS_ADMIN_TOKEN=tttttttttttttttttttttttt\nGRAFANA_ADMIN_PASSWORD=gggg\n"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("${A}", "1"),
        ("${MISSING}", ""),
        ("${MISSING:-d}", "d"),
        ("${EMPTY:-d}", "d"),
        ("${EMPTY-d}", ""),
        ("$$HOME", "$HOME"),
        ("x${A}y:${B:-2}", "x1y:2"),
    ],
)
def test_interpolation_follows_compose(text, expected):
    assert interpolate(text, {"A": "1", "EMPTY": ""}) == expected


def test_a_required_variable_names_itself_and_the_fix():
    with pytest.raises(ComposeError, match=r"required variable P is missing a value: set P in \.env"):
        interpolate("${P:?set P in .env}", {"P": ""})
    assert interpolate("${P?unset}", {"P": ""}) == ""


def test_env_file_parsing(tmp_path: Path):
    env = tmp_path / ".env"
    env.write_text("# comment\n\nA=1\nB = 'two words'\nexport C=\"3\"\nEMPTY=\n")
    assert read_env_file(env) == {"A": "1", "B": "two words", "C": "3", "EMPTY": ""}
    env.write_text("not a pair\n")
    with pytest.raises(ComposeError, match=r"\.env:1: expected KEY=value"):
        read_env_file(env)


def test_the_rewriter_maps_hosts_binds_and_volume_paths():
    rewrite = Rewriter(hostnames=["mlflow", "serving-1", "postgres"], paths={"/data/state": "/tmp/s/lake"})
    assert rewrite("http://mlflow:5000/api") == "http://127.0.0.1:5000/api"
    assert rewrite("postgresql+psycopg://postgres:pw@postgres:5432/db") == (
        "postgresql+psycopg://postgres:pw@127.0.0.1:5432/db"
    )  # the user name 'postgres' is not a host: only host:port is rewritten
    assert rewrite("serving-1:8001") == "127.0.0.1:8001"
    assert rewrite("0.0.0.0:8000") == "127.0.0.1:8000" and rewrite("10.0.0.0") == "10.0.0.0"
    assert rewrite("/data/state/prefect") == "/tmp/s/lake/prefect" and rewrite("/data/statement") == "/data/statement"
    assert rewrite("not-mlflow:5000") == "not-mlflow:5000"


def test_durations():
    assert _duration("30s") == 30 and _duration("1m30s") == 90 and _duration("500ms") == 0.5 and _duration(5) == 5


@pytest.fixture
def launcher(tmp_path: Path) -> Launcher:
    env = tmp_path / ".env"
    env.write_text(SECRETS + "GATEWAY_PORT=18999\n")
    return Launcher(project_dir=ROOT, compose_file=ROOT / "docker-compose.yml", env_file=env, state_dir=tmp_path / "s")


def test_each_service_gets_its_own_command_with_local_paths(launcher: Launcher, tmp_path: Path):
    plans = {name: launcher.plan(launcher.services[name]) for name in launcher.order}
    assert plans["postgres"].kind == "postgres"
    worker = plans["worker"]
    assert worker.kind == "process" and worker.argv == ["mlops", "worker"]
    assert worker.env["MLOPS_STATE_DIR"] == str(tmp_path / "s" / "volumes" / "lake")
    assert worker.env["PREFECT_API_URL"] == "http://127.0.0.1:4200/api"
    assert worker.env["MLOPS_SERVING_URL"] == "http://127.0.0.1:18999"
    gateway = plans["gateway"]
    assert gateway.argv[1:] == [
        "-m", "services.gateway", "--listen", "127.0.0.1:18999", "--upstream", "127.0.0.1:8001",
        "--upstream", "127.0.0.1:8002",
    ]  # fmt: skip
    for name, binary in (("prometheus", "prometheus"), ("pushgateway", "pushgateway"), ("grafana", "grafana")):
        # run when the machine has the program, skipped (and said why) when it has not
        expected = "process" if shutil.which(binary) else "skipped"
        assert plans[name].kind == expected and (expected == "process" or binary in plans[name].note)


def test_a_port_in_use_is_refused_before_anything_starts(launcher: Launcher):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 18999))
        busy.listen()
        plans = [launcher.plan(launcher.services["gateway"])]  # other default ports may be taken on this machine
        with pytest.raises(
            LauncherError, match=r"port 18999 \(gateway\) is already in use .* set GATEWAY_PORT in \.env"
        ):
            launcher.check_ports(plans)


def test_a_missing_secret_stops_the_launcher_with_the_variable_named(tmp_path: Path, monkeypatch):
    for key in ("POSTGRES_PASSWORD", "MLOPS_ADMIN_TOKEN", "GRAFANA_ADMIN_PASSWORD"):
        monkeypatch.delenv(key, raising=False)
    env = tmp_path / ".env"
    env.write_text((ROOT / ".env.example").read_text())
    with pytest.raises(ComposeError, match=r"required variable .* is missing a value"):
        Launcher(project_dir=ROOT, compose_file=ROOT / "docker-compose.yml", env_file=env, state_dir=tmp_path / "s")
    assert read_env_file(env)["POSTGRES_PASSWORD"] == ""
