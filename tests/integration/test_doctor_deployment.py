"""`mlops doctor --url` against a real service process: a service that takes the public token is found."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pipelines.traffic import running_service
from tests.conftest import ROOT

STRONG = "doctor-test-token-0123456789"


@pytest.mark.parametrize(("env", "found"), [({"MLOPS_DEV_MODE": "true"}, True), ({"MLOPS_ADMIN_TOKEN": STRONG}, False)])
def test_the_doctor_probes_a_running_service_for_the_public_token(trained_state: Path, tmp_path: Path, env, found):
    state = tmp_path / "state"
    shutil.copytree(trained_state, state, ignore=shutil.ignore_patterns("predictions.db*"))
    service_env = {"MLOPS_DEV_MODE": "false", **env}
    with running_service(
        use_case="bike_demand", state_dir=state, log_path=tmp_path / "serve.log", env=service_env
    ) as url:
        doctor_env = {k: v for k, v in os.environ.items() if not k.startswith("MLOPS_")}
        done = subprocess.run(
            [str(Path(sys.executable).parent / "mlops"), "doctor", "--url", url, "--json", "--root", str(tmp_path)],
            cwd=ROOT,
            env={**doctor_env, "MLOPS_ADMIN_TOKEN": STRONG},
            capture_output=True,
            text=True,
            timeout=120,
        )
    findings = json.loads(done.stdout)
    probed = [f for f in findings if f["check"] == "default-token"]
    assert bool(probed) is found, findings
    if found:
        assert f"{url} accepts the public token 'dev-admin-token'" in probed[0]["problem"]
    assert done.returncode == 1  # the configuration under tmp_path has no TLS at the gateway: always a finding
