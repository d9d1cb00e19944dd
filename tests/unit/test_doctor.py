"""`mlops doctor`: each misconfiguration made on purpose, and the finding that names it with its fix."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from cli import doctor
from tests.conftest import ROOT

SECRET = "s" * 24
SAFE = {"MLOPS_ADMIN_TOKEN": SECRET}


def _checks(findings: list[doctor.Finding]) -> list[str]:
    return [f.check for f in findings]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of the project's deployment files, with TLS set up and nothing else wrong."""
    root = tmp_path / "project"
    root.mkdir()
    shutil.copy(ROOT / "docker-compose.yml", root)
    tls = root / "deploy" / "nginx" / "tls"
    tls.mkdir(parents=True)
    for name in ("listen.conf", "cert.pem"):
        (tls / name).write_text("x")
    (tls / "key.pem").write_text("x")
    (tls / "key.pem").chmod(0o600)
    state = root / ".mlops"
    state.mkdir(mode=0o700)
    return root


def test_a_sound_configuration_has_no_finding(project):
    assert doctor.audit_configuration(project, SAFE, state_dir=project / ".mlops") == []


@pytest.mark.parametrize(
    ("env", "check", "words"),
    [
        ({}, "default-token", "public default"),  # nothing set: the service's default token
        ({"MLOPS_ADMIN_TOKEN": "change-me"}, "default-token", "'change-me'"),
        ({"MLOPS_ADMIN_TOKEN": "short1"}, "short-token", "6 characters"),
        ({**SAFE, "MLOPS_READ_TOKEN": SECRET}, "shared-token", "whoever reads may also change"),
        ({**SAFE, "MLOPS_DEV_MODE": "true"}, "dev-mode", "MLOPS_DEV_MODE is on"),
        ({**SAFE, "MLOPS_HOST": "0.0.0.0"}, "published-port", "MLOPS_HOST=0.0.0.0"),
        (
            {**SAFE, "MLOPS_PREDICTION_LOG_URL": "postgresql+psycopg://u:p@db.example.com:5432/serving"},
            "database-without-tls",
            "db.example.com",
        ),
        ({**SAFE, "MLOPS_TRACKING_URI": "http://mlflow:5000"}, "mlflow-without-auth", "without credentials"),
        ({**SAFE, "MLOPS_TRACKING_URI": "http://mlflow.example.com"}, "tracking-without-tls", "plain HTTP"),
    ],
)
def test_each_misconfigured_setting_is_found_with_its_fix(project, env, check, words):
    findings = [f for f in doctor.audit_configuration(project, env, state_dir=project / ".mlops") if f.check == check]
    assert findings and words in findings[0].problem and findings[0].fix


def test_a_private_database_or_one_with_tls_is_fine():
    private = {"MLOPS_STATE_DB_URL": "postgresql+psycopg://u:p@postgres:5432/serving"}  # a compose service
    verified = {"MLOPS_STATE_DB_URL": "postgresql+psycopg://u:p@db.example.com/serving?sslmode=verify-full"}
    internal = {"MLOPS_STATE_DB_URL": "postgresql+psycopg://u:p@10.1.2.3/serving"}
    assert doctor.check_database_tls(private) == doctor.check_database_tls(verified) == []
    assert doctor.check_database_tls(internal) == []
    authenticated = {"MLOPS_TRACKING_URI": "http://mlflow:5000", "MLFLOW_TRACKING_USERNAME": "loop"}
    assert doctor.check_mlflow_auth(authenticated) == []


def test_a_port_published_on_every_interface_is_found(project):
    compose = project / "docker-compose.yml"
    compose.write_text(
        compose.read_text().replace("127.0.0.1:${GATEWAY_PORT:-8000}:8000", "${GATEWAY_PORT:-8000}:8000")
    )
    (finding,) = doctor.check_published_ports(compose, {"GATEWAY_PORT": "8080"})
    assert "'gateway' publishes '8080:8000' on every interface" in finding.problem
    assert "127.0.0.1:8080:8000" in finding.fix


def test_world_readable_secrets_and_state_are_found(project):
    (project / ".env").write_text("MLOPS_ADMIN_TOKEN=x\n")
    (project / ".env").chmod(0o644)
    (project / ".mlops").chmod(0o755)
    found = doctor.audit_configuration(project, SAFE, state_dir=project / ".mlops")
    assert [f.problem.split()[0] for f in found if f.check == "world-readable"] == [
        str(project / ".mlops"),
        str(project / ".env"),
    ]


def test_secrets_committed_to_the_repository_are_found(project):
    subprocess.run(["git", "init", "-q", str(project)], check=True)
    (project / ".env").write_text(f"MLOPS_ADMIN_TOKEN={SECRET}\n")
    (project / ".env").chmod(0o600)
    subprocess.run(["git", "-C", str(project), "add", "-f", ".env", "deploy/nginx/tls/key.pem"], check=True)
    found = [f for f in doctor.audit_configuration(project, SAFE, state_dir=project / ".mlops")]
    assert {f.problem for f in found if f.check == "committed-secret"} == {
        ".env is in the repository",
        "deploy/nginx/tls/key.pem is in the repository",
    }


def test_no_certificate_at_the_gateway_is_found(project):
    (project / "deploy" / "nginx" / "tls" / "listen.conf").unlink()
    (finding,) = doctor.check_gateway_tls(project)
    assert finding.check == "no-tls" and "make certs" in finding.fix


def test_settings_come_from_env_files_and_secret_files_as_the_processes_read_them(tmp_path):
    (tmp_path / ".env").write_text("MLOPS_DEV_MODE=true\n# MLOPS_ADMIN_TOKEN=commented\nMLOPS_READ_TOKEN='r'\n")
    secret = tmp_path / "admin"
    secret.write_text(SECRET + "\n")
    env = doctor.read_environment(tmp_path, {"MLOPS_ADMIN_TOKEN_FILE": str(secret), "MLOPS_READ_TOKEN": "rr"})
    assert env["MLOPS_DEV_MODE"] == "true" and env["MLOPS_ADMIN_TOKEN"] == SECRET and env["MLOPS_READ_TOKEN"] == "rr"
