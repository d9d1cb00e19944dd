"""The prediction service: composition root and routes.

Start it with ``mlops serve``. It serves ``models:/<name>@champion``, logs
every prediction without blocking the response, and accepts ground truth
through ``/feedback``.
"""

from __future__ import annotations

import json
import math
import re
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

import numpy as np
from fastapi import Depends, FastAPI, Header, HTTPException, Request, Response, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import TypeAdapter, ValidationError

from core.predlog import PredictionLog, PredictionRecord
from core.telemetry import disable_telemetry
from core.usecase import UseCase, load_use_case
from models.frames import feature_frame
from services.serving.model_store import ModelSource, ModelStore, ModelUnavailable, RegistryModelSource
from services.serving.prediction_log import AsyncPredictionLogWriter
from services.serving.schemas import (
    FeedbackRequest,
    FeedbackResponse,
    Prediction,
    PredictResponse,
    Readiness,
    record_model,
)
from services.serving.settings import ServingSettings

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,96}$")


class ServiceState:
    """Everything a request handler needs, built once per process in ``create_app``."""

    def __init__(self, *, settings: ServingSettings, use_case: UseCase, store: ModelStore, log: PredictionLog) -> None:
        self.settings = settings
        self.use_case = use_case
        self.store = store
        self.log = log
        self.writer = AsyncPredictionLogWriter(log, max_queue=settings.log_queue_size)
        record = record_model(use_case)
        self.one = TypeAdapter(record)
        self.many = TypeAdapter(list[record])


def get_state(request: Request) -> ServiceState:
    return request.app.state.service


State = Annotated[ServiceState, Depends(get_state)]


def require_admin(state: State, x_admin_token: Annotated[str | None, Header()] = None) -> None:
    if x_admin_token is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "missing X-Admin-Token header")
    if x_admin_token != state.settings.admin_token:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "wrong admin token")


def _parse_records(state: ServiceState, body: bytes) -> list[dict[str, Any]]:
    """One record (an object) or a batch (a list). Errors name the field and the value, as FastAPI's own do."""
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise RequestValidationError(
            [{"type": "json_invalid", "loc": ("body",), "msg": f"invalid JSON: {err}", "input": None}]
        ) from None
    try:
        if isinstance(payload, dict):
            return [state.one.validate_python(payload).model_dump()]
        if isinstance(payload, list):
            if not payload:
                raise RequestValidationError(
                    [{"type": "too_short", "loc": ("body",), "msg": "empty batch", "input": []}]
                )
            if len(payload) > state.settings.max_records:
                raise HTTPException(
                    status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
                    f"{len(payload)} records in one request; the limit is {state.settings.max_records}",
                )
            return [r.model_dump() for r in state.many.validate_python(payload)]
    except ValidationError as err:
        raise RequestValidationError(
            [{**e, "loc": ("body", *e["loc"])} for e in err.errors(include_url=False)]
        ) from None
    raise RequestValidationError(
        [
            {
                "type": "model_type",
                "loc": ("body",),
                "msg": "expected a record (object) or a batch (list of records)",
                "input": type(payload).__name__,
            }
        ]
    )


