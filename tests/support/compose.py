"""The stack on a real container engine, for the Docker tests: images, a Compose project, its containers.

Everything goes through the `docker` and `docker compose` commands, as a user would type them.
Images are built with the project's own Dockerfile; the official base images are pulled, or, where
no registry answers, replaced by the local stand-ins of ``tests/docker/standins`` (see its build.sh).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
STANDINS = ROOT / "tests" / "docker" / "standins" / "build.sh"
SYSTEM_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")


class StackError(RuntimeError):
    """A step of the stack's life failed; the message says which and shows what the command printed."""


def run(
    args: list[str], *, timeout: float = 600, check: bool = True, **kwargs: Any
) -> subprocess.CompletedProcess[str]:
    try:
        done = subprocess.run(args, capture_output=True, text=True, timeout=timeout, **kwargs)
    except subprocess.TimeoutExpired as err:
        raise StackError(f"`{' '.join(args)}` did not finish in {timeout:.0f} s") from err
    if check and done.returncode != 0:
        raise StackError(
            f"`{' '.join(args)}` failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        )
    return done


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(what: str, predicate: Callable[[], Any], *, timeout: float, every: float = 1.0) -> Any:
    """The predicate's first truthy value; errors while waiting count as "not yet"."""
    deadline, last_error = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        try:
            if result := predicate():
                return result
        except Exception as err:  # noqa: BLE001 - a service that is not up yet raises all sorts
            last_error = err
        time.sleep(every)
    raise StackError(
        f"timed out after {timeout:.0f} s waiting for {what}" + (f" (last error: {last_error})" if last_error else "")
    )


# -- images -------------------------------------------------------------------------------------------------
def compose_model() -> dict[str, Any]:
    """docker-compose.yml as parsed YAML: anchors and merges resolved, variables not interpolated."""
    return yaml.safe_load(COMPOSE_FILE.read_text())


def official_images(model: dict[str, Any]) -> list[str]:
    """The images the stack takes as they are, and the Dockerfile's base: what a registry serves."""
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
    bases = re.findall(r"^FROM\s+(\S+)\s+AS\s+[\w-]+", dockerfile, re.M)
    stages = {*re.findall(r"^FROM\s+\S+\s+AS\s+([\w-]+)", dockerfile, re.M), "scratch"}
    pulled = [spec["image"] for spec in model["services"].values() if "build" not in spec]
    return list(dict.fromkeys([b for b in bases if b not in stages] + pulled))


def built_images(model: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Image name -> its build section, for the services built from the project's Dockerfile."""
    return {spec["image"]: spec["build"] for spec in model["services"].values() if "build" in spec}


def image_exists(image: str) -> bool:
    return run(["docker", "image", "inspect", image], check=False, timeout=60).returncode == 0


def pull_or_stand_in(images: Iterable[str], *, log: Callable[[str], None]) -> list[str]:
    """Each image present locally, pulled, or built as a local stand-in; those that none of it gives."""
    missing = []
    for image in images:
        if image_exists(image) or run(["docker", "pull", "--quiet", image], check=False, timeout=300).returncode == 0:
            continue
        log(f"no registry serves {image}: trying its local stand-in")
        built = run([str(STANDINS), image], check=False, timeout=900)
        if built.returncode != 0:
            log(f"no stand-in for {image}: {built.stderr.strip().splitlines()[-1] if built.stderr.strip() else ''}")
            missing.append(image)
    return missing


def buildkit_docker() -> list[str]:
    """A docker command that builds with BuildKit (the Dockerfile mounts a build secret).

    Docker 23 and later build with BuildKit through the buildx plugin. Where that plugin is missing
    (Debian's engine packages), the engine's own 20.10 client still drives its built-in BuildKit.
    """
    if run(["docker", "buildx", "version"], check=False, timeout=30).returncode == 0:
        return ["docker", "buildx", "build", "--load"]
    for client in dict.fromkeys([shutil.which("docker") or "docker", "/usr/bin/docker"]):
        version = run([client, "version", "--format", "{{.Client.Version}}"], check=False, timeout=30).stdout.strip()
        if version and int(version.split(".")[0]) < 23:
            return [client, "build"]
    raise StackError("building the images needs BuildKit: install the docker buildx plugin")


def build_images(model: dict[str, Any], *, log: Callable[[str], None]) -> dict[str, float]:
    """Build every image of the file with the project's Dockerfile; seconds per image."""
    command = buildkit_docker()
    # The machine's CA bundle as the build secret, as behind a TLS-intercepting proxy (README).
    secret = ["--secret", f"id=ca-bundle,src={SYSTEM_CA_BUNDLE}"] if SYSTEM_CA_BUNDLE.exists() else []
    took = {}
    for image, build in built_images(model).items():
        started = time.monotonic()
        log(f"building {image} (target {build['target']})")
        run(
            [*command, *secret, "-f", str(ROOT / build["dockerfile"]), "--target", build["target"], "-t", image,
             str(ROOT / build["context"])],
            env={**os.environ, "DOCKER_BUILDKIT": "1"},
            timeout=1500,
        )  # fmt: skip
        took[image] = time.monotonic() - started
    return took


def image_size(image: str) -> int:
    return int(run(["docker", "image", "inspect", "--format", "{{.Size}}", image]).stdout.strip())


@dataclass(frozen=True)
class Images:
    model: dict[str, Any]  # docker-compose.yml as parsed
    unavailable: list[str]  # official images that neither a registry nor a stand-in gives here
    build_seconds: dict[str, float]  # the project's images, as built now
    sizes: dict[str, int]  # bytes, as `docker image inspect` counts them

    def services(self) -> list[str]:
        """The file's services, but for those whose image is unavailable here."""
        return [name for name, spec in self.model["services"].items() if spec.get("image") not in self.unavailable]


def prepare_images(*, log: Callable[[str], None]) -> Images:
    """Everything `docker compose up` needs: the official images (or stand-ins), the project's built."""
    model = compose_model()
    unavailable = pull_or_stand_in(official_images(model), log=log)
    took = build_images(model, log=log)
    return Images(model, unavailable, took, {image: image_size(image) for image in took})


# -- a project ----------------------------------------------------------------------------------------------
@dataclass
class Project:
    """One Compose project of docker-compose.yml, with its own .env, ports and name."""

    name: str
    env_file: Path
    env: dict[str, str]
    services: list[str] = field(default_factory=list)  # what `up` starts; all when empty
    inbox: Path | None = None  # the host folder mounted as the worker's inbox

    def compose(self, *args: str, timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess[str]:
        base = ["docker", "compose", "-f", str(COMPOSE_FILE), "-p", self.name, "--env-file", str(self.env_file)]
        return run([*base, *args], timeout=timeout, check=check)

    def url(self, port_variable: str, path: str = "") -> str:
        return f"http://127.0.0.1:{self.env[port_variable]}{path}"

    def ps(self) -> list[dict[str, Any]]:
        """`docker compose ps -a` as records (one JSON object a line in Compose v2)."""
        out = self.compose("ps", "-a", "--format", "json", timeout=60).stdout
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    def containers(self, service: str) -> list[str]:
        return self.compose("ps", "-q", service, timeout=60).stdout.split()

    def inspect(self, container: str) -> dict[str, Any]:
        return json.loads(run(["docker", "inspect", container], timeout=60).stdout)[0]

    def address(self, container: str) -> str:
        networks = self.inspect(container)["NetworkSettings"]["Networks"]
        return next(iter(networks.values()))["IPAddress"]

    def get_inside(self, container: str, path: str, *, headers: dict[str, str] | None = None) -> Any:
        """GET a container's own HTTP port from inside it (replicas publish no port), as JSON."""
        script = (
            "import json, sys, urllib.request; "
            f"r = urllib.request.Request('http://127.0.0.1:8000{path}', headers={headers or {}!r}); "
            "sys.stdout.write(urllib.request.urlopen(r, timeout=10).read().decode())"
        )
        return json.loads(run(["docker", "exec", container, "python", "-c", script], timeout=60).stdout)

    def psql(self, database: str, sql: str) -> list[str]:
        out = self.compose("exec", "-T", "postgres", "psql", "-U", "postgres", "-d", database, "-Atc", sql, timeout=60)
        return out.stdout.splitlines()

    def logs(self, *, tail: int = 40) -> str:
        return self.compose("logs", "--no-color", "--tail", str(tail), timeout=120, check=False).stdout

    def leftovers(self) -> dict[str, list[str]]:
        """Containers, networks and volumes of this project that still exist."""
        label = f"label=com.docker.compose.project={self.name}"
        found = {
            kind: run(["docker", kind, "ls", "-q", "--filter", label, *(["-a"] if kind == "container" else [])],
                      timeout=60).stdout.split()
            for kind in ("container", "network", "volume")
        }  # fmt: skip
        return {kind: ids for kind, ids in found.items() if ids}


def prometheus_query(base: str, query: str) -> list[dict[str, Any]]:
    url = f"{base}/api/v1/query?{urllib.parse.urlencode({'query': query})}"
    with urllib.request.urlopen(url, timeout=10) as response:
        body = json.load(response)
    return body["data"]["result"]


def prometheus_range(base: str, query: str, *, start: float, end: float, step: float = 5) -> list[dict[str, Any]]:
    params = {"query": query, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": str(step)}
    with urllib.request.urlopen(f"{base}/api/v1/query_range?{urllib.parse.urlencode(params)}", timeout=30) as response:
        body = json.load(response)
    if body.get("status") != "success":
        raise StackError(f"Prometheus refused {query!r}: {body}")
    return body["data"]["result"]
