"""Ingestion memory: the peak resident memory of `mlops ingest` on batches of 50 MB and 500 MB.

    python -m benchmarks.ingest_memory               # make bench-ingest; appends to docs/performance.md
    python -m benchmarks.ingest_memory --sizes 50    # one size, in MB
    python -m benchmarks.ingest_memory --no-record   # print only
    python -m benchmarks.ingest_memory --prefect temporary   # as `make demo` runs flows (default: server)

Each batch is the bike data set repeated to the size (a feed that re-sends the same hours): with
the shipped YAML the first copy of each hour is curated and every re-sent row is quarantined as a
duplicate; with de-duplication off, every row is curated. Each run is one fresh ingesting
process (the real flow, Great Expectations) whose peak RSS (`ru_maxrss`, the ingesting process alone)
is read when it ends, beside a 10-row batch: the floor, what the process costs before any data
(Great Expectations' imports alone are ~170 MB on top of pandas).

Prefect runs the flow in one of two ways. `server` (the default) is how the stack runs it: a
Prefect server in its own process (started here, as the compose stack's is), the flow run's
process only a client of it. `temporary` is the embedded default of `make demo`: without a server
Prefect starts a temporary one, and importing it costs the flow's process ~90 MB more (FastAPI,
SQLAlchemy, the server's models) before any data.

Goals: the peak under 400 MB whatever the size; and, what the code controls, the batch's own
memory (peak minus the floor) under 100 MB and flat from 50 MB to 500 MB, because the batch is
read in chunks (MLOPS_INGEST_CHUNK_ROWS) and never held whole.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import yaml

from benchmarks import record

ROOT = Path(__file__).resolve().parents[1]
GOAL_MB = 400
OWN_GOAL_MB = 100

# Runs in the child: one real ingestion, then its own peak resident memory.
CHILD = """
import json, resource, sys
from cli.env import prepare_environment
prepare_environment(None)  # as `mlops ingest` does: telemetry off, the temporary server's patience
from pipelines.ingest import ingest_flow
result = ingest_flow(source=sys.argv[1], use_case=sys.argv[2])
peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
keep = ("rows_received", "rows_accepted", "rows_quarantined", "status")
print(json.dumps({**{k: result[k] for k in keep}, "peak_mb": peak_mb}))
"""


def log(message: str) -> None:
    print(f"[ingest-memory] {message}", file=sys.stderr, flush=True)


def make_batch(path: Path, megabytes: float) -> int:
    """The bike data's rows repeated until the file reaches the size; returns its data rows."""
    source = (ROOT / "data" / "Bikeshare.csv").read_bytes()
    header, body = source.split(b"\n", 1)
    target, rows_per_copy = int(megabytes * 1e6), body.count(b"\n")
    rows = 0
    with path.open("wb") as out:
        out.write(header + b"\n")
        written = len(header) + 1
        while written < target:
            out.write(body)
            written += len(body)
            rows += rows_per_copy
    return rows


def usecases_without_dedup(folder: Path) -> Path:
    """The shipped bike YAML without `deduplication`: every re-sent row curated."""
    data = yaml.safe_load((ROOT / "usecases" / "bike_demand.yaml").read_text())
    data.pop("deduplication", None)
    data["source"]["uri"] = str(ROOT / "data" / "Bikeshare.csv")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "bike_demand.yaml").write_text(yaml.safe_dump(data))
    return folder


def ingest(batch: Path, *, state: Path, usecases: Path | None, prefect_api: str | None) -> dict[str, float]:
    env = {**os.environ, "MLOPS_STATE_DIR": str(state), "PREFECT_HOME": str(state / "prefect")}
    if prefect_api is not None:
        env["PREFECT_API_URL"] = prefect_api
    if usecases is not None:
        env["MLOPS_USECASES_DIR"] = str(usecases)
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(batch), "bike_demand"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"ingest failed:\n{done.stderr[-3000:]}")
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    return {**answer, "seconds": time.perf_counter() - started}


