"""docker-compose.yml without a Docker engine: the Compose Specification's schema, our rules, the wiring."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from deploy import rules
from deploy.compose import ComposeError, load, read_env_file, services, start_order
from tests.conftest import ROOT

COMPOSE = ROOT / "docker-compose.yml"
SECRETS = {"POSTGRES_PASSWORD": "pw-0123456789", "MLOPS_ADMIN_TOKEN": "t" * 24, "GRAFANA_ADMIN_PASSWORD": "g" * 16}


@pytest.fixture(scope="module")
def data() -> dict[str, Any]:
    return load(COMPOSE)


@pytest.fixture
def broken(data: dict[str, Any]) -> dict[str, Any]:
    return copy.deepcopy(data)


def test_the_file_is_valid_against_the_compose_specification(data):
    assert rules.schema_errors(data) == []


def test_the_schema_check_catches_an_invalid_file(broken):
    broken["services"]["mlflow"]["healthcheck"]["retries"] = "many"
    broken["services"]["gateway"]["depends_on"]["serving-1"]["condition"] = "service_ready"
    errors = rules.schema_errors(broken)
    assert any("retries" in e for e in errors) and any("service_ready" in e for e in errors)


def test_the_file_keeps_every_rule(data):
    assert rules.violations(data) == []


def test_the_stack_has_every_service_the_loop_needs(data):
    assert {
        "postgres", "mlflow", "prefect-server", "worker", "serving-1", "serving-2", "gateway",
        "prometheus", "grafana", "evidently",
    } <= set(data["services"])  # fmt: skip


@pytest.mark.parametrize(
    ("breakage", "expected"),
    [
        (lambda d: d["services"]["mlflow"].pop("healthcheck"), "mlflow: a long-running service needs a healthcheck"),
        (
            lambda d: d["services"]["gateway"]["depends_on"].update({"serving-1": {"condition": "service_started"}}),
            "gateway: depends on serving-1 with condition service_started",
        ),
        (lambda d: d["services"]["mlflow"].update(ports=["5000:5000"]), "mlflow: port '5000:5000' is published"),
        (lambda d: d["services"]["worker"].pop("restart"), "worker: no restart policy"),
        (
            lambda d: d["services"]["grafana"]["environment"].update(GF_SECURITY_ADMIN_PASSWORD="admin"),
            "grafana: GF_SECURITY_ADMIN_PASSWORD must be a required variable",
        ),
        (
            lambda d: d["services"]["grafana"]["environment"].update(
                GF_SECURITY_ADMIN_PASSWORD="${GRAFANA_ADMIN_PASSWORD:-admin}"
            ),
            "grafana: GF_SECURITY_ADMIN_PASSWORD must be a required variable",
        ),
        (
            lambda d: d["services"]["mlflow"]["command"].__setitem__(3, "postgresql://postgres:hunter2@postgres/m"),
            "mlflow: command: a URL carries a password",
        ),
        (lambda d: d["services"]["worker"]["volumes"].append("cache:/data/cache"), "worker: volume 'cache' is not"),
        (lambda d: d["services"]["gateway"]["environment"].pop("DO_NOT_TRACK"), "gateway: telemetry switches"),
    ],
    ids=[
        "healthcheck",
        "condition",
        "loopback",
        "restart",
        "secret-literal",
        "secret-default",
        "url",
        "volume",
        "telemetry",
    ],
)
def test_each_rule_catches_its_violation(broken, breakage, expected):
    breakage(broken)
    found = rules.violations(broken)
    assert any(v.startswith(expected) for v in found), found


def test_every_variable_the_file_uses_is_documented_in_env_example():
    used = set(re.findall(r"\$\{([A-Z0-9_]+)", COMPOSE.read_text()))
    documented = set(read_env_file(ROOT / ".env.example"))
    assert used - documented == set()


def test_a_missing_secret_is_a_clear_error(data):
    env = read_env_file(ROOT / ".env.example")  # as copied, secrets still empty
    with pytest.raises(
        ComposeError,
        match=r"required variable (POSTGRES_PASSWORD|MLOPS_ADMIN_TOKEN|GRAFANA_ADMIN_PASSWORD) "
        r"is missing a value: set \w+ in \.env",
    ):
        services(data, env)


def test_env_example_with_its_secrets_set_yields_the_documented_defaults(data):
    env = {**read_env_file(ROOT / ".env.example"), **SECRETS}
    stack = services(data, env)
    assert stack["gateway"].ports[0].target == 8000
    assert stack["serving-1"].environment["MLOPS_ADMIN_TOKEN"] == SECRETS["MLOPS_ADMIN_TOKEN"]
    assert stack["serving-1"].environment["MLOPS_DEV_MODE"] == "false"
    # the replicas share one rollout state and one prediction log
    urls = {stack[r].environment["MLOPS_STATE_DB_URL"] for r in ("serving-1", "serving-2")}
    assert urls == {f"postgresql+psycopg://postgres:{SECRETS['POSTGRES_PASSWORD']}@postgres:5432/serving"}
    # each service listens on a port of its own, so the same file runs without containers
    targets = [p.target for s in stack.values() for p in s.ports]
    assert len(targets) == len(set(targets))


def test_services_start_after_what_they_need(data):
    order = start_order(services(data, {**read_env_file(ROOT / ".env.example"), **SECRETS}))
    before = lambda a, b: order.index(a) < order.index(b)  # noqa: E731
    assert before("postgres", "mlflow") and before("postgres", "prefect-server")
    assert before("mlflow", "bootstrap") and before("bootstrap", "serving-1") and before("bootstrap", "worker")
    assert before("serving-1", "gateway") and before("serving-2", "gateway")


def test_a_dependency_cycle_is_reported(data):
    cyclic = copy.deepcopy(data)
    cyclic["services"]["postgres"]["depends_on"] = {"gateway": {"condition": "service_healthy"}}
    with pytest.raises(ComposeError, match="dependency cycle"):
        start_order(services(cyclic, {**read_env_file(ROOT / ".env.example"), **SECRETS}))


def test_the_serving_replicas_and_the_gateway_use_the_image_without_pipeline_libraries(data):
    for name in ("serving-1", "serving-2", "gateway"):
        assert data["services"][name]["build"]["target"] == "serving", name
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
    assert re.search(r"^FROM .* AS serving$", dockerfile, re.M) and re.search(
        r"^FROM serving AS platform$", dockerfile, re.M
    )
    # the serving stage installs the base dependencies only, from the pinned constraints
    serving_stage = dockerfile.split("FROM serving AS platform")[0]
    steps = "\n".join(line for line in serving_stage.splitlines() if not line.lstrip().startswith("#"))
    assert "-c constraints.txt" in steps
    assert "optional-dependencies" not in steps and "[pipelines" not in steps
    assert "find_spec(m) for m in ('prefect', 'great_expectations', 'evidently')" in steps  # the build checks it


def test_prometheus_scrapes_both_replicas_and_the_pushgateway_at_their_default_ports(data):
    env = {**read_env_file(ROOT / ".env.example"), **SECRETS}
    stack = services(data, env)
    config = yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text())
    targets = {t for job in config["scrape_configs"] for sc in job["static_configs"] for t in sc["targets"]}
    expected = {f"{name}:{stack[name].ports[0].target}" for name in ("serving-1", "serving-2", "pushgateway")}
    assert targets == expected


def test_the_dashboard_only_queries_metrics_that_exist():
    from pipelines.metrics import GAUGES
    from services.serving.telemetry import ServiceMetrics

    exposed = {m.name for m in ServiceMetrics().registry.collect()} | set(GAUGES)
    dashboard = json.loads((ROOT / "deploy" / "grafana" / "dashboards" / "mlops.json").read_text())
    queried = {
        re.sub(r"_(total|bucket|count|sum)$", "", name)
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in re.findall(r"\b(mlops_[a-z_]+)", target["expr"])
    }
    assert queried and queried <= exposed, queried - exposed
    titles = " ".join(p["title"].lower() for p in dashboard["panels"])
    for topic in ("traffic split", "latency", "error rate", "rollout", "drift share", "quarantined"):
        assert topic in titles


def test_grafana_is_provisioned_from_files():
    provisioning = ROOT / "deploy" / "grafana" / "provisioning"
    source = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())["datasources"][0]
    assert source["type"] == "prometheus" and source["uid"] == "prometheus"
    provider = yaml.safe_load((provisioning / "dashboards" / "mlops.yml").read_text())["providers"][0]
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"


def test_the_postgres_init_script_creates_every_database_the_services_use(data):
    env = {**read_env_file(ROOT / ".env.example"), **SECRETS}
    stack = services(data, env)
    created = set(stack["postgres"].environment["MLOPS_DATABASES"].split(","))
    used = {
        url.rsplit("/", 1)[1]
        for s in stack.values()
        for url in [*s.environment.values(), *s.command]
        if url.startswith("postgresql")
    }
    assert used == created == {"mlflow", "prefect", "serving"}
    script = (ROOT / "deploy" / "postgres" / "create-databases.sh").read_text()
    assert "MLOPS_DATABASES" in script and "CREATE DATABASE" in script
    assert Path(ROOT / "deploy" / "postgres" / "create-databases.sh").stat().st_mode & 0o111
