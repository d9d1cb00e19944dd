"""The prediction service: composition root and routes.

Start it with ``mlops serve``. It serves ``models:/<name>@champion``, logs
every prediction without blocking the response, and accepts ground truth
through ``/feedback``.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

import orjson
from fastapi import FastAPI, Header, HTTPException, Request, Response, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse

from core.db import UNAVAILABLE
from core.predlog import PredictionLog, prediction_ids
from core.telemetry import disable_telemetry
from core.usecase import load_use_case
from core.version import installed_version
from models.records import label_problem
from services.serving import heap, oip
from services.serving.admin import admin_router
from services.serving.answers import BODY_ANSWERS, DATABASE_ANSWER
from services.serving.control import Control
from services.serving.dependencies import ServiceState, State
from services.serving.middleware import BodySizeLimit, JsonBodiesOnly
from services.serving.mlflow_protocol import MLFLOW_BODY, mlflow_records
from services.serving.model_store import ServingRegistry, model_source_for
from services.serving.predicting import (
    HEADER_PARAMETERS,
    parse_records,
    prediction_labels,
    request_headers,
    serve,
    serving_snapshot,
)
from services.serving.rollouts.clock import Clock, SystemClock
from services.serving.rollouts.router import PIN_HEADER
from services.serving.rollouts.store import RolloutStore
from services.serving.schemas import (
    ExplainResponse,
    Explanation,
    FeedbackRequest,
    FeedbackResponse,
    LabelResult,
    PredictResponse,
    Readiness,
    record_model,
)
from services.serving.settings import ServingSettings
from services.serving.ui import ui_router

logger = logging.getLogger(__name__)


def create_app(
    settings: ServingSettings | None = None,
    *,
    model_source: ServingRegistry | None = None,
    prediction_log: PredictionLog | None = None,
    clock: Clock | None = None,
) -> FastAPI:
    """Composition root of the serving process. Tests pass their own source, log and clock."""
    disable_telemetry()
    settings = settings or ServingSettings()
    use_case = load_use_case(settings.use_case, usecases_dir=settings.usecases_dir)
    if settings.prediction_log_url is None or settings.state_db_url is None:
        settings.layout.ensure()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        from threadpoolctl import threadpool_limits

        # Native thread pools, for the life of the process. NumPy's BLAS is loaded already and is
        # limited here; scikit-learn's OpenMP (and SciPy's BLAS) load later, if at all (a tree
        # model's pipeline joins in the background), and read their size from the environment then.
        for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            os.environ[variable] = str(settings.predict_threads)
        threadpool_limits(limits=settings.predict_threads)
        source = model_source or model_source_for(settings.resolved_tracking_uri)
        log = prediction_log or PredictionLog(settings.resolved_prediction_log_url)
        store = RolloutStore(settings.resolved_state_db_url)
        control = Control(
            use_case=use_case,
            store=store,
            source=source,
            predictions=log,
            clock=clock or SystemClock(),
            sync_interval=settings.sync_interval_seconds,
            control_interval=settings.control_interval_seconds,
            registry_check_interval=settings.registry_check_interval_seconds,
            compile_models=settings.compile_models,
            native_tree_walk=settings.native_tree_walk,
            predict_jobs=settings.predict_threads,
            # A loaded version lives long: it leaves the garbage collector's walk (services/serving/heap.py).
            on_load=lambda what: heap.settle(after=what),
        )
        state = ServiceState(settings=settings, use_case=use_case, control=control, log=log)
        app.state.service = state
        state.writer.start()
        await control.start()  # no champion yet is fine: /ready says why
        yield
        await control.stop()
        await asyncio.gather(*state.background, return_exceptions=True)
        await state.close_batcher()
        await state.writer.stop()
        store.close()
        log.close()
        heap.release()

    app = FastAPI(
        title=f"mlops serving: {use_case.name}",
        description=f"Serves `models:/{use_case.model_name}@champion` ({use_case.task}), with rollouts.",
        lifespan=lifespan,
    )

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's own handler fails on the NaN/Infinity it echoes back; JSON cannot carry them.
        return JSONResponse(
            {"detail": [_json_safe(e) for e in exc.errors()]}, status_code=status.HTTP_422_UNPROCESSABLE_CONTENT
        )

    async def database_unavailable(_: Request, exc: Exception) -> JSONResponse:
        # A database restart or failover: the request may succeed in a moment, on this replica or another
        # (the gateway retries a 503 elsewhere). A 500 would say the request itself is at fault.
        cause = exc.orig if isinstance(exc, UNAVAILABLE) else exc  # the driver's error names what failed
        logger.warning("database unavailable: %s", cause)
        return JSONResponse(
            {"detail": f"the service's database is unavailable ({type(cause).__name__}); retry shortly"},
            status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
            headers={"Retry-After": "2"},
        )

    for unavailable in UNAVAILABLE:
        app.add_exception_handler(unavailable, database_unavailable)

    # Added last, so it runs first: a body over the limit is refused before its type is looked at.
    app.add_middleware(JsonBodiesOnly)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)

    @app.get("/health")
    async def health() -> dict[str, str]:
        """The process is up (it may still have no model: see /ready)."""
        return {"status": "ok"}

    @app.get("/ready", response_model=Readiness, responses={503: {"model": Readiness}})
    async def ready(state: State) -> Any:
        """A model is loaded and predictions can be served (with the registry down too: it says so)."""
        snap, control = state.control.snapshot, state.control
        body = Readiness(
            ready=snap is not None,
            use_case=state.use_case.name,
            model_name=state.use_case.model_name,
            model_version=snap.stable.version if snap else None,
            reason=None if snap else control.last_error,
            registry="ok" if control.registry_error is None else "unreachable",
            registry_error=control.registry_error,
        )
        return JSONResponse(body.model_dump(), status_code=200 if snap else 503)

    @app.get("/metrics", include_in_schema=False)
    async def metrics(state: State) -> PlainTextResponse:
        snap = state.control.snapshot
        state.metrics.observe_rollout(snap.rollout if snap else None, snap.stable.version if snap else None)
        writer = state.writer
        spilled = await asyncio.to_thread(writer.spilled_rows)
        state.metrics.observe_log(queued=writer.queued_rows, spilled=spilled, lost=writer.lost_rows)
        return PlainTextResponse(state.metrics.render(), media_type="text/plain; version=0.0.4")

    # What /predict and /explain share: the body (one record or a list) and the answers to bad input.
    record_schema = record_model(use_case).model_json_schema()
    body_schema = {"oneOf": [record_schema, {"type": "array", "items": record_schema}]}
    records_body = {"requestBody": {"required": True, "content": {"application/json": {"schema": body_schema}}}}
    record_errors: dict[int | str, dict[str, Any]] = {
        **BODY_ANSWERS,
        400: {"description": f"A malformed X-Request-ID or {PIN_HEADER} header, or a body that is not JSON text."},
        409: {"description": f"{PIN_HEADER}: candidate while no rollout runs."},
        422: {"description": "A field is missing, extra, out of range or of the wrong type."},
        503: {"description": "No model loaded (for example, no champion yet), or the database is unavailable."},
    }
    predict_errors: dict[int | str, dict[str, Any]] = {
        **record_errors,
        409: {
            "description": f"{PIN_HEADER}: candidate while no rollout runs; or an X-Request-ID already used for "
            "other records (a retry of the same records is answered again, and logged once)."
        },
        500: {"description": "The serving version failed on these records (the failure is logged)."},
    }

    @app.post(
        "/predict",
        response_model=PredictResponse,
        responses=predict_errors,
        openapi_extra={**records_body, "parameters": HEADER_PARAMETERS},
    )
    async def predict(request: Request, state: State) -> Response:
        """Predict for one record (object) or a batch (list). Every prediction is logged with an id.

        During a rollout the router picks the version; `X-Pin-Variant: stable|candidate` pins it
        (internal testers, blue-green preview) and the A/B routing header keeps a user on one arm.
        """
        x_request_id, pin = request_headers(request)
        served = await serve(state, request, await request.body(), x_request_id=x_request_id, pin=pin)
        model, variant, values, request_id = served.model, served.variant, served.values, served.request_id
        records = served.records
        ids = prediction_ids(request_id, len(records))
        classifier = state.use_case.task == "classification"
        labels = prediction_labels(values, state.use_case, threshold=model.threshold)
        # Serialized here, not through the response model: on a 1,000-record batch, validating and
        # dumping 1,000 pydantic objects costs more than predicting them. The shape is PredictResponse's.
        body = {
            "request_id": request_id,
            "model_name": model.name,
            "model_version": model.version,
            "variant": variant,
            "threshold": model.threshold if classifier else None,
            "predictions": [
                {"id": pid, "value": v, "label": lab} for pid, v, lab in zip(ids, values.tolist(), labels, strict=True)
            ],
        }
        return Response(orjson.dumps(body), media_type="application/json", headers=served.headers)

    @app.post(
        "/invocations",
        tags=["mlflow"],
        responses=predict_errors,
        openapi_extra={
            "requestBody": {"required": True, "content": {"application/json": {"schema": MLFLOW_BODY}}},
            "parameters": HEADER_PARAMETERS,
        },
    )
    async def invocations(request: Request, state: State) -> Response:
        """MLflow's scoring protocol, for clients of `mlflow models serve`: `dataframe_split`,
        `dataframe_records`, `instances` or `inputs`, answered `{"predictions": [...]}` (the
        values of /predict: a classifier's probability of the positive class). Same checks,
        routing, micro-batching and logging as /predict."""
        body = await request.body()
        records = mlflow_records(body, features=state.use_case.features)
        x_request_id, pin = request_headers(request)
        served = await serve(state, request, orjson.dumps(records), x_request_id=x_request_id, pin=pin)
        answer = {"predictions": served.values.tolist()}
        return Response(orjson.dumps(answer), media_type="application/json", headers=served.headers)

    @app.get(
        "/ping",
        tags=["mlflow"],
        response_class=PlainTextResponse,
        responses={503: {"description": "No model loaded yet.", "content": {"text/plain": {}}}},
    )
    async def ping(state: State) -> PlainTextResponse:
        """MLflow's readiness probe: 200 once a model is loaded, as /ready."""
        ready = state.control.snapshot is not None
        return PlainTextResponse("\n" if ready else "no model loaded\n", status_code=200 if ready else 503)

    @app.get("/version", tags=["mlflow"], response_class=PlainTextResponse)
    async def version() -> PlainTextResponse:
        """The service's version (MLflow's scoring server answers its own here)."""
        return PlainTextResponse(installed_version())

    # The Open Inference Protocol (KServe/Triton v2 REST), through the same path as /predict.
    oip.install(app)

    @app.post(
        "/explain",
        response_model=ExplainResponse,
        responses={
            409: {"description": "The version was registered without background rows to explain against."},
            413: {"description": "More records than MLOPS_EXPLAIN_MAX_RECORDS."},
            **record_errors,
        },
        openapi_extra=records_body,
    )
    async def explain(
        request: Request,
        state: State,
        x_pin_variant: Annotated[str | None, Header(alias=PIN_HEADER)] = None,
    ) -> ExplainResponse:
        """Why the model predicts what it does: per record, each feature's exact Shapley value against
        the model's training background, adding up to the prediction minus the base value. Same body
        and checks as /predict; explains the stable version (`X-Pin-Variant: candidate` for the other).
        Nothing is logged: an explanation is not a prediction served to a user."""
        snap = serving_snapshot(state, pin=x_pin_variant)
        model = snap.candidate if x_pin_variant == "candidate" else snap.stable
        assert model is not None  # a candidate pin without a candidate was refused above
        records = parse_records(state, await request.body())
        if len(records) > state.settings.explain_max_records:
            raise HTTPException(
                status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
                f"{len(records)} records to explain; the limit is {state.settings.explain_max_records}",
            )
        if not model.background:
            raise HTTPException(
                status.HTTP_409_CONFLICT,
                f"model v{model.version} was registered without background rows: retrain to explain it",
            )
        from models.explain import explain as shapley  # only here: /predict never loads it

        use_case = state.use_case

        def run() -> list[Any]:
            predict = lambda rows: model.predict(rows, use_case)  # noqa: E731
            return [shapley(predict, r, model.background, use_case.features) for r in records]

        found = await asyncio.to_thread(run)
        return ExplainResponse(
            model_name=model.name,
            model_version=model.version,
            base_value=found[0].base_value,
            explanations=[Explanation(prediction=e.prediction, contributions=e.contributions) for e in found],
        )

    @app.post("/feedback", response_model=FeedbackResponse, responses={**BODY_ANSWERS, **DATABASE_ANSWER})
    async def feedback(body: FeedbackRequest, state: State) -> FeedbackResponse:
        """Ground truth for earlier predictions, answered per id: `stored`; `unknown` (no such
        prediction); or `invalid` (a label that does not fit the target: a class spelled otherwise, a
        regression label that is not a finite number in range; `problem` says why). The labels of
        known ids that fit are stored whatever the others are, so a retry needs only the ones that
        were not. Idempotent: an id sent again, in this request or a later one, keeps its last
        label, recorded with the time it arrived."""
        latest = {item.id: item.label for item in body.labels}  # a repeated id: its last label
        problems = {pid: p for pid, label in latest.items() if (p := label_problem(label, state.use_case))}
        fitting = [pid for pid in latest if pid not in problems]
        unknown = set(await _unknown_ids(state, fitting))
        stored = [(pid, latest[pid]) for pid in fitting if pid not in unknown]
        if stored:
            await asyncio.to_thread(state.log.add_feedback, stored, ts=state.control.clock.now())
        return FeedbackResponse(
            accepted=len(stored),
            unknown=len(unknown),
            invalid=len(problems),
            results=[
                LabelResult(id=pid, status="invalid", problem=problems[pid])
                if pid in problems
                else LabelResult(id=pid, status="unknown" if pid in unknown else "stored")
                for pid in latest
            ],
        )

    if settings.dev_mode:
        logger.warning(
            "MLOPS_DEV_MODE is on%s: fine for `make demo` and tests on a loopback address, never in production",
            " and the admin token is the public default" if settings.uses_public_token else "",
        )
    # Routes match in the order they were added: the admin API and the UI last, so that a prediction
    # is not first compared with each of their routes (8 % of the event loop's time under load).
    app.include_router(admin_router, prefix="/admin", tags=["admin"])
    app.include_router(ui_router)
    return app


async def _unknown_ids(state: ServiceState, ids: list[str]) -> list[str]:
    """The ids the prediction log does not hold, after a bounded wait for the ones still on their way."""
    if not ids:
        return []
    await state.writer.flush()  # predictions answered a moment ago may still be in the queue
    unknown = await asyncio.to_thread(state.log.unknown_ids, ids)
    # Behind a gateway the prediction may have been answered by another replica, whose writer
    # can hold it for a moment (MLOPS_LOG_LINGER_MS): look again for a bounded time.
    deadline = time.monotonic() + state.settings.feedback_wait_ms / 1000
    while unknown and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
        unknown = await asyncio.to_thread(state.log.unknown_ids, unknown)
    return unknown


def _json_safe(error: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in error.items() if k in ("type", "loc", "msg", "input")}
    value = out.get("input")
    if isinstance(value, float) and not math.isfinite(value):
        out["input"] = str(value)
    elif not isinstance(value, str | int | float | bool | list | dict | type(None)):
        out["input"] = repr(value)
    return out


def app_from_env() -> FastAPI:
    """Factory for ``uvicorn --factory``: settings come from MLOPS_* variables."""
    return create_app(ServingSettings())
