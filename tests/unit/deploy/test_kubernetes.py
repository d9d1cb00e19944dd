"""The Kubernetes manifests: each overlay rendered by kustomize, valid against the API schemas of two
Kubernetes versions (offline, kubernetes-validate), and keeping our rules; each rule shown to catch
a broken copy."""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
from collections.abc import Callable
from typing import Any

import pytest
import yaml

from deploy import kubernetes_rules as rules
from tests.conftest import ROOT

KUBERNETES = ROOT / "deploy" / "kubernetes"
OVERLAYS = ["dev", "production", "prometheus-adapter"]
VERSIONS = ["1.33.0", "1.37.0"]  # two supported releases, the oldest and the newest the validator knows


def render(overlay: str) -> list[dict[str, Any]]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.fail("rendering the overlays needs kubectl (its built-in kustomize): install kubectl")
    out = subprocess.run([kubectl, "kustomize", str(KUBERNETES / "overlays" / overlay)], capture_output=True,
                         text=True, timeout=120)  # fmt: skip
    assert out.returncode == 0, out.stderr
    return [d for d in yaml.safe_load_all(out.stdout) if d]


@pytest.fixture(scope="module", params=OVERLAYS)
def rendered(request: pytest.FixtureRequest) -> list[dict[str, Any]]:
    return render(request.param)


@pytest.mark.parametrize("version", VERSIONS)
def test_every_object_is_valid_for_the_api(rendered, version: str):
    import kubernetes_validate

    for doc in rendered:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as err:
            pytest.fail(f"{doc['kind']}/{doc['metadata']['name']} is invalid for {version}: {err.message}")


def test_every_overlay_keeps_every_rule(rendered):
    assert rules.violations(rendered) == []


def test_the_stack_is_all_there(rendered):
    names = {(d["kind"], d["metadata"]["name"]) for d in rendered}
    for workload in ("serving", "mlflow", "prefect-server", "worker", "stream", "dask-scheduler", "dask-worker"):
        assert ("Deployment", workload) in names, workload
    assert {("StatefulSet", "redis"), ("Job", "bootstrap"), ("Ingress", "serving"), ("Secret", "mlops-secrets"),
            ("PodDisruptionBudget", "serving"), ("HorizontalPodAutoscaler", "serving")} <= names  # fmt: skip
    assert all(d["metadata"].get("namespace") == "mlops" for d in rendered if d["kind"] != "Namespace")


def test_production_takes_its_secrets_from_its_env_file_and_pins_its_registry():
    docs = render("production")
    secret = next(d for d in docs if d["kind"] == "Secret")
    example = dict(
        line.split("=", 1) for line in (KUBERNETES / "overlays/production/secrets.env.example").read_text().split()
    )
    assert set(secret["data"]) == set(example)  # every key the pods read, from the file
    images = {c["image"] for _, c, _ in rules.containers(docs) if "mlops-loop" in c["image"]}
    assert images == {"registry.example.com/mlops-loop/serving:0.1.0", "registry.example.com/mlops-loop/platform:0.1.0"}


def test_the_adapter_overlay_scales_on_requests_per_second_too():
    hpa = next(d for d in render("prometheus-adapter") if d["kind"] == "HorizontalPodAutoscaler")
    kinds = {m["type"]: m for m in hpa["spec"]["metrics"]}
    assert kinds["Resource"]["resource"]["name"] == "cpu"
    assert kinds["Pods"]["pods"]["metric"]["name"] == "mlops_requests_per_second"
    rule = yaml.safe_load((KUBERNETES / "overlays/prometheus-adapter/adapter-rule.yaml").read_text())[0]
    from services.serving.telemetry import ServiceMetrics

    exposed = {m.name + "_total" for m in ServiceMetrics().registry.collect() if m.type == "counter"}
    assert rule["seriesQuery"].split("{")[0] in exposed and rule["name"]["as"] == "mlops_requests_per_second"


