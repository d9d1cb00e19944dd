"""The GitHub Actions workflow for forks runs what README promises."""

from __future__ import annotations

import yaml

from tests.conftest import ROOT


def test_the_workflow_lints_tests_and_runs_the_loop_with_artifacts():
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "ci.yml").read_text())
    jobs = workflow["jobs"]
    runs = {name: [step.get("run", "") for step in job["steps"]] for name, job in jobs.items()}
    assert "make lint" in runs["lint"]
    assert "make test" in runs["test"]  # the command README gives, as .ci/run runs it
    assert jobs["test"]["services"]["postgres"]["env"]["POSTGRES_HOST_AUTH_METHOD"] == "trust"
    assert any("install -y -qq redis-server" in run for run in runs["test"])  # the stream tests' broker
    assert "make demo" in runs["retraining-loop"]
    upload = next(
        s for s in jobs["retraining-loop"]["steps"] if s.get("uses", "").startswith("actions/upload-artifact")
    )
    assert ".mlops/demo-summary.json" in upload["with"]["path"] and ".mlops/reports/" in upload["with"]["path"]
    assert workflow["env"] == {
        "DO_NOT_TRACK": "true",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    }
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_make_test_brings_the_engine_for_the_docker_tests_and_stops_it_after_a_failure_too():
    makefile = (ROOT / "Makefile").read_text()
    recipe = makefile.split("\ntest: ")[1].split("\n\n")[0]
    assert "tests/docker/engine.sh up" in recipe
    # the engine is released whatever pytest returned, and pytest's status is what make returns
    assert "python -m pytest || status=$$?; tests/docker/engine.sh down; exit $$status" in recipe
