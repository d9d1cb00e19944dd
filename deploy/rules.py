"""Our own rules for ``docker-compose.yml``, beyond the Compose Specification's schema.

Each rule returns the violations it finds as sentences that name the service;
an empty list means the file keeps them all. The tests run them on the real
file, and on broken copies to prove each rule can fail. (What Compose itself
makes of the file, interpolation and start order included, the Docker tests
see by running it.)
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

SCHEMA = Path(__file__).with_name("schema") / "compose-spec.json"
# Environment keys that hold a secret, and URLs that carry a password.
SECRET_KEY = re.compile(r"(PASSWORD|TOKEN|SECRET|API_KEY)$")
URL_PASSWORD = re.compile(r"://[^/:@\s]+:(?P<password>\$\{[^}]*\}|[^@\s]+)@")
REQUIRED_VAR = re.compile(r"^\$\{[A-Z0-9_]+:\?[^}]+\}$")
TELEMETRY = {"DO_NOT_TRACK": "true", "MLFLOW_DISABLE_TELEMETRY": "true", "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
HEALTHY_CONDITIONS = {"service_healthy", "service_completed_successfully"}


def schema_errors(data: dict[str, Any]) -> list[str]:
    """Violations of the Compose Specification's JSON schema (vendored in deploy/schema/)."""
    from jsonschema import Draft201909Validator

    validator = Draft201909Validator(json.loads(SCHEMA.read_text()))
    return [
        f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
        for e in sorted(validator.iter_errors(data), key=str)
    ]


def load(compose_file: Path) -> dict[str, Any]:
    """The file as parsed YAML: anchors and ``<<`` merges resolved, variables not interpolated."""
    data = yaml.safe_load(compose_file.read_text())
    if not isinstance(data, dict) or not isinstance(data.get("services"), dict):
        raise ValueError(f"{compose_file} has no 'services' mapping")
    return data


def _environment(spec: dict[str, Any]) -> dict[str, str]:
    env = spec.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.partition("=")[::2] for item in env)
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


def one_shot(data: dict[str, Any]) -> set[str]:
    """Services that others wait for to *complete* (bootstrap jobs), not to be healthy."""
    return {
        dep
        for spec in data["services"].values()
        for dep, cond in (spec.get("depends_on") or {}).items()
        if isinstance(cond, dict) and cond.get("condition") == "service_completed_successfully"
    }


def healthchecks(data: dict[str, Any]) -> list[str]:
    jobs = one_shot(data)
    return [
        f"{name}: a long-running service needs a healthcheck"
        for name, spec in data["services"].items()
        if name not in jobs and not (spec.get("healthcheck") or {}).get("test")
    ]


def dependencies(data: dict[str, Any]) -> list[str]:
    out = []
    services, jobs = data["services"], one_shot(data)
    for name, spec in services.items():
        deps = spec.get("depends_on") or {}
        if isinstance(deps, list):
            out.append(f"{name}: depends_on must give a condition (service_healthy), not a bare list")
            continue
        for dep, cond in deps.items():
            condition = (cond or {}).get("condition")
            if condition not in HEALTHY_CONDITIONS:
                out.append(f"{name}: depends on {dep} with condition {condition}, not service_healthy")
            elif condition == "service_healthy" and not (services.get(dep, {}).get("healthcheck") or {}).get("test"):
                out.append(f"{name}: waits for {dep} to be healthy, but {dep} has no healthcheck")
            elif condition == "service_completed_successfully" and dep not in jobs:
                out.append(f"{name}: {dep} is not a one-shot job")
    return out


def loopback_ports(data: dict[str, Any]) -> list[str]:
    out = []
    for name, spec in data["services"].items():
        for port in spec.get("ports") or []:
            text = str(port if not isinstance(port, dict) else port.get("host_ip", ""))
            if not text.startswith("127.0.0.1:") and not (isinstance(port, dict) and text == "127.0.0.1"):
                out.append(f"{name}: port '{port}' is published on every interface; bind it to 127.0.0.1")
    return out


