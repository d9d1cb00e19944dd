"""(a) The floor: the model's own ``predict`` in a fresh interpreter that holds nothing else.

    python -m benchmarks.floor DIR     # DIR holds model.skops and records.json; prints one JSON object

The servers are processes that hold a model and little else; the benchmark's own process holds
MLflow, the training data and every answer it checks, a heap the garbage collector walks while
``predict`` allocates. So the floor is measured as the servers run: a process of its own, one
native thread, the model loaded as the service loads it.

(a) is the model's own ``predict`` on the feature frame. The service predicts through the compiled
pipeline (``models.compiled``), which gives the same numbers; its in-process cost is reported too,
as (a'), so that the service's overhead over what it actually runs can be read off as well.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path


def measure(directory: Path, *, repeat: int) -> dict[str, float]:
    from threadpoolctl import threadpool_limits

    from core.settings import default_usecases_dir
    from core.usecase import load_use_case
    from models.compiler import compile_model
    from models.frames import feature_frame
    from models.serialization import load_skops

    spec = json.loads((directory / "records.json").read_text())
    use_case = load_use_case(spec["use_case"], usecases_dir=default_usecases_dir())
    model = load_skops((directory / "model.skops").read_bytes())
    one = feature_frame(spec["records"][:1], use_case)
    many = feature_frame(spec["batch"], use_case)
    # (a') what the service predicts with: the compiled pipeline, from the records (no frame).
    compiled = compile_model(model, use_case)
    with threadpool_limits(limits=1):
        floor = _timed(lambda: model.predict(one), lambda: model.predict(many), repeat=repeat)
        fast = _timed(
            lambda: compiled.output(spec["records"][:1]), lambda: compiled.output(spec["batch"]), repeat=repeat
        )
    floor["batch_rows_per_s"] = len(spec["batch"]) / floor.pop("batch_s")
    floor["compiled_p50_ms"] = fast["p50_ms"]
    floor["compiled_batch_rows_per_s"] = len(spec["batch"]) / fast["batch_s"]
    return floor


def _timed(single: Callable[[], object], batch: Callable[[], object], *, repeat: int) -> dict[str, float]:
    single(), batch()  # warm
    singles = []
    for _ in range(repeat):
        started = time.perf_counter()
        single()
        singles.append(time.perf_counter() - started)
    batches = []
    for _ in range(max(repeat // 25, 5)):
        started = time.perf_counter()
        batch()
        batches.append(time.perf_counter() - started)
    return {
        "p50_ms": statistics.median(singles) * 1000,
        "p99_ms": statistics.quantiles(singles, n=100)[98] * 1000,
        "batch_s": statistics.median(batches),
    }


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) not in (1, 2):
        print("usage: python -m benchmarks.floor DIR [REPEAT]", file=sys.stderr)
        return 2
    print(json.dumps(measure(Path(args[0]), repeat=int(args[1]) if len(args) == 2 else 1000)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
