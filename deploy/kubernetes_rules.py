"""Our own rules for the Kubernetes manifests (deploy/kubernetes), beyond the API's schemas.

Each rule takes the rendered objects of an overlay (``kubectl kustomize``) and returns the
violations it finds as sentences that name the object; an empty list means they keep them all.
The tests run them on every overlay and on broken copies, to prove each rule can fail. The schemas
themselves are checked with kubernetes-validate, offline, for two Kubernetes versions.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from deploy.rules import SECRET_KEY, URL_PASSWORD

WORKLOADS = {"Deployment", "StatefulSet", "Job", "DaemonSet"}
DATABASE_PORT = 5432


def _name(doc: dict[str, Any]) -> str:
    return f"{doc['kind']}/{doc['metadata']['name']}"


def pod_spec(doc: dict[str, Any]) -> dict[str, Any] | None:
    return doc["spec"]["template"]["spec"] if doc.get("kind") in WORKLOADS else None


def containers(docs: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(object/container, the container, its pod spec) for every container of every workload."""
    for doc in docs:
        spec = pod_spec(doc)
        if spec is None:
            continue
        for container in [*spec.get("initContainers", []), *spec["containers"]]:
            yield f"{_name(doc)}/{container['name']}", container, spec


def probes(docs: list[dict[str, Any]]) -> list[str]:
    """A long-running container that listens is checked for readiness and liveness."""
    out = []
    for doc in docs:
        if doc["kind"] not in {"Deployment", "StatefulSet"}:
            continue
        for container in doc["spec"]["template"]["spec"]["containers"]:
            for probe in ("readinessProbe", "livenessProbe"):
                if container.get("ports") and probe not in container:
                    out.append(f"{_name(doc)}/{container['name']}: no {probe}")
    return out


def limits(docs: list[dict[str, Any]]) -> list[str]:
    out = []
    for where, container, _ in containers(docs):
        resources = container.get("resources", {})
        for kind in ("requests", "limits"):
            missing = [r for r in ("cpu", "memory") if r not in resources.get(kind, {})]
            if missing:
                out.append(f"{where}: no {kind} for {', '.join(missing)}")
    return out


def non_root(docs: list[dict[str, Any]]) -> list[str]:
    """Non-root, no privilege escalation, no capabilities, a read-only root file system."""
    out = []
    for where, container, spec in containers(docs):
        pod, own = spec.get("securityContext", {}), container.get("securityContext", {})
        if not own.get("runAsNonRoot", pod.get("runAsNonRoot")):
            out.append(f"{where}: runAsNonRoot is not set")
        if not own.get("readOnlyRootFilesystem"):
            out.append(f"{where}: the root file system is writable (readOnlyRootFilesystem)")
        if own.get("allowPrivilegeEscalation", True):
            out.append(f"{where}: allowPrivilegeEscalation is not false")
        if "ALL" not in own.get("capabilities", {}).get("drop", []):
            out.append(f"{where}: capabilities are not dropped (drop: [ALL])")
    return out


def pinned_images(docs: list[dict[str, Any]]) -> list[str]:
    out = []
    for where, container, _ in containers(docs):
        image = container["image"]
        tag = image.rsplit(":", 1)[1] if ":" in image.rsplit("/", 1)[-1] else None
        if "@sha256:" not in image and tag in (None, "latest"):
            out.append(f"{where}: image '{image}' is not pinned (a tag other than latest, or a digest)")
    return out


def _literal_secret(name: str, value: str) -> bool:
    return bool(SECRET_KEY.search(name) and value) or bool(URL_PASSWORD.search(value))


def secrets_from_secret_objects(docs: list[dict[str, Any]]) -> list[str]:
    """A credential reaches a pod only from a Secret (secretKeyRef), never as a literal or from a ConfigMap."""
    out = []
    for where, container, _ in containers(docs):
        for env in container.get("env", []):
            if "value" in env and _literal_secret(env["name"], str(env["value"])):
                out.append(f"{where}: {env['name']} is a literal; take it from a Secret (secretKeyRef)")
            ref = env.get("valueFrom", {}).get("configMapKeyRef")
            if ref and SECRET_KEY.search(env["name"]):
                out.append(f"{where}: {env['name']} comes from a ConfigMap; take it from a Secret")
        for arg in [*container.get("command", []), *container.get("args", [])]:
            if URL_PASSWORD.search(str(arg)):
                out.append(f"{where}: a command argument carries a password")
    for doc in docs:
        if doc["kind"] == "ConfigMap":
            for key, value in (doc.get("data") or {}).items():
                if _literal_secret(key, str(value)):
                    out.append(f"{_name(doc)}: {key} is a credential in a ConfigMap; put it in the Secret")
    return out


