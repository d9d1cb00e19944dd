"""Reading ``docker-compose.yml`` the way Compose does: ``.env`` interpolation, dependencies, mounts, ports.

Pure functions over the parsed file, shared by the launcher (``deploy/launcher.py``)
and the tests that check the file's wiring without a Docker engine.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

# ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?error}, ${NAME?error}; $$ is a literal $
_VAR = re.compile(
    r"\$\$|\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}|\$(?P<bare>[A-Za-z_]\w*)"
)


class ComposeError(ValueError):
    """The compose file or its environment is not usable; the message says what to fix."""


def read_env_file(path: Path) -> dict[str, str]:
    """``KEY=value`` lines; blank lines and ``#`` comments are ignored, surrounding quotes removed."""
    values: dict[str, str] = {}
    if not path.exists():
        return values
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            raise ComposeError(f"{path}:{number}: expected KEY=value, got '{line}'")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        values[key.strip().removeprefix("export ").strip()] = value
    return values


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's variable substitution, with its error for a required variable that has no value."""

    def substitute(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group("name") or match.group("bare")
        op, arg = match.group("op"), match.group("arg") or ""
        value = env.get(name)
        empty = value is None or (value == "" and op is not None and op.startswith(":"))
        if op in (":-", "-"):
            return arg if (value is None or empty) else value
        if op in (":?", "?"):
            if value is None or empty:
                raise ComposeError(f"required variable {name} is missing a value: {arg or 'not set'}")
            return value
        return value or ""

    return _VAR.sub(substitute, text)


def interpolate_tree(node: Any, env: dict[str, str]) -> Any:
    if isinstance(node, str):
        return interpolate(node, env)
    if isinstance(node, list):
        return [interpolate_tree(item, env) for item in node]
    if isinstance(node, dict):
        return {key: interpolate_tree(value, env) for key, value in node.items()}
    return node


def load(compose_file: Path) -> dict[str, Any]:
    """The file as parsed YAML (anchors and ``<<`` merges resolved), not yet interpolated."""
    try:
        data = yaml.safe_load(compose_file.read_text())
    except yaml.YAMLError as err:
        raise ComposeError(f"{compose_file} is not valid YAML: {err}") from err
    if not isinstance(data, dict) or not isinstance(data.get("services"), dict):
        raise ComposeError(f"{compose_file} has no 'services' mapping")
    return data


@dataclass(frozen=True)
class Mount:
    source: str  # a named volume, or a host path for a bind mount
    target: str  # the path inside the container
    named: bool
    read_only: bool


@dataclass(frozen=True)
class Port:
    host_ip: str
    published: int
    target: int


@dataclass
class Service:
    name: str
    spec: dict[str, Any]  # interpolated
    raw: dict[str, Any] = field(default_factory=dict)  # as written, for messages that name variables

    @property
    def depends_on(self) -> dict[str, str]:
        deps = self.spec.get("depends_on") or {}
        if isinstance(deps, list):
            return {name: "service_started" for name in deps}
        return {name: (cond or {}).get("condition", "service_started") for name, cond in deps.items()}

    @property
    def environment(self) -> dict[str, str]:
        env = self.spec.get("environment") or {}
        if isinstance(env, list):
            env = dict(item.partition("=")[::2] for item in env)
        return {str(k): "" if v is None else str(v) for k, v in env.items()}

    @property
    def command(self) -> list[str]:
        cmd = self.spec.get("command") or []
        return cmd.split() if isinstance(cmd, str) else [str(c) for c in cmd]

    @property
    def healthcheck(self) -> list[str] | None:
        check = self.spec.get("healthcheck")
        if not check or check.get("disable"):
            return None
        test = check["test"]
        return ["CMD-SHELL", test] if isinstance(test, str) else [str(t) for t in test]

    @property
    def mounts(self) -> list[Mount]:
        out = []
        for item in self.spec.get("volumes") or []:
            if isinstance(item, dict):
                source, target = str(item.get("source", "")), str(item["target"])
                read_only = bool(item.get("read_only"))
            else:
                parts = str(item).split(":")
                source, target = parts[0], parts[1]
                read_only = len(parts) > 2 and "ro" in parts[2].split(",")
            named = not source.startswith((".", "/", "~"))
            out.append(Mount(source=source, target=target, named=named, read_only=read_only))
        return out

    @property
    def ports(self) -> list[Port]:
        out = []
        for item in self.spec.get("ports") or []:
            parts = str(item).split(":")
            if len(parts) != 3:
                raise ComposeError(f"service {self.name}: write ports as IP:HOST:CONTAINER, got '{item}'")
            out.append(Port(host_ip=parts[0], published=int(parts[1]), target=int(parts[2])))
        return out

    def port_variable(self, target: int) -> str | None:
        """The .env variable that sets a port, read from the file as written (for error messages)."""
        for raw, port in zip(self.raw.get("ports") or [], self.ports, strict=True):
            match = re.search(r"\$\{([A-Za-z0-9_]+)", str(raw))
            if port.target == target and match:
                return match.group(1)
        return None


def services(data: dict[str, Any], env: dict[str, str]) -> dict[str, Service]:
    return {
        name: Service(name=name, spec=interpolate_tree(spec, env), raw=spec) for name, spec in data["services"].items()
    }


def start_order(all_services: dict[str, Service]) -> list[str]:
    """Services in an order where each comes after what it depends on; a cycle is an error."""
    order: list[str] = []
    state: dict[str, str] = {}

    def visit(name: str, path: list[str]) -> None:
        if state.get(name) == "done":
            return
        if state.get(name) == "visiting":
            raise ComposeError("dependency cycle: " + " -> ".join([*path, name]))
        if name not in all_services:
            raise ComposeError(f"'{path[-1]}' depends on '{name}', which is not a service")
        state[name] = "visiting"
        for dep in all_services[name].depends_on:
            visit(dep, [*path, name])
        state[name] = "done"
        order.append(name)

    for name in all_services:
        visit(name, [])
    return order