def create_app(
    settings: ServingSettings | None = None,
    *,
    model_source: ModelSource | None = None,
    prediction_log: PredictionLog | None = None,
) -> FastAPI:
    """Composition root of the serving process. Tests pass their own source and log."""
    disable_telemetry()
    settings = settings or ServingSettings()
    use_case = load_use_case(settings.use_case, usecases_dir=settings.usecases_dir)
    if settings.prediction_log_url is None:
        settings.layout.ensure()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        source = model_source or RegistryModelSource(tracking_uri=settings.resolved_tracking_uri)
        log = prediction_log or PredictionLog(settings.resolved_prediction_log_url)
        state = ServiceState(
            settings=settings, use_case=use_case, store=ModelStore(source, name=use_case.model_name), log=log
        )
        app.state.service = state
        state.writer.start()
        try:
            await state.store.reload()
        except ModelUnavailable:
            pass  # /ready reports why; /admin/reload retries once a champion exists
        yield
        await state.writer.stop()
        log.close()

    app = FastAPI(
        title=f"mlops serving: {use_case.name}",
        description=f"Serves `models:/{use_case.model_name}@champion` ({use_case.task}).",
        lifespan=lifespan,
    )

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's own handler fails on the NaN/Infinity it echoes back; JSON cannot carry them.
        return JSONResponse(
            {"detail": [_json_safe(e) for e in exc.errors()]}, status_code=status.HTTP_422_UNPROCESSABLE_CONTENT
        )

    @app.middleware("http")
    async def limit_body(request: Request, call_next: Any) -> Response:
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > settings.max_body_bytes:
            return JSONResponse(
                {"detail": f"request body of {length} bytes exceeds {settings.max_body_bytes}"},
                status_code=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
            )
        return await call_next(request)

    @app.get("/health")
    async def health() -> dict[str, str]:
        """The process is up (it may still have no model: see /ready)."""
        return {"status": "ok"}

    @app.get("/ready", response_model=Readiness, responses={503: {"model": Readiness}})
    async def ready(state: State) -> Any:
        """A model is loaded and predictions can be served."""
        store = state.store
        body = Readiness(
            ready=store.ready,
            use_case=state.use_case.name,
            model_name=state.use_case.model_name,
            model_version=store.current.version if store.ready else None,
            reason=None if store.ready else store.last_error,
        )
        return JSONResponse(body.model_dump(), status_code=200 if store.ready else 503)

    record_schema = record_model(use_case).model_json_schema()
    body_schema = {"oneOf": [record_schema, {"type": "array", "items": record_schema}]}

    @app.post(
        "/predict",
        response_model=PredictResponse,
        responses={
            422: {"description": "A field is missing, extra, out of range or of the wrong type."},
            503: {"description": "No model loaded (for example, no champion yet)."},
        },
        openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": body_schema}}}},
    )
    async def predict(
        request: Request,
        response: Response,
        state: State,
        x_request_id: Annotated[str | None, Header()] = None,
    ) -> PredictResponse:
        """Predict for one record (object) or a batch (list). Every prediction is logged with an id."""
        started = time.perf_counter()
        try:
            model = state.store.current
        except ModelUnavailable as err:
            raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, f"no model to serve: {err}") from None
        if x_request_id is not None and not _REQUEST_ID.match(x_request_id):
            raise HTTPException(status.HTTP_400_BAD_REQUEST, "X-Request-ID must be 1-96 chars of [A-Za-z0-9._:-]")
        records = _parse_records(state, await request.body())
        request_id = x_request_id or uuid.uuid4().hex
        values = model.predict(feature_frame(records, state.use_case), state.use_case)
        ids = [request_id] if len(records) == 1 else [f"{request_id}/{i}" for i in range(len(records))]
        labels = _labels(values, state.use_case)
        latency_ms = (time.perf_counter() - started) * 1000
        now = time.time()
        await state.writer.submit(
            [
                PredictionRecord(
                    pid,
                    request_id,
                    now,
                    state.use_case.name,
                    model.name,
                    model.version,
                    "stable",
                    rec,
                    float(v),
                    latency_ms,
                )
                for pid, rec, v in zip(ids, records, values, strict=True)
            ]
        )
        response.headers["X-Model-Version"] = model.version
        response.headers["X-Request-ID"] = request_id
        return PredictResponse(
            request_id=request_id,
            model_name=model.name,
            model_version=model.version,
            predictions=[
                Prediction(id=pid, value=float(v), label=lab) for pid, v, lab in zip(ids, values, labels, strict=True)
            ],
        )

    @app.post(
        "/feedback",
        response_model=FeedbackResponse,
        responses={404: {"description": "Unknown prediction ids; nothing was stored."}},
    )
    async def feedback(body: FeedbackRequest, state: State) -> FeedbackResponse:
        """Ground truth for earlier predictions. All-or-nothing: unknown ids reject the whole request."""
        await state.writer.flush()  # predictions answered a moment ago may still be in the queue
        unknown = state.log.unknown_ids(label.id for label in body.labels)
        if unknown:
            raise HTTPException(
                status.HTTP_404_NOT_FOUND,
                {
                    "message": "unknown prediction ids; nothing was stored",
                    "unknown_ids": unknown[:100],
                    "unknown_count": len(unknown),
                },
            )
        state.log.add_feedback([(label.id, label.label) for label in body.labels], ts=time.time())
        return FeedbackResponse(accepted=len(body.labels))

    @app.post("/admin/reload", dependencies=[Depends(require_admin)])
    async def reload(state: State) -> dict[str, Any]:
        """Load the current champion from the registry; the old model keeps serving if that fails."""
        previous = state.store.current.version if state.store.ready else None
        try:
            loaded = await state.store.reload()
        except ModelUnavailable as err:
            raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, f"reload failed: {err}") from None
        return {"model_name": loaded.name, "model_version": loaded.version, "previous_version": previous}

    return app


def _json_safe(error: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in error.items() if k in ("type", "loc", "msg", "input")}
    value = out.get("input")
    if isinstance(value, float) and not math.isfinite(value):
        out["input"] = str(value)
    elif not isinstance(value, str | int | float | bool | list | dict | type(None)):
        out["input"] = repr(value)
    return out


def _labels(values: np.ndarray, use_case: UseCase) -> list[str | None]:
    if use_case.task != "classification":
        return [None] * len(values)
    categories = use_case.schema_.columns[use_case.target].categories or []
    negative = next(c for c in categories if c != use_case.positive_class)
    return [use_case.positive_class if v >= 0.5 else negative for v in values]


def app_from_env() -> FastAPI:
    """Factory for ``uvicorn --factory``: settings come from MLOPS_* variables."""
    return create_app(ServingSettings())
