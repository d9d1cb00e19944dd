"""The stack without containers: run ``docker-compose.yml`` as local processes.

Each service's own command runs with its own environment, in dependency order,
and the launcher waits for the same healthchecks Compose would. What differs
from containers is mapped, and only that:

- service hostnames (``mlflow:5000``) become ``127.0.0.1`` (every service listens on its own port);
- ``0.0.0.0`` binds become ``127.0.0.1``;
- container paths of volumes become folders under the launcher's state directory
  (named volumes) or the host paths they bind;
- the ``postgres`` service is the machine's PostgreSQL server: its databases are created there;
- a service that runs a third-party image (Prometheus, Pushgateway, Grafana) runs the
  local binary of the same name when there is one, and is skipped otherwise.

    python -m deploy.launcher up      # start, wait until healthy, return (processes keep running)
    python -m deploy.launcher status
    python -m deploy.launcher down [--volumes]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deploy.compose import ComposeError, Service, load, read_env_file, services, start_order

LOOPBACK = "127.0.0.1"
# Third-party images and the local binary that runs the same program (argv[0] of the image's entrypoint).
IMAGE_BINARIES = {"prom/prometheus": "prometheus", "prom/pushgateway": "pushgateway", "grafana/grafana-oss": "grafana"}
# Paths an image finds by convention, which a local binary must be told.
IMAGE_ENV = {
    "grafana/grafana-oss": {
        "GF_PATHS_PROVISIONING": "/etc/grafana/provisioning",
        "GF_PATHS_DATA": "/var/lib/grafana",
    }
}
IMAGE_ARGS = {"grafana/grafana-oss": ["server"]}
# Variables of the launcher's own shell that would leak into services; containers start without them.
ISOLATED_PREFIXES = ("MLOPS_", "PREFECT_", "MLFLOW_", "GF_")
HEALTH_POLL_SECONDS = 1.0


class LauncherError(RuntimeError):
    pass


@dataclass
class Plan:
    """How one service runs here: as a process, on the machine's PostgreSQL, or not at all (and why)."""

    service: Service
    kind: str  # "process" | "postgres" | "skipped"
    argv: list[str]
    env: dict[str, str]
    rewrite: Rewriter  # for the healthcheck, mapped like the command
    note: str = ""


class Rewriter:
    """Maps what a container sees (hostnames, binds, volume paths) to this machine."""

    def __init__(self, *, hostnames: list[str], paths: dict[str, str]) -> None:
        names = "|".join(re.escape(h) for h in sorted(hostnames, key=len, reverse=True))
        self._host = re.compile(rf"(?<![\w.-])(?:{names})(?=:\d)") if names else None
        # longest container path first, so /data/state/x is not rewritten as /data/s...
        self._paths = sorted(paths.items(), key=lambda kv: len(kv[0]), reverse=True)

    def __call__(self, text: str) -> str:
        if self._host is not None:
            text = self._host.sub(LOOPBACK, text)
        text = re.sub(r"(?<![\d.])0\.0\.0\.0(?![\d.])", LOOPBACK, text)
        for container, local in self._paths:
            text = re.sub(rf"(?<![\w/.-]){re.escape(container)}(?=/|$|[\s:,;\"'])", local, text)
        return text