@contextlib.contextmanager
def prefect_server(home: Path) -> Iterator[str]:
    """A Prefect server as the stack runs one, in its own process; yields its API URL."""
    from pipelines.traffic import free_port, running_process

    port = free_port()
    url = f"http://127.0.0.1:{port}/api"
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    cmd = [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)]
    with running_process(cmd, env=env, probe=f"{url}/health", log_path=home / "server.log", timeout=180):
        yield url


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=float, nargs="+", default=[50, 500], help="Batch sizes in MB.")
    parser.add_argument(
        "--no-record", action="store_true", help="Print, do not append to the results log (docs/performance.md)."
    )
    parser.add_argument(
        "--case",
        choices=["both", "shipped", "plain"],
        default="both",
        help="The shipped YAML, no de-duplication, or both.",
    )
    parser.add_argument(
        "--prefect",
        choices=["server", "temporary"],
        default="server",
        help="A Prefect server in its own process (the stack), or Prefect's temporary server (make demo).",
    )
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="ingest-memory-") as tmp, contextlib.ExitStack() as stack:
        work = Path(tmp)
        prefect_api = stack.enter_context(prefect_server(work / "prefect-server")) if args.prefect == "server" else None
        plain = usecases_without_dedup(work / "usecases")
        tiny = work / "floor.csv"
        tiny.write_bytes(b"\n".join((ROOT / "data" / "Bikeshare.csv").read_bytes().split(b"\n")[:11]) + b"\n")
        floor = ingest(tiny, state=work / "state-floor", usecases=None, prefect_api=prefect_api)["peak_mb"]
        log(f"floor (10 rows): {floor:.0f} MB")
        for size in args.sizes:
            batch = work / f"batch-{size:g}mb.csv"
            data_rows = make_batch(batch, size)
            cases = [("shipped YAML (re-sent rows quarantined)", None), ("no de-duplication", plain)]
            for label, usecases in (
                cases[1:] if args.case == "plain" else cases[:1] if args.case == "shipped" else cases
            ):
                log(f"{size:g} MB ({data_rows:,} rows), {label}")
                measured = ingest(
                    batch, state=work / f"state-{size:g}-{usecases is None}", usecases=usecases, prefect_api=prefect_api
                )
                rows.append({"size_mb": size, "rows": data_rows, "case": label, **measured})
                log(json.dumps(rows[-1]))
            batch.unlink()
    prefect = "a Prefect server in its own process" if args.prefect == "server" else "Prefect's temporary server"
    table = [
        f"Flows run against {prefect}.",
        "",
        "| batch | rows | YAML | accepted | quarantined | peak RSS | above the floor | time |",
        "|---:|---:|---|---:|---:|---:|---:|---:|",
        f"| 10 rows | 10 | shipped | 10 | 0 | {floor:.0f} MB | (the floor) | |",
        *(
            f"| {r['size_mb']:g} MB | {r['rows']:,} | {r['case']} | {r['rows_accepted']:,} | "
            f"{r['rows_quarantined']:,} | {r['peak_mb']:.0f} MB | {r['peak_mb'] - floor:.0f} MB | "
            f"{r['seconds']:.0f} s |"
            for r in rows
        ),
    ]
    worst = max(r["peak_mb"] for r in rows)
    own = worst - floor
    text = "\n".join(
        [
            *table,
            "",
            f"Peak under {GOAL_MB} MB at every size: {'met' if worst < GOAL_MB else 'not met'} (worst {worst:.0f} MB, "
            f"of which {floor:.0f} MB is the floor). The batch's own memory under {OWN_GOAL_MB} MB at every size: "
            f"{'met' if own < OWN_GOAL_MB else 'not met'} (worst {own:.0f} MB).",
        ]
    )
    print(text)
    if not args.no_record:
        stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
        machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
        record(f"## Ingestion memory, {stamp}, {machine}\n\n{text}")


if __name__ == "__main__":
    main()
