"""docker-compose.yml without a Docker engine: the Compose Specification's schema, our rules, the wiring.

What Compose makes of the file when it runs (interpolation, start order, health) the Docker tests
see on a real engine (tests/e2e/docker/).
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from deploy import rules
from deploy.rules import load
from tests.conftest import ROOT

COMPOSE = ROOT / "docker-compose.yml"


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
    broken["services"]["gateway"]["depends_on"]["serving"]["condition"] = "service_ready"
    errors = rules.schema_errors(broken)
    assert any("retries" in e for e in errors) and any("service_ready" in e for e in errors)


def test_the_file_keeps_every_rule(data):
    assert rules.violations(data) == []


def test_the_stack_has_every_service_the_loop_needs(data):
    assert {
        "postgres", "mlflow", "prefect-server", "worker", "serving", "gateway", "prometheus", "grafana", "evidently",
    } <= set(data["services"])  # fmt: skip


@pytest.mark.parametrize(
    ("breakage", "expected"),
    [
        (lambda d: d["services"]["mlflow"].pop("healthcheck"), "mlflow: a long-running service needs a healthcheck"),
        (
            lambda d: d["services"]["gateway"]["depends_on"].update({"serving": {"condition": "service_started"}}),
            "gateway: depends on serving with condition service_started",
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
        (lambda d: d["services"]["serving"]["environment"].pop("DO_NOT_TRACK"), "serving: telemetry switches"),
        (
            lambda d: d["services"]["mlflow"].update(ports=["127.0.0.1:5000:${MLFLOW_PORT}"]),
            "mlflow: port '127.0.0.1:5000:${MLFLOW_PORT}': the container side must be a fixed number",
        ),
        (
            lambda d: d["services"]["serving"].update(ports=["127.0.0.1:8001:8000"]),
            "serving: port '127.0.0.1:8001:8000' is published by a replicated service",
        ),
        (
            lambda d: d["services"]["worker"]["volumes"].append("/var/run/docker.sock:/var/run/docker.sock:ro"),
            "worker: mounts the engine's socket",
        ),
        (lambda d: d["services"]["flow-worker"].pop("group_add"), "flow-worker: reaches the engine's socket"),
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
        "internal-port",
        "replicated-port",
        "engine-socket",
        "engine-socket-group",
    ],
)
def test_each_rule_catches_its_violation(broken, breakage, expected):
    breakage(broken)
    found = rules.violations(broken)
    assert any(v.startswith(expected) for v in found), found


ENV_VARIABLE = re.compile(r"^([A-Z][A-Z0-9_]*)=", re.M)


def test_every_variable_the_file_uses_is_documented_in_env_example():
    used = set(re.findall(r"\$\{([A-Z0-9_]+)", COMPOSE.read_text()))
    documented = set(ENV_VARIABLE.findall((ROOT / ".env.example").read_text()))
    assert used - documented == set()


def test_each_secret_is_required_with_a_message_that_names_the_file(data):
    text = COMPOSE.read_text()
    for secret in ("POSTGRES_PASSWORD", "MLOPS_ADMIN_TOKEN", "GRAFANA_ADMIN_PASSWORD"):
        uses = re.findall(rf"\$\{{{secret}[^}}]*\}}", text)
        assert uses and set(uses) == {f"${{{secret}:?set {secret} in .env (see .env.example)}}"}, uses


def test_the_service_is_replicated_behind_nginx_and_shares_one_state(data):
    services = data["services"]
    serving, gateway = services["serving"], services["gateway"]
    assert serving["deploy"]["replicas"] == 2 and "ports" not in serving  # reached through the gateway only
    assert serving["command"][-1] == "8000" and serving["healthcheck"]["test"][-1] == "http://127.0.0.1:8000/ready"
    env = serving["environment"]
    assert env["MLOPS_STATE_DB_URL"] == env["MLOPS_PREDICTION_LOG_URL"] and env["MLOPS_DEV_MODE"] == "false"
    assert gateway["image"].startswith("nginx:") and gateway["ports"] == [
        "127.0.0.1:${GATEWAY_PORT:-8000}:8000",
        "127.0.0.1:${GATEWAY_TLS_PORT:-8443}:8443",  # TLS, once `make certs` has put a certificate in
    ]
    assert "./deploy/nginx/nginx.conf:/etc/nginx/nginx.conf:ro" in gateway["volumes"]
    assert "${GATEWAY_TLS_DIR:-./deploy/nginx/tls}:/etc/nginx/tls:ro" in gateway["volumes"]
    assert services["worker"]["environment"]["MLOPS_SERVING_URL"] == "http://gateway:8000"


def test_nginx_balances_per_request_retries_safely_and_keeps_the_body_limit(data):
    conf = (ROOT / "deploy" / "nginx" / "nginx.conf").read_text()
    proxy = (ROOT / "deploy" / "nginx" / "mlops-proxy.conf").read_text()
    assert re.search(r"server serving:8000 resolve\b", conf) and "zone serving" in conf  # replicas found by name
    assert re.search(r"^\s*keepalive \d+;", conf, re.M) and 'proxy_set_header Connection "";' in proxy
    locations = dict(re.findall(r"location (= /predict|/) \{(.*?)\}", conf, re.S))
    # a prediction is retried elsewhere on any failure to answer; other calls only when unreachable,
    # so that a 503 shared by every replica (its database restarting) marks none of them down
    assert "proxy_next_upstream error timeout http_502 http_503 http_504 non_idempotent;" in locations["= /predict"]
    assert "proxy_next_upstream error timeout non_idempotent;" in locations["/"]
    assert all("include /etc/nginx/mlops-proxy.conf;" in body for body in locations.values())
    assert "proxy_set_header X-Request-ID $mlops_request_id;" in proxy and "X-Forwarded-For" in proxy
    assert "$upstream_addr" in conf and "$upstream_response_time" in conf  # the access log
    limit = re.search(r"client_max_body_size (\d+)m;", conf)
    served = int(data["services"]["serving"]["environment"]["MLOPS_MAX_BODY_BYTES"])
    assert limit and int(limit.group(1)) * 1024 * 1024 == served
    mounted = data["services"]["gateway"]["volumes"]
    assert "./deploy/nginx/mlops-proxy.conf:/etc/nginx/mlops-proxy.conf:ro" in mounted


def stages(dockerfile: str) -> dict[str, tuple[str, str]]:
    """Stage name -> (what it is built FROM, its instructions)."""
    parts = re.split(r"^FROM\s+(\S+)\s+AS\s+([\w-]+)\s*$", dockerfile, flags=re.M)
    return {name: (base, body) for base, name, body in zip(parts[1::3], parts[2::3], parts[3::3], strict=True)}


def test_the_serving_image_is_built_without_pipeline_libraries(data):
    assert data["services"]["serving"]["build"]["target"] == "serving"
    assert {s["build"]["target"] for s in data["services"].values() if "build" in s} == {"serving", "platform"}
    built = stages((ROOT / "deploy" / "Dockerfile").read_text())
    # serving: its dependencies and the code, nothing from the pipelines extra anywhere in its chain
    chain, name = [], "serving"
    while name in built:
        chain.append(built[name][1])
        name = built[name][0]
    steps = "\n".join(line for body in chain for line in body.splitlines() if not line.lstrip().startswith("#"))
    assert "-c constraints.txt" in steps and "slim-site-packages" in steps
    assert "optional-dependencies" not in steps and "[pipelines" not in steps
    assert "('prefect', 'great_expectations', 'evidently', 'mlflow')" in steps  # the build checks it
    # both images take the one copy of the code, after their dependency layers
    assert built["serving"][0] == "serving-deps" and built["platform"][0] == "platform-deps"
    assert built["platform-deps"][0] == "serving-deps" and built["source"][0] == "scratch"
    assert all("COPY --from=source /app /app" in built[image][1] for image in ("serving", "platform"))


def test_prometheus_finds_every_replica_by_name_and_scrapes_the_pushgateway(data):
    config = yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert jobs["serving"]["dns_sd_configs"] == [
        {"names": ["serving"], "type": "A", "port": 8000, "refresh_interval": "5s"}
    ]
    assert jobs["pipelines"]["static_configs"][0]["targets"] == ["pushgateway:9091"]
    assert data["services"]["pushgateway"]["command"] == ["--web.listen-address=0.0.0.0:9091"]


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


def test_the_stream_alert_rules_only_read_metrics_the_consumer_exposes(data):
    from pipelines.stream.consumer import StreamMetrics

    exposed = {m.name for m in StreamMetrics("bike_demand").registry.collect()}
    config = yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text())
    assert config["rule_files"] == ["/etc/prometheus/alerts.yml"]
    mounted = data["services"]["prometheus"]["volumes"]
    assert "./deploy/prometheus/alerts.yml:/etc/prometheus/alerts.yml:ro" in mounted
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    port = data["services"]["stream"]["environment"]["MLOPS_STREAM_METRICS_PORT"]
    assert jobs["stream"]["static_configs"][0]["targets"] == [f"stream:{port}"]
    rules = yaml.safe_load((ROOT / "deploy" / "prometheus" / "alerts.yml").read_text())["groups"][0]["rules"]
    read = {
        re.sub(r"_(total|bucket|count|sum)$", "", name)
        for rule in rules
        for name in re.findall(r"\b(mlops_[a-z_]+)", rule["expr"])
    }
    assert read and read <= exposed, read - exposed
    assert {"StreamAlertFiring", "StreamConsumerDown", "StreamBrokerDown"} <= {r["alert"] for r in rules}


def test_grafana_is_provisioned_from_files():
    provisioning = ROOT / "deploy" / "grafana" / "provisioning"
    source = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())["datasources"][0]
    assert source["type"] == "prometheus" and source["uid"] == "prometheus"
    provider = yaml.safe_load((provisioning / "dashboards" / "mlops.yml").read_text())["providers"][0]
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"


def test_the_postgres_init_script_creates_every_database_the_services_use(data):
    created = set(data["services"]["postgres"]["environment"]["MLOPS_DATABASES"].split(","))
    used = {
        value.rsplit("/", 1)[1]
        for spec in data["services"].values()
        for value in [*(spec.get("environment") or {}).values(), *(spec.get("command") or [])]
        if str(value).startswith("postgresql")
    }
    assert used == created == {"${MLFLOW_DB:-mlflow}", "${PREFECT_DB:-prefect}", "${SERVING_DB:-serving}"}
    script = (ROOT / "deploy" / "postgres" / "create-databases.sh").read_text()
    assert "MLOPS_DATABASES" in script and "CREATE DATABASE" in script
    assert Path(ROOT / "deploy" / "postgres" / "create-databases.sh").stat().st_mode & 0o111
