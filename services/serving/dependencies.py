"""Per-process service state and the typed dependencies that hand it to routes."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Annotated, Any

from fastapi import Depends, Header, HTTPException, Request, status
from pydantic import TypeAdapter

from core.predlog import PredictionLog, PredictionRecord
from core.usecase import UseCase
from models.frames import feature_frame
from services.serving.batching import MicroBatcher
from services.serving.control import Control
from services.serving.model_store import LoadedModel
from services.serving.prediction_log import AsyncPredictionLogWriter
from services.serving.schemas import record_model
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
            log, max_queue=settings.log_queue_size, linger_s=settings.log_linger_ms / 1000
        )
        self.metrics = ServiceMetrics()
        record = record_model(use_case)
        self.one = TypeAdapter(record)
        self.many = TypeAdapter(list[record])
        self.background: set[asyncio.Task[None]] = set()
        self._batchers: dict[LoadedModel, MicroBatcher] = {}
        # Every prediction runs on this one thread, off the event loop. Native thread limits
        # (OpenMP, BLAS) are per thread, so they are set here, where the models run.
        self.predict_executor = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="predict", initializer=_limit_native_threads, initargs=(settings,)
        )

    def batcher(self, model: LoadedModel) -> MicroBatcher:
        """The micro-batcher of one loaded model; those of models no longer served are closed."""
        if model not in self._batchers:
            snap = self.control.snapshot
            live = {m for m in (snap.stable, snap.candidate) if m is not None} if snap else set()
            for old in [m for m in self._batchers if m not in live]:
                closing = asyncio.ensure_future(self._batchers.pop(old).close())
                self.background.add(closing)
                closing.add_done_callback(self.background.discard)
            use_case = self.use_case
            self._batchers[model] = MicroBatcher(
                lambda records: model.predict(feature_frame(records, use_case), use_case),
                max_rows=self.settings.batch_max_rows,
                max_wait_s=self.settings.batch_wait_ms / 1000,
                executor=self.predict_executor,
            )
        return self._batchers[model]

    async def close_batchers(self) -> None:
        await asyncio.gather(*(b.close() for b in self._batchers.values()))
        self._batchers.clear()
        self.predict_executor.shutdown(wait=False, cancel_futures=True)

    def log_rows(
        self,
        *,
        ids: list[str],
        request_id: str,
        records: list[dict[str, Any]],
        model: LoadedModel,
        variant: str,
        values: Any,
        latency_ms: float,
        error: str | None = None,
    ) -> list[PredictionRecord]:
        # The control plane's clock, not the wall clock: analysis windows are cut with it.
        now = self.control.clock.now()
        return [
            PredictionRecord(
                pid,
                request_id,
                now,
                self.use_case.name,
                model.name,
                model.version,
                variant,
                rec,
                None if error else float(v),
                latency_ms,
                error,
            )
            for pid, rec, v in zip(ids, records, values if error is None else [None] * len(ids), strict=True)
        ]


def _limit_native_threads(settings: ServingSettings) -> None:
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=settings.predict_threads)


def get_state(request: Request) -> ServiceState:
    return request.app.state.service


State = Annotated[ServiceState, Depends(get_state)]


def require_admin(state: State, x_admin_token: Annotated[str | None, Header()] = None) -> None:
    if x_admin_token is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "missing X-Admin-Token header")
    if x_admin_token != state.settings.admin_token:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "wrong admin token")
