"""Wall time of the install and of `make demo` (goal: the demo under 3 minutes on 2 cores).

    python -m benchmarks.demo_walltime [--repeat N] [--skip-install]

Installs the pinned stack into a throw-away virtual environment (the pip cache
is used as on any machine that installed before), then runs `mlops demo` as a
machine's first run (Prefect creates its database) and once more (it is kept).
The results are appended to the results log of docs/performance.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from benchmarks import record
from pipelines import local_server

ROOT = Path(__file__).resolve().parents[1]


def timed(cmd: list[str], *, env: dict[str, str] | None = None, cwd: Path = ROOT) -> float:
    started = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def install_seconds(tmp: Path) -> float:
    venv = tmp / "venv"
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    subprocess.run([*pip, "--upgrade", "pip==26.3"], check=True)
    subprocess.run([*pip, "-c", "constraints.txt", ".[pipelines,dev]"], cwd=ROOT, check=True)
    return time.perf_counter() - started


def demo_seconds(tmp: Path, *, prefect_home: Path) -> float:
    mlops = str(Path(sys.executable).with_name("mlops"))
    env = {**os.environ, "PREFECT_HOME": str(prefect_home)}
    return timed([mlops, "demo", "--state-dir", str(tmp / "state")], env=env)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--skip-install", action="store_true")
    args = parser.parse_args()
    rows: list[tuple[str, list[float]]] = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        if not args.skip_install:
            rows.append(("install into an empty venv (warm pip cache)", [install_seconds(tmp)]))
        first, again = [], []
        for i in range(args.repeat):
            home = tmp / f"prefect-{i}"  # a new machine's first run creates Prefect's database...
            first.append(demo_seconds(tmp, prefect_home=home))
            again.append(demo_seconds(tmp, prefect_home=home))  # ...a second run reuses it and its server
            local_server.stop(home)
        rows.append(("`make demo` after install, first run on the machine", first))
        rows.append(("`make demo` again (fresh data; Prefect's database and local server kept)", again))
    lines = [
        f"\n## {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}\n",
        "| what | runs (s) | median (s) |",
        "|---|---|---|",
    ]
    lines += [
        f"| {name} | {', '.join(f'{t:.0f}' for t in times)} | {statistics.median(times):.0f} |" for name, times in rows
    ]
    text = "\n".join(lines) + "\n"
    record(text)
    print(text)


if __name__ == "__main__":
    main()