class Launcher:
    def __init__(self, *, project_dir: Path, compose_file: Path, env_file: Path, state_dir: Path) -> None:
        self.project_dir = project_dir.resolve()
        self.compose_file = compose_file
        self.state_dir = state_dir.resolve()
        file_env = read_env_file(env_file)
        self.env = {**file_env, **os.environ}  # as in Compose: the shell wins over .env
        self.data = load(compose_file)
        self.services = services(self.data, self.env)
        self.order = start_order(self.services)
        self.pids_file = self.state_dir / "pids.json"
        self.logs = self.state_dir / "logs"

    # -- planning ---------------------------------------------------------------------------------
    def _paths(self, service: Service) -> dict[str, str]:
        paths = {}
        for mount in service.mounts:
            if mount.named:
                local = self.state_dir / "volumes" / mount.source
                local.mkdir(parents=True, exist_ok=True)
            else:
                local = (self.project_dir / Path(mount.source).expanduser()).resolve()
                if not local.exists():
                    local.mkdir(parents=True, exist_ok=True)  # Compose creates a missing bind folder too
            paths[mount.target] = str(local)
        return paths

    def _rewriter(self, service: Service, paths: dict[str, str] | None = None) -> Rewriter:
        return Rewriter(hostnames=list(self.services), paths=self._paths(service) if paths is None else paths)

    def plan(self, service: Service) -> Plan:
        image = str(service.spec.get("image", ""))
        repo = image.split(":")[0]
        binary = IMAGE_BINARIES.get(repo)
        found = shutil.which(binary) if binary and "build" not in service.spec else None
        # a third-party program reads its bound config files: give it copies with the mapping applied
        rewrite = self._rewriter(service, self._rewritten_binds(service) if found else None)
        base = {k: v for k, v in os.environ.items() if not k.startswith(ISOLATED_PREFIXES)}
        base["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{base.get('PATH', '')}"
        env = {**base, **{k: rewrite(v) for k, v in service.environment.items()}}
        if image.startswith("postgres"):
            return Plan(service, "postgres", [], env, rewrite, note=f"the machine's PostgreSQL on {LOOPBACK}:5432")
        if "build" in service.spec:
            argv = [rewrite(a) for a in service.command]
            if not argv:
                raise LauncherError(f"service {service.name} builds our image but has no command")
            if argv[0] == "python":
                argv[0] = sys.executable
            return Plan(service, "process", argv, env, rewrite)
        if found is None:
            return Plan(service, "skipped", [], env, rewrite, note=f"no local '{binary or repo}' binary")
        for key, path in IMAGE_ENV.get(repo, {}).items():
            env.setdefault(key, rewrite(path))
        argv = [found, *IMAGE_ARGS.get(repo, []), *(rewrite(a) for a in service.command)]
        return Plan(service, "process", argv, env, rewrite)

    def _rewritten_binds(self, service: Service) -> dict[str, str]:
        """Config files bound into a third-party image name hosts and container paths too: the
        program reads a copy with those mapped. Returns the mount paths, binds pointing at the copies."""
        paths = self._paths(service)
        rewrite = self._rewriter(service, paths)
        for mount in service.mounts:
            source = Path(paths[mount.target])
            if mount.named:
                continue
            copy = self.state_dir / "files" / service.name / mount.target.strip("/").replace("/", "_")
            files = [source] if source.is_file() else [p for p in source.rglob("*") if p.is_file()]
            for f in files:
                dest = copy if source.is_file() else copy / f.relative_to(source)
                dest.parent.mkdir(parents=True, exist_ok=True)
                dest.write_text(rewrite(f.read_text()))
            paths[mount.target] = str(copy)
        return paths

    # -- checks -----------------------------------------------------------------------------------
    def check_ports(self, plans: list[Plan]) -> None:
        for plan in plans:
            if plan.kind != "process":
                continue
            for port in plan.service.ports:
                with socket.socket() as s:
                    # as the servers themselves do: connections of a stopped stack still in TIME_WAIT
                    # do not block the port, a process listening on it does
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    try:
                        s.bind((LOOPBACK, port.target))
                        s.listen()
                    except OSError:
                        variable = plan.service.port_variable(port.target)
                        hint = f" or set {variable} in .env" if variable else ""
                        raise LauncherError(
                            f"port {port.target} ({plan.service.name}) is already in use on {LOOPBACK}: "
                            f"stop what listens there{hint}"
                        ) from None

    def healthy(self, plan: Plan) -> bool:
        test = plan.service.healthcheck
        if test is None or plan.kind == "skipped":
            return True
        rewrite = plan.rewrite
        if test[0] == "CMD-SHELL":
            argv = ["/bin/sh", "-c", rewrite(test[1])]
        else:
            argv = [rewrite(a) for a in test[1:]]
            if argv[0] == "python":
                argv[0] = sys.executable
        try:
            result = subprocess.run(argv, env=plan.env, cwd=self.project_dir, capture_output=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return False
        return result.returncode == 0

    # -- processes --------------------------------------------------------------------------------
    def running(self) -> dict[str, int]:
        if not self.pids_file.exists():
            return {}
        pids = json.loads(self.pids_file.read_text())
        return {name: pid for name, pid in pids.items() if _alive(pid)}

    @contextlib.contextmanager
    def _postgres(self, service: Service) -> Iterator[tuple[Any, list[str]]]:
        """An admin connection to the machine's PostgreSQL as the service's user, and the databases it declares."""
        import psycopg

        env = service.environment
        user = env.get("POSTGRES_USER", "postgres")
        dsn = f"host={LOOPBACK} port=5432 user={user} password={env.get('POSTGRES_PASSWORD', '')} dbname=postgres"
        try:
            conn = psycopg.connect(dsn, autocommit=True, connect_timeout=5)
        except psycopg.OperationalError as err:
            raise LauncherError(f"cannot reach PostgreSQL on {LOOPBACK}:5432 as '{user}': {err}") from err
        with conn:
            yield conn, [n for n in env.get("MLOPS_DATABASES", "").split(",") if n]

    def _prepare_postgres(self, plan: Plan) -> None:
        with self._postgres(plan.service) as (conn, names):
            existing = {r[0] for r in conn.execute("SELECT datname FROM pg_database")}
            for name in names:
                if name not in existing:
                    conn.execute(f'CREATE DATABASE "{name}"')

    def _start(self, plan: Plan) -> subprocess.Popen[bytes]:
        self.logs.mkdir(parents=True, exist_ok=True)
        with (self.logs / f"{plan.service.name}.log").open("ab") as log:  # the child keeps its own handle
            return subprocess.Popen(
                plan.argv,
                env=plan.env,
                cwd=self.project_dir,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # its own process group: `down` stops it and its children
            )

    def _health_deadline(self, service: Service) -> float:
        check = service.spec.get("healthcheck") or {}
        seconds = _duration(check.get("start_period", "0s")) + _duration(check.get("interval", "30s")) * int(
            check.get("retries", 3)
        )
        return time.monotonic() + seconds

    def _tail(self, name: str, lines: int = 25) -> str:
        path = self.logs / f"{name}.log"
        text = path.read_text(errors="replace").splitlines()[-lines:] if path.exists() else []
        return "\n".join(f"    {line}" for line in text)

    def _wait(self, plan: Plan, condition: str, procs: dict[str, subprocess.Popen[bytes]]) -> None:
        name = plan.service.name
        if plan.kind == "skipped" or condition == "service_started":
            return
        proc = procs.get(name)
        if condition == "service_completed_successfully":
            if proc is None:
                return
            code = proc.wait()
            exits = self.state_dir / "exits.json"
            recorded = json.loads(exits.read_text()) if exits.exists() else {}
            exits.write_text(json.dumps({**recorded, name: code}))
            if code != 0:
                raise LauncherError(f"{name} exited with code {code}; last lines of its log:\n{self._tail(name)}")
            return
        deadline = self._health_deadline(plan.service)
        while not self.healthy(plan):
            if proc is not None and proc.poll() is not None:
                raise LauncherError(
                    f"{name} exited with code {proc.returncode} before it was healthy; "
                    f"last lines of its log:\n{self._tail(name)}"
                )
            if time.monotonic() > deadline:
                raise LauncherError(f"{name} was not healthy in time; last lines of its log:\n{self._tail(name)}")
            time.sleep(HEALTH_POLL_SECONDS)

    def up(self, *, log: Callable[[str], None] = print) -> dict[str, Plan]:
        if self.running():
            raise LauncherError(f"the stack is already up ({self.pids_file}); run `make down` first")
        plans = {name: self.plan(self.services[name]) for name in self.order}
        self.check_ports(list(plans.values()))
        procs: dict[str, subprocess.Popen[bytes]] = {}
        waited: set[tuple[str, str]] = set()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        try:
            for name in self.order:
                plan = plans[name]
                for dep, condition in plan.service.depends_on.items():
                    if (dep, condition) not in waited:
                        self._wait(plans[dep], condition, procs)
                        waited.add((dep, condition))
                if plan.kind == "skipped":
                    log(f"  {name:<15} skipped: {plan.note}")
                    continue
                if plan.kind == "postgres":
                    self._prepare_postgres(plan)
                    log(f"  {name:<15} {plan.note}")
                    continue
                procs[name] = self._start(plan)
                self.pids_file.write_text(json.dumps({n: p.pid for n, p in procs.items()}, indent=1))
                log(f"  {name:<15} started (pid {procs[name].pid}), log {self.logs / (name + '.log')}")
            for name in self.order:  # everything healthy, as `docker compose up --wait` would
                if (name, "service_healthy") not in waited and plans[name].service.healthcheck:
                    self._wait(plans[name], "service_healthy", procs)
        except BaseException:
            self.down(log=lambda _msg: None)
            raise
        return plans

    def down(self, *, volumes: bool = False, log: Callable[[str], None] = print) -> None:
        pids = json.loads(self.pids_file.read_text()) if self.pids_file.exists() else {}
        # SIGTERM, then once more (a Prefect runner only begins its shutdown on the first), then SIGKILL.
        for sig, grace in ((signal.SIGTERM, 5.0), (signal.SIGTERM, 10.0), (signal.SIGKILL, 2.0)):
            alive = [pid for pid in pids.values() if _alive(pid)]
            for pid in alive:
                _signal_group(pid, sig)
            deadline = time.monotonic() + grace
            while any(_alive(pid) for pid in alive) and time.monotonic() < deadline:
                time.sleep(0.1)
        for name in reversed(list(pids)):
            log(f"  {name:<15} stopped")
        self.pids_file.unlink(missing_ok=True)
        (self.state_dir / "exits.json").unlink(missing_ok=True)
        if volumes:
            self._drop_databases(log)
            shutil.rmtree(self.state_dir / "volumes", ignore_errors=True)
            shutil.rmtree(self.state_dir / "files", ignore_errors=True)
            log(f"  volumes removed from {self.state_dir}")

    def _drop_databases(self, log: Callable[[str], None]) -> None:
        for service in self.services.values():
            if not str(service.spec.get("image", "")).startswith("postgres"):
                continue
            with self._postgres(service) as (conn, names):
                for name in names:
                    conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                    log(f"  database {name} dropped")

    def status(self) -> dict[str, str]:
        pids = json.loads(self.pids_file.read_text()) if self.pids_file.exists() else {}
        out = {}
        for name in self.order:
            plan = self.plan(self.services[name])
            if plan.kind == "skipped":
                out[name] = f"skipped ({plan.note})"
            elif plan.kind == "postgres":
                out[name] = "healthy" if self.healthy(plan) else "unreachable"
            elif name not in pids:
                out[name] = "not started"
            elif not _alive(pids[name]):
                exits = self.state_dir / "exits.json"
                code = json.loads(exits.read_text()).get(name) if exits.exists() else None
                out[name] = "completed (exit 0)" if code == 0 else f"exited (code {code})" if code else "exited"
            else:
                out[name] = "healthy" if self.healthy(plan) else "running, not healthy"
        return out


def _duration(text: str | int | float) -> float:
    """Compose durations: ``30s``, ``1m30s``, ``500ms``."""
    if isinstance(text, int | float):
        return float(text)
    total = 0.0
    for value, unit in re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h)", text):
        total += float(value) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[unit]
    return total


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie (exited, not yet reaped by its parent) is not alive
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def _signal_group(pid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


URLS = {
    "gateway": "API docs      http://127.0.0.1:{port}/docs",
    "mlflow": "MLflow        http://127.0.0.1:{port}",
    "prefect-server": "Prefect       http://127.0.0.1:{port}",
    "grafana": "Grafana       http://127.0.0.1:{port}",
    "evidently": "Evidently     http://127.0.0.1:{port}",
    "prometheus": "Prometheus    http://127.0.0.1:{port}",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m deploy.launcher", description="Run docker-compose.yml as local processes (no Docker needed)."
    )
    parser.add_argument("--project-dir", type=Path, default=Path.cwd(), help="Folder of docker-compose.yml")
    parser.add_argument(
        "--file", "-f", type=Path, default=None, help="Compose file (default: <project>/docker-compose.yml)"
    )
    parser.add_argument("--env-file", type=Path, default=None, help="Variables (default: <project>/.env)")
    parser.add_argument(
        "--state-dir", type=Path, default=None, help="Logs, pids and volumes (default: <project>/.stack)"
    )
    sub = parser.add_subparsers(dest="action", required=True)
    sub.add_parser("up", help="Start every service, wait until healthy, then return")
    down = sub.add_parser("down", help="Stop every service")
    down.add_argument("--volumes", "-v", action="store_true", help="Also delete the volumes and the databases")
    sub.add_parser("status", help="Show each service's state")
    args = parser.parse_args(argv)
    project = args.project_dir.resolve()
    try:
        launcher = Launcher(
            project_dir=project,
            compose_file=args.file or project / "docker-compose.yml",
            env_file=args.env_file or project / ".env",
            state_dir=args.state_dir or project / ".stack",
        )
        if args.action == "up":
            started = time.monotonic()
            plans = launcher.up()
            print(f"\nThe stack is up ({time.monotonic() - started:.0f} s). Open:")
            for name, template in URLS.items():
                if name in plans and plans[name].kind == "process" and plans[name].service.ports:
                    print("  " + template.format(port=plans[name].service.ports[0].target))
            print(f"Logs in {launcher.logs}; stop with `make down`.")
        elif args.action == "down":
            launcher.down(volumes=args.volumes)
        else:
            for name, state in launcher.status().items():
                print(f"  {name:<15} {state}")
    except (ComposeError, LauncherError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
