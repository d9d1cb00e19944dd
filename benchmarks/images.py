"""The container images: their size, and a serving container's cold start (`docker start` -> `/ready`).

    python -m benchmarks.images              # make bench-images; appends to docs/performance.md
    python -m benchmarks.images --no-record  # print only

Builds both images from deploy/Dockerfile (the official bases are pulled, or their local stand-ins
built where no registry answers: tests/docker/standins), brings up what one serving replica needs
(PostgreSQL, MLflow, Prefect for the bootstrap job) in a Compose project of its own, then stops a
replica and times `docker start` until its /ready answers 200, several times. The project is
removed with its volumes at the end. Goal: the serving image at most 500 MB.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from benchmarks import record
from tests.support.compose import Project, free_port, prepare_images, run

ROOT = Path(__file__).resolve().parents[1]
SERVING_IMAGE_GOAL = 500_000_000  # bytes, as `docker image inspect --format {{.Size}}` counts them
PORTS = ("GATEWAY_PORT", "MLFLOW_PORT", "PREFECT_PORT", "EVIDENTLY_PORT", "PUSHGATEWAY_PORT", "PROMETHEUS_PORT",
         "GRAFANA_PORT")  # fmt: skip


def log(message: str) -> None:
    print(f"[images] {message}", file=sys.stderr, flush=True)


def ready_inside(project: Project, container: str) -> bool:
    try:
        return bool(project.get_inside(container, "/ready")["ready"])
    except Exception:  # noqa: BLE001 - not up yet
        return False


def cold_starts(project: Project, container: str, *, repeats: int) -> list[float]:
    seconds = []
    for _ in range(repeats):
        run(["docker", "stop", "--time", "10", container], timeout=60)
        started = time.monotonic()
        run(["docker", "start", container], timeout=60)
        while not ready_inside(project, container):
            if time.monotonic() - started > 120:
                raise RuntimeError(f"{container} was not ready within 120 s of docker start")
            time.sleep(0.1)
        seconds.append(time.monotonic() - started)
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3, help="Cold starts to time (default 3; the median counts)")
    parser.add_argument(
        "--no-record", action="store_true", help="Do not append the table to the results log (docs/performance.md)"
    )
    args = parser.parse_args(argv)

    images = prepare_images(log=log)
    build_seconds, sizes = images.build_seconds, images.sizes

    with tempfile.TemporaryDirectory() as folder:
        env = {"POSTGRES_PASSWORD": "bench-password-0123", "MLOPS_ADMIN_TOKEN": "bench-admin-token-0123456789",
               "GRAFANA_ADMIN_PASSWORD": "bench-grafana-0123", **{p: str(free_port()) for p in PORTS}}  # fmt: skip
        env_file = Path(folder) / ".env"
        env_file.write_text("".join(f"{k}={v}\n" for k, v in env.items()))
        project = Project(name=f"mlops-bench-{uuid.uuid4().hex[:8]}", env_file=env_file, env=env)
        try:
            log("bringing up PostgreSQL, MLflow, Prefect, the bootstrap job and the serving replicas")
            project.compose("up", "-d", "--wait", "--wait-timeout", "600", "serving", timeout=900)
            replica = project.containers("serving")[0]
            starts = cold_starts(project, replica, repeats=args.repeats)
        finally:
            project.compose("down", "-v", "--remove-orphans", "--timeout", "10", timeout=300, check=False)

    serving = sizes["mlops-loop:serving"]
    lines = [
        f"## Images, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        "",
        f"{platform.machine()}, {len(__import__('os').sched_getaffinity(0))} cores; sizes as `docker image inspect` "
        f"counts them (uncompressed); base images: {'official' if not _stand_ins() else 'local stand-ins'}.",
        "",
        "| image | size (MB) | this run's build (s; layers from the cache cost nothing) |",
        "|---|---:|---:|",
        *(f"| `{image}` | {size / 1e6:.0f} | {build_seconds[image]:.0f} |" for image, size in sizes.items()),
        "",
        f"Serving container cold start (`docker start` -> `/ready` 200, model loaded from MLflow): "
        f"{', '.join(f'{s:.1f}' for s in starts)} s; median {statistics.median(starts):.1f} s.",
        f"Goal: serving image at most {SERVING_IMAGE_GOAL / 1e6:.0f} MB: "
        f"{'met' if serving <= SERVING_IMAGE_GOAL else 'NOT met'} ({serving / 1e6:.0f} MB).",
        "",
    ]
    print("\n".join(lines))
    if not args.no_record:
        record("\n".join(lines))
    return 0 if serving <= SERVING_IMAGE_GOAL else 1


def _stand_ins() -> bool:
    """Whether the base image is a local stand-in (labelled by tests/docker/standins/build.sh)."""
    labels = run(["docker", "image", "inspect", "--format", "{{json .Config.Labels}}", "python:3.11.7-slim-bookworm"],
                 check=False, timeout=60).stdout  # fmt: skip
    return "stand-in" in labels


if __name__ == "__main__":
    sys.exit(main())
