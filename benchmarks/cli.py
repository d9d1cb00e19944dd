"""How long a small batch takes through the command line: ``mlops ingest`` of one month (744 rows).

    python -m benchmarks.cli          # prints one JSON object: {"cli_ingest_s": ...}

The wall time of the documented command in a process of its own, on a fresh state folder, as a
user runs it: interpreter start, imports, the flow run recorded by Prefect (its temporary server
when no other is configured), Great Expectations' validation, the lake and quarantine writes.
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


def cli_ingest_seconds(*, env: dict[str, str] | None = None) -> float:
    from core.settings import default_usecases_dir
    from core.usecase import load_use_case
    from pipelines.drops import read_raw, split_into_drops

    uc = load_use_case("bike_demand", usecases_dir=default_usecases_dir())
    month = split_into_drops(read_raw(uc), uc)[MONTH]
    with tempfile.TemporaryDirectory(prefix="mlops-cli-bench-") as tmp:
        batch = Path(tmp) / f"{MONTH}.csv"
        month.to_csv(batch, index=False)
        run_env = {**(env or os.environ), "MLOPS_STATE_DIR": str(Path(tmp) / "state"), "MLOPS_USE_CASE": uc.name}
        started = time.perf_counter()
        done = subprocess.run(
            [str(Path(sys.executable).with_name("mlops")), "ingest", str(batch)],
            env=run_env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        elapsed = time.perf_counter() - started
    if done.returncode != 0 or f"{len(month)} accepted" not in done.stdout:
        raise RuntimeError(f"mlops ingest failed ({done.returncode}): {(done.stdout + done.stderr)[-1500:]}")
    return elapsed


def main() -> int:
    print(json.dumps({"cli_ingest_s": round(cli_ingest_seconds(), 2)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