def test_the_kubernetes_work_pool_runs_each_flow_as_a_job_that_keeps_the_rules():
    import kubernetes_validate

    template = (KUBERNETES / "prefect" / "kubernetes-work-pool.json").read_text()
    values = {"name": "retrain-1", "namespace": "mlops", "labels": {"app": "x"}, "image": "r.example.com/p:0.1.0",
              "command": ["prefect", "flow-run", "execute"], "env": [], "cpu": "2", "memory": "3Gi",
              "finished_job_ttl": 3600}  # fmt: skip
    job = json.loads(rules.fill_template(template, values))["job_configuration"]["job_manifest"]
    job["metadata"] = {"name": "retrain-1", "namespace": "mlops"}
    for version in VERSIONS:
        kubernetes_validate.validate(job, version, strict=True)
    assert [v for v in rules.violations([job]) if not v.startswith(("no default-deny", "no Deployment"))] == []


Breakage = Callable[[list[dict[str, Any]]], None]


def _container(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    doc = next(d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name)
    return doc["spec"]["template"]["spec"]["containers"][0]


def _doc(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    return next(d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name)


@pytest.mark.parametrize(
    ("breakage", "expected"),
    [
        (lambda d: _container(d, "Deployment", "mlflow").pop("livenessProbe"),
         "Deployment/mlflow/mlflow: no livenessProbe"),
        (lambda d: _container(d, "Deployment", "stream")["resources"].pop("limits"),
         "Deployment/stream/stream: no limits"),
        (lambda d: _container(d, "Deployment", "serving")["securityContext"].update(readOnlyRootFilesystem=False),
         "Deployment/serving/serving: the root file system is writable"),
        (lambda d: _doc(d, "StatefulSet", "redis")["spec"]["template"]["spec"]["securityContext"].pop("runAsNonRoot"),
         "StatefulSet/redis/redis: runAsNonRoot is not set"),
        (lambda d: _container(d, "Deployment", "worker").update(image="mlops-loop/platform:latest"),
         "Deployment/worker/worker: image 'mlops-loop/platform:latest' is not pinned"),
        (lambda d: _container(d, "Deployment", "serving")["env"].append({"name": "MLOPS_ADMIN_TOKEN", "value": "x"}),
         "MLOPS_ADMIN_TOKEN is a literal; take it from a Secret"),
        (lambda d: _doc(d, "ConfigMap", "mlops-config")["data"].update(
            MLOPS_PREDICTION_LOG_URL="postgresql://mlops:hunter2@db/serving"), "is a credential in a ConfigMap"),
        (lambda d: d.remove(_doc(d, "NetworkPolicy", "default-deny")), "no default-deny NetworkPolicy"),
        (lambda d: _doc(d, "NetworkPolicy", "serving-ingress")["spec"]["ingress"][0]["from"].append(
            {"podSelector": {}}), "beyond the gateway and the pipelines"),
        (lambda d: _doc(d, "NetworkPolicy", "postgres-egress")["spec"]["podSelector"].update(matchLabels={}),
         "opens PostgreSQL to pods not labelled mlops.io/database"),
        (lambda d: d.remove(_doc(d, "PodDisruptionBudget", "serving")), "no PodDisruptionBudget selects it"),
        (lambda d: _container(d, "Deployment", "serving")["readinessProbe"]["httpGet"].update(path="/health"),
         "readiness is not /ready"),
        (lambda d: _doc(d, "Deployment", "stream")["spec"]["template"]["metadata"].pop("annotations"),
         "Deployment/stream: no prometheus.io/scrape annotation"),
    ],
    ids=["probe", "limits", "read-only", "non-root", "latest", "literal-secret", "configmap-secret", "default-deny",
         "serving-peer", "postgres-egress", "pdb", "readiness", "scrape"],
)  # fmt: skip
def test_each_rule_catches_its_violation(breakage: Breakage, expected: str):
    docs = copy.deepcopy(render("production"))
    assert rules.violations(docs) == []
    breakage(docs)
    found = rules.violations(docs)
    assert any(expected in v for v in found), found