def network_policies(docs: list[dict[str, Any]]) -> list[str]:
    """Deny by default; only the gateway and the pipelines reach the service; only pods that keep state
    in it (mlops.io/database) reach PostgreSQL."""
    policies = [d for d in docs if d["kind"] == "NetworkPolicy"]
    out = []
    if not any(
        p["spec"]["podSelector"] == {} and set(p["spec"].get("policyTypes", [])) == {"Ingress", "Egress"}
        and not p["spec"].get("ingress") and not p["spec"].get("egress")
        for p in policies
    ):  # fmt: skip
        out.append("no default-deny NetworkPolicy (podSelector: {}, Ingress and Egress, no rules)")
    for p in policies:
        selected = p["spec"]["podSelector"].get("matchLabels", {})
        for rule in p["spec"].get("ingress", []):
            if not rule.get("from"):
                out.append(f"{_name(p)}: an ingress rule admits every source")
            if selected.get("app.kubernetes.io/name") == "serving":
                for peer in rule.get("from", []):
                    allowed = peer.get("podSelector", {}).get("matchLabels") == {"mlops.io/role": "pipeline"} or (
                        "namespaceSelector" in peer and "podSelector" not in peer
                    )
                    if not allowed:
                        out.append(f"{_name(p)}: admits {peer} to the service, beyond the gateway and the pipelines")
        for rule in p["spec"].get("egress", []):
            ports = {port.get("port") for port in rule.get("ports", [])}
            if DATABASE_PORT in ports and selected.get("mlops.io/database") != "true":
                out.append(f"{_name(p)}: opens PostgreSQL to pods not labelled mlops.io/database")
    return out


def serving_availability(docs: list[dict[str, Any]]) -> list[str]:
    """The service: readiness on /ready and liveness on /health, a PodDisruptionBudget, an autoscaler,
    and Prometheus scrape annotations."""
    by_kind = {(d["kind"], d["metadata"]["name"]): d for d in docs}
    serving = by_kind.get(("Deployment", "serving"))
    if serving is None:
        return ["no Deployment/serving"]
    out = []
    container = serving["spec"]["template"]["spec"]["containers"][0]
    if container.get("readinessProbe", {}).get("httpGet", {}).get("path") != "/ready":
        out.append("Deployment/serving: readiness is not /ready (ready once a model is loaded)")
    if container.get("livenessProbe", {}).get("httpGet", {}).get("path") != "/health":
        out.append("Deployment/serving: liveness is not /health")
    labels = serving["spec"]["selector"]["matchLabels"]
    if not any(d["kind"] == "PodDisruptionBudget" and d["spec"]["selector"]["matchLabels"] == labels for d in docs):
        out.append("Deployment/serving: no PodDisruptionBudget selects it")
    if not any(
        d["kind"] == "HorizontalPodAutoscaler" and d["spec"]["scaleTargetRef"]["name"] == "serving" for d in docs
    ):
        out.append("Deployment/serving: no HorizontalPodAutoscaler scales it")
    for name in ("serving", "stream"):
        workload = by_kind.get(("Deployment", name))
        annotations = workload["spec"]["template"]["metadata"].get("annotations", {}) if workload else {}
        if annotations.get("prometheus.io/scrape") != "true":
            out.append(f"Deployment/{name}: no prometheus.io/scrape annotation")
    return out


RULES = (probes, limits, non_root, pinned_images, secrets_from_secret_objects, network_policies, serving_availability)


def violations(docs: list[dict[str, Any]]) -> list[str]:
    return [v for rule in RULES for v in rule(docs)]


def fill_template(text: str, values: dict[str, Any]) -> str:
    """A Prefect job template's ``{{ placeholders }}`` filled with sample values (to validate its Job)."""
    return re.sub(r'"\{\{\s*(\w+)\s*\}\}"', lambda m: json.dumps(values[m.group(1)]), text)
