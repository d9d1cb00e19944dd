"""A bike history of millions of rows, as a curated lake: the year replayed with noise.

    python -m benchmarks.history OUT_DIR [--rows 5000000] [--seed 0]

Each replay is the year's 8,645 hours as another station might have seen them: the weather
jittered within its ranges and each hour's rentals scaled by a log-normal factor (casual and
registered alike, so the total stays their sum). Replays share the year's event times, so the
history splits by time as the year does. Written day by day (``event_date=YYYY-MM-DD``, one
file a day), as the ingestion flow writes the lake; memory stays at one day's rows.
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
WEATHER = ("temp", "atemp", "hum", "windspeed")


def curated_year() -> pd.DataFrame:
    """The bike year as the ingestion flow curates it (types and event time)."""
    from core.settings import default_usecases_dir
    from core.usecase import load_use_case
    from pipelines.batches import coerce_types, finalize_types, parse_csv, with_event_time

    use_case = load_use_case("bike_demand", usecases_dir=default_usecases_dir())
    parsed = parse_csv((ROOT / "data" / "Bikeshare.csv").read_bytes(), use_case)
    typed, failures = coerce_types(parsed.frame, use_case)
    if failures:
        raise ValueError(f"the shipped bike data has {len(failures)} rows that fail their types")
    return with_event_time(finalize_types(typed, use_case), use_case, arrival=datetime(2012, 1, 1))


def replay(day: pd.DataFrame, copies: int, rng: np.random.Generator) -> pd.DataFrame:
    """``copies`` noisy replays of one day's hours."""
    out = day.loc[day.index.repeat(copies)].reset_index(drop=True)
    n = len(out)
    for column in WEATHER:
        out[column] = np.clip(out[column].to_numpy(dtype=float) + rng.normal(0, 0.03, n), 0, 1).round(4)
    factor = rng.lognormal(0, 0.15, n)
    for column in ("casual", "registered"):
        out[column] = pd.array(np.rint(out[column].to_numpy(dtype=float) * factor).astype(np.int64), dtype="Int64")
    out["bikers"] = out["casual"] + out["registered"]
    out["__row__"] = np.arange(n, dtype=np.int64)
    return out


def write_history(folder: Path, *, rows: int, seed: int = 0) -> int:
    """About ``rows`` rows (whole replays of the year) under ``folder``; returns the rows written."""
    year = curated_year()
    copies = max(1, round(rows / len(year)))
    rng = np.random.default_rng(seed)
    written = 0
    for date, day in year.groupby(year["event_time"].dt.strftime("%Y-%m-%d"), sort=True):
        target = folder / f"event_date={date}"
        target.mkdir(parents=True, exist_ok=True)
        frame = replay(day, copies, rng)
        frame.to_parquet(target / "history.parquet", index=False)
        written += len(frame)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.history", description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="The lake folder to write (the use case's curated folder)")
    parser.add_argument("--rows", type=int, default=5_000_000, help="About how many rows (whole replays)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    written = write_history(args.out, rows=args.rows, seed=args.seed)
    print(f"{written:,} rows under {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
