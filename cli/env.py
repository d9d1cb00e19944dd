"""Process environment for embedded defaults, set before Prefect or MLflow is imported."""

from __future__ import annotations

import contextlib
import gc
import os
from collections.abc import Iterator
from pathlib import Path

from core.telemetry import disable_telemetry


def prepare_environment(state_dir: Path | None) -> Path:
    """Point every component at one state directory and switch telemetry off.

    Prefect's server on embedded defaults (the local one the flow commands share, or a temporary
    one) keeps its database under PREFECT_HOME; putting it in the state directory keeps a run
    self-contained. Explicit settings win.
    """
    disable_telemetry()
    if state_dir is not None:
        os.environ["MLOPS_STATE_DIR"] = str(state_dir)
    root = Path(os.environ.get("MLOPS_STATE_DIR", ".mlops")).resolve()
    root.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("PREFECT_HOME", str(root / "prefect"))
    # Prefect's temporary server (MLOPS_LOCAL_PREFECT_IDLE_MINUTES=0) needs ~10 s to start on 2 cores;
    # the default limit is 20 s.
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    os.environ.setdefault("PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW", "ignore")
    os.environ.setdefault("PREFECT_RESULTS_PERSIST_BY_DEFAULT", "false")
    os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    # Arrow's own allocator keeps what it freed for reuse: ~20 MB more resident memory per ingested
    # batch chunk than the system allocator, measured (benchmarks/ingest_memory.py). Read at import.
    os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")
    return root


@contextlib.contextmanager
def loading() -> Iterator[None]:
    """Imports and set-up with the cyclic garbage collector paused, then what they built frozen.

    Importing a stage's libraries allocates millions of objects that live as long as the process,
    and the collector kept walking them while they were created: 0.45 s of the 2.5 s it takes to
    import Great Expectations, pandas and Prefect (measured). Frozen, later collections skip them.
    """
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        gc.enable()