def restart_policies(data: dict[str, Any]) -> list[str]:
    return [f"{name}: no restart policy" for name, spec in data["services"].items() if not spec.get("restart")]


def secrets(data: dict[str, Any]) -> list[str]:
    """Secrets come from .env as required variables (``${NAME:?why}``), never as literals or defaults."""
    out = []

    def check_url(where: str, text: str) -> None:
        for match in URL_PASSWORD.finditer(text):
            if not REQUIRED_VAR.match(match.group("password")):
                out.append(f"{where}: a URL carries a password that is not a required .env variable")

    for name, spec in data["services"].items():
        for key, value in _environment(spec).items():
            if SECRET_KEY.search(key) and not REQUIRED_VAR.match(value):
                out.append(f"{name}: {key} must be a required variable from .env (${{{key}:?...}}), not '{value}'")
            check_url(f"{name}: {key}", value)
        command = spec.get("command") or []
        for arg in [command] if isinstance(command, str) else command:
            check_url(f"{name}: command", str(arg))
    return out


def fixed_internal_ports(data: dict[str, Any]) -> list[str]:
    """Inside the stack a service listens on one fixed port; .env moves only the host side of a
    published port. (A variable container port would break every address that names it, and a
    host port on a scaled service would clash between its replicas.)"""
    out = []
    for name, spec in data["services"].items():
        for port in spec.get("ports") or []:
            container = str(port).rsplit(":", 1)[-1]
            if not container.isdigit():
                out.append(f"{name}: port '{port}': the container side must be a fixed number, not '{container}'")
            elif ((spec.get("deploy") or {}).get("replicas") or 1) > 1:
                out.append(f"{name}: port '{port}' is published by a replicated service; put it behind the gateway")
    return out


def named_volumes(data: dict[str, Any]) -> list[str]:
    """Durable data lives in declared named volumes; host binds are only for config and the inbox."""
    declared = set(data.get("volumes") or {})
    out = []
    for name, spec in data["services"].items():
        for item in spec.get("volumes") or []:
            source = str(item).split(":")[0] if not isinstance(item, dict) else str(item.get("source", ""))
            bind = source.startswith((".", "/", "~", "$"))
            if not bind and source not in declared:
                out.append(f"{name}: volume '{source}' is not declared under the top-level volumes")
            if source == ENGINE_SOCKET:
                continue  # its own rule, below: ":ro" would not stop a client from using it
            if bind and ":ro" not in str(item):
                out.append(f"{name}: host bind '{source}' should be read-only (durable data goes in named volumes)")
    return out


ENGINE_SOCKET = "/var/run/docker.sock"
ENGINE_SOCKET_USERS = frozenset({"flow-worker"})


def engine_socket(data: dict[str, Any]) -> list[str]:
    """The engine's socket is root on the host: only the flow worker gets it, through the socket's group."""
    out = []
    for name, spec in data["services"].items():
        sources = [str(item).split(":")[0] for item in spec.get("volumes") or [] if not isinstance(item, dict)]
        if ENGINE_SOCKET not in sources:
            continue
        if name not in ENGINE_SOCKET_USERS:
            out.append(f"{name}: mounts the engine's socket; only {sorted(ENGINE_SOCKET_USERS)} may")
        elif not spec.get("group_add"):
            out.append(f"{name}: reaches the engine's socket through its group: set group_add (DOCKER_GID)")
    return out


def telemetry(data: dict[str, Any]) -> list[str]:
    """Every process built from our image runs with telemetry off."""
    out = []
    for name, spec in data["services"].items():
        if "build" not in spec:
            continue
        env = _environment(spec)
        off = {k: v for k, v in TELEMETRY.items() if env.get(k) != v}
        if off:
            out.append(f"{name}: telemetry switches missing or on: {sorted(off)}")
    return out


RULES = (
    healthchecks,
    dependencies,
    loopback_ports,
    fixed_internal_ports,
    restart_policies,
    secrets,
    named_volumes,
    engine_socket,
    telemetry,
)


def violations(data: dict[str, Any]) -> list[str]:
    return [v for rule in RULES for v in rule(data)]
