"""Per-process service state and the typed dependencies that hand it to routes."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Annotated, Any

from fastapi import Depends, Request
from pydantic import TypeAdapter

from core.predlog import LoggedRequest, PredictionLog
from core.usecase import UseCase
from services.serving.batching import BatchResult, MicroBatcher
from services.serving.control import Control
from services.serving.model_store import LoadedModel
from services.serving.prediction_log import AsyncPredictionLogWriter, RequestIdLookups, SpillFolder
from services.serving.schemas import record_dict
from services.serving.settings import ServingSettings
from services.serving.telemetry import ServiceMetrics


class ServiceState:
    """Everything a request handler needs, built once per process in ``create_app``."""

    def __init__(self, *, settings: ServingSettings, use_case: UseCase, control: Control, log: PredictionLog) -> None:
        self.settings = settings
        self.use_case = use_case
        self.control = control
        self.log = log
        self.writer = AsyncPredictionLogWriter(
            log,
            max_queue=settings.log_queue_size,
            linger_s=settings.log_linger_ms / 1000,
            spill=SpillFolder(settings.resolved_log_spill_dir),
        )
        self.request_ids = RequestIdLookups(log, on_loop=log.local)
        self.metrics = ServiceMetrics()
        # Records are validated straight from the request's bytes into plain dicts (pydantic's
        # Rust JSON parser, no model objects): the same rules as the documented record model.
        record = record_dict(use_case)
        self.one = TypeAdapter(record)
        self.many = TypeAdapter(list[record])
        self.background: set[asyncio.Task[None]] = set()
        # Large rounds run on this one thread, off the event loop; small ones on the loop (see
        # batching). Native thread limits (OpenMP, BLAS) are per thread, so they are set here too.
        self.predict_executor = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="predict", initializer=_limit_native_threads, initargs=(settings,)
        )
        self.batcher = MicroBatcher(
            max_rows=settings.batch_max_rows,
            max_wait_s=settings.batch_wait_ms / 1000,
            turn_wait_s=settings.batch_turn_wait_ms / 1000,
            executor=self.predict_executor,
        )

    async def predict(self, model: LoadedModel, records: list[dict[str, Any]]) -> BatchResult:
        """Predict ``records`` with ``model``, sharing the call with concurrent requests for it."""
        use_case = self.use_case
        return await self.batcher.submit(model, lambda batch: model.predict(batch, use_case), records)

    async def close_batcher(self) -> None:
        await self.batcher.close()
        self.predict_executor.shutdown(wait=False, cancel_futures=True)

    def log_entry(
        self,
        *,
        request_id: str,
        records: list[dict[str, Any]],
        model: LoadedModel,
        variant: str,
        values: Any,
        latency_ms: float,
        error: str | None = None,
    ) -> LoggedRequest:
        return LoggedRequest(
            request_id=request_id,
            # The control plane's clock, not the wall clock: analysis windows are cut with it.
            ts=self.control.clock.now(),
            use_case=self.use_case.name,
            model_name=model.name,
            model_version=model.version,
            variant=variant,
            features=records,
            predictions=None if error else values.tolist(),
            latency_ms=latency_ms,
            error=error,
        )


def _limit_native_threads(settings: ServingSettings) -> None:
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=settings.predict_threads)


async def get_state(request: Request) -> ServiceState:
    # async on purpose: FastAPI runs a plain ``def`` dependency in a worker thread, per request.
    return request.app.state.service


State = Annotated[ServiceState, Depends(get_state)]
