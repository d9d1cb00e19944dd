"""The stream's throughput and latency at four loads up to saturation, load generator included.

    python -m benchmarks.stream          # make bench-stream; appends a table to the results log of docs/performance.md
    python -m benchmarks.stream --quick  # two short levels, nothing recorded

Each level is a real consumer process (``mlops stream consume``) on the broker at MLOPS_STREAM_URL,
this process producing (``pipelines/stream/bench.py`` says what is measured and how).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks import record
from core.usecase import load_use_case
from pipelines.settings import StreamSettings
from pipelines.stream.bench import bench

ROOT = Path(__file__).resolve().parents[1]


def table(result: dict[str, Any]) -> str:
    header = [
        "offered load (events/s)", "landed (events/s)", "produced -> curated p50 / p99 (ms)",
        "produced -> scored p50 / p99 (ms)", "produced -> alert p50 / p99 (ms)", "received", "accepted",
        "quarantined", "curated twice", "alerts fired / expected",
    ]  # fmt: skip
    rows = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
    for x in result["levels"]:
        cells = [
            x["rate"], f"{x['events_per_s']:,.0f}", f"{x['p50_ms']} / {x['p99_ms']}",
            f"{x['scored_p50_ms']} / {x['scored_p99_ms']}" if "scored" in x else "-",
            f"{x['alert_p50_ms']} / {x['alert_p99_ms']}", f"{x['received']:,}", f"{x['accepted']:,}",
            f"{x['quarantined']:,}", x["duplicates_in_curated"], f"{x['alerts_fired']} / {x['alerts_expected']}",
        ]  # fmt: skip
        rows.append("| " + " | ".join(map(str, cells)) + " |")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="Two short levels; nothing recorded.")
    parser.add_argument("--use-case", default="credit_default")
    args = parser.parse_args()
    settings = StreamSettings()
    result = bench(load_use_case(args.use_case, usecases_dir=settings.usecases_dir), settings, quick=args.quick)
    print(json.dumps(result, indent=1))
    if args.quick:
        return
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    record(
        f"## Stream, {stamp}, {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}\n\n"
        f"`{args.use_case}` replayed with 1 % malformed and 1 % duplicate events; a real consumer process per "
        f"level, micro-batches of at most {settings.stream_batch_events} events or "
        f"{settings.stream_batch_seconds} s; Redis at {settings.stream_url.split('@')[-1]}.\n\n{table(result)}"
    )


if __name__ == "__main__":
    main()
