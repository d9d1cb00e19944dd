"""How long a small batch takes through the command line: ``mlops ingest`` of one month (744 rows).

    python -m benchmarks.cli   # one JSON object: {"cli_ingest_s": ..., "cli_ingest_first_s": ...}

The wall time of the documented command in a process of its own, on a fresh state folder, as a
user runs it: interpreter start, imports, Great Expectations' validation, the lake and quarantine
writes, and the flow run recorded by Prefect. ``cli_ingest_first_s`` is the first command on a
machine, which starts the local Prefect server (pipelines/local_server.py); ``cli_ingest_s`` is
every later one, which finds it running. The server is stopped at the end.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MONTH = "2011-07"  # 744 rows: every hour of a 31-day month


def _ingest_seconds(batch: Path, *, state: Path, env: dict[str, str], rows: int) -> float:
    started = time.perf_counter()
    done = subprocess.run(
        [str(Path(sys.executable).with_name("mlops")), "ingest", str(batch)],
        env=env | {"MLOPS_STATE_DIR": str(state)},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    elapsed = time.perf_counter() - started
    if done.returncode != 0 or f"{rows} accepted" not in done.stdout:
        raise RuntimeError(f"mlops ingest failed ({done.returncode}): {(done.stdout + done.stderr)[-1500:]}")
    return elapsed


def cli_ingest_seconds(*, env: dict[str, str] | None = None) -> dict[str, float]:
    """The first command's time (it starts the local Prefect server) and a later one's (it finds it)."""
    from core.settings import default_usecases_dir
    from core.usecase import load_use_case
    from pipelines import local_server
    from pipelines.drops import read_raw, split_into_drops

    uc = load_use_case("bike_demand", usecases_dir=default_usecases_dir())
    month = split_into_drops(read_raw(uc), uc)[MONTH]
    with tempfile.TemporaryDirectory(prefix="mlops-cli-bench-") as tmp:
        batch = Path(tmp) / f"{MONTH}.csv"
        month.to_csv(batch, index=False)
        home = Path(tmp) / "prefect"  # one Prefect home, as one user's machine has
        run_env = {k: v for k, v in (env or os.environ).items() if k != "PREFECT_API_URL"}
        run_env |= {"MLOPS_USE_CASE": uc.name, "PREFECT_HOME": str(home)}
        try:
            # Two fresh state folders, so that both commands ingest the same 744 rows into an empty lake.
            first = _ingest_seconds(batch, state=Path(tmp) / "first", env=run_env, rows=len(month))
            later = _ingest_seconds(batch, state=Path(tmp) / "later", env=run_env, rows=len(month))
        finally:
            local_server.stop(home)
    return {"cli_ingest_s": later, "cli_ingest_first_s": first}


def main() -> int:
    print(json.dumps({k: round(v, 2) for k, v in cli_ingest_seconds().items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
