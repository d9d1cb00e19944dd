"""Where model selection's fits run: in the training process, or on a Dask cluster (MLOPS_DASK_ADDRESS).

scikit-learn parallelises a grid search through joblib; joblib's ``dask`` backend sends each fit to
the cluster's workers as a task. What every fit reads (the tuning rows, the folds) is copied to each
worker once (``Compute.share``), so a worker that dies mid-task loses nothing the others lack: the
scheduler runs its task again on another, and the result is the same. That needs the scheduler to
keep those copies: its active memory manager, which drops replicas it deems surplus, must be off
(``DASK_DISTRIBUTED__SCHEDULER__ACTIVE_MEMORY_MANAGER__START=false``, as the stack sets it).

A scheduler that does not answer, or goes away mid-training, fails the run with ``ClusterUnavailable``
(or, with MLOPS_DASK_FALLBACK=local, an unreachable one trains here). Dask is imported only when a
cluster is configured.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from concurrent.futures import CancelledError
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any

from pipelines.settings import PipelineSettings

log = logging.getLogger(__name__)


class ClusterUnavailable(ConnectionError):
    """The configured Dask scheduler does not answer, or was lost during the run."""


@dataclass
class Compute:
    """What the training run uses: joblib's ``n_jobs``, and, after it, the Dask workers that ran fits."""

    n_jobs: int
    address: str | None = None
    timeout: float = 15
    workers: set[str] = field(default_factory=set)
    client: Any = None  # the distributed.Client, for work sent as tasks rather than through joblib

    @property
    def where(self) -> str:
        """Where the fits ran, for the log and the run's tags (after the run: the workers that took fits)."""
        return f"dask {self.address}, {len(self.workers)} workers" if self.address else "local"

    def share(self, data: Sequence[Any]) -> AbstractContextManager[Any]:
        """A context in which the fits find ``data`` on every worker (a copy each, sent once)."""
        if self.client is None:
            return nullcontext()
        return shared(self.client, data, timeout=self.timeout)


def shared(client: Any, data: Sequence[Any], *, timeout: float) -> AbstractContextManager[Any]:
    """joblib's ``dask`` backend on ``client``, with ``data`` copied to every worker before the first fit."""
    import joblib

    return joblib.parallel_backend("dask", client=client, scatter=list(data), wait_for_workers_timeout=timeout)


@contextmanager
def compute(settings: PipelineSettings) -> Iterator[Compute]:
    if not settings.dask_address:
        yield Compute(n_jobs=1)
        return
    import joblib
    from distributed import Client, get_task_stream

    address, timeout = settings.dask_address, settings.dask_timeout_seconds
    try:
        client = Client(address, timeout=timeout, set_as_default=False)
        client.wait_for_workers(1, timeout=timeout)
    except (OSError, TimeoutError) as err:
        message = f"the Dask scheduler at {address} does not answer, or has no worker ({err})"
        if settings.dask_fallback == "local":
            log.warning("%s: training in this process instead (MLOPS_DASK_FALLBACK=local)", message)
            yield Compute(n_jobs=1)
            return
        raise ClusterUnavailable(f"{message}; set MLOPS_DASK_FALLBACK=local to train here instead") from None
    if client.amm.running():
        log.warning(
            "the scheduler at %s runs its active memory manager: it drops the workers' copies of the training data, "
            "so a worker lost mid-task fails the run instead of its task running again elsewhere",
            address,
        )
    used = Compute(n_jobs=-1, address=address, timeout=timeout, client=client)
    try:
        with (
            client.as_current(),
            joblib.parallel_backend("dask", wait_for_workers_timeout=timeout),
            get_task_stream(client=client) as stream,
        ):
            yield used
        used.workers = {task["worker"] for task in stream.data}
    except (CancelledError, OSError) as err:  # distributed's FutureCancelledError, CommClosedError
        raise ClusterUnavailable(f"the Dask cluster at {address} was lost during training ({err})") from err
    finally:
        client.close()
