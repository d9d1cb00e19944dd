"""Where model selection's fits run: in the training process, or on a Dask cluster (MLOPS_DASK_ADDRESS).

scikit-learn parallelises a grid search through joblib; joblib's ``dask`` backend sends each fit to
the cluster's workers as a task, and a task whose worker dies is run again on another. Dask is
imported only when a cluster is configured.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from pipelines.settings import PipelineSettings

log = logging.getLogger(__name__)


class ClusterUnavailable(ConnectionError):
    """The configured Dask scheduler does not answer (and the settings ask to fail rather than train here)."""


@dataclass
class Compute:
    """What the training run uses: joblib's ``n_jobs``, and, after it, the Dask workers that ran fits."""

    n_jobs: int
    address: str | None = None
    workers: set[str] = field(default_factory=set)


@contextmanager
def compute(settings: PipelineSettings) -> Iterator[Compute]:
    if not settings.dask_address:
        yield Compute(n_jobs=1)
        return
    import joblib
    from distributed import Client, get_task_stream

    try:
        client = Client(settings.dask_address, timeout=settings.dask_timeout_seconds, set_as_default=False)
        client.wait_for_workers(1, timeout=settings.dask_timeout_seconds)
    except (OSError, TimeoutError) as err:
        message = f"the Dask scheduler at {settings.dask_address} does not answer, or has no worker ({err})"
        if settings.dask_fallback == "local":
            log.warning("%s: training in this process instead (MLOPS_DASK_FALLBACK=local)", message)
            yield Compute(n_jobs=1)
            return
        raise ClusterUnavailable(f"{message}; set MLOPS_DASK_FALLBACK=local to train here instead") from None
    used = Compute(n_jobs=-1, address=settings.dask_address)
    try:
        with (
            client.as_current(),
            joblib.parallel_backend("dask", wait_for_workers_timeout=settings.dask_timeout_seconds),
            get_task_stream(client=client) as stream,
        ):
            yield used
        used.workers = {task["worker"] for task in stream.data}
    finally:
        client.close()
