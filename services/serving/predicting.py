"""The prediction path every protocol shares: /predict, MLflow's /invocations and the Open Inference
Protocol's infer route all parse records here, check them, route them to a version, predict
(micro-batched), log and mirror them the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import uuid
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
from fastapi import HTTPException, Request, status
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from core.db import UNAVAILABLE
from core.predlog import LoggedRequest
from core.usecase import UseCase
from services.serving.dependencies import ServiceState
from services.serving.model_store import LoadedModel
from services.serving.prediction_log import Records
from services.serving.rollouts.router import PIN_HEADER, Route, route

log = logging.getLogger(__name__)

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,96}$")


# /predict's and /invocations' headers, read from the request rather than as FastAPI Header()
# parameters, which FastAPI (0.150) re-inspects on every request: 8 % of the throughput of
# single-record predictions. OpenAPI learns of them from these declarations instead.
HEADER_PARAMETERS = [
    {
        "name": "X-Request-ID",
        "in": "header",
        "required": False,
        "schema": {"type": "string", "pattern": _REQUEST_ID.pattern},
        "description": "Names the request for the life of the prediction log: the same records again are a retry.",
    },
    {
        "name": PIN_HEADER,
        "in": "header",
        "required": False,
        "schema": {"type": "string", "enum": ["stable", "candidate"]},
        "description": "Pins the version during a rollout (internal testers, a blue-green preview).",
    },
]


def request_headers(request: Request) -> tuple[str | None, str | None]:
    """(X-Request-ID, the pin) as the client sent them."""
    headers = request.headers
    return headers.get("x-request-id"), headers.get(PIN_HEADER)


def parse_records(state: ServiceState, body: bytes) -> list[dict[str, Any]]:
    """One record (an object) or a batch (a list), validated from the bytes into plain dicts.

    The valid case is the fast one: pydantic parses and checks the JSON in one pass, with no
    Python object per value beyond the dicts the model needs. Errors name the field and the
    value, as FastAPI's own do.
    """
    start = body.lstrip()[:1]
    try:
        if start == b"{":
            return [state.one.validate_json(body)]
        if start == b"[":
            records = state.many.validate_json(body)
            if not records:
                raise RequestValidationError(
                    [{"type": "too_short", "loc": ("body",), "msg": "empty batch", "input": []}]
                )
            _check_batch_size(state, len(records))
            return records
    except ValidationError as err:
        errors = err.errors(include_url=False)
        if errors and errors[0]["type"] == "json_invalid":
            raise RequestValidationError(
                [{"type": "json_invalid", "loc": ("body",), "msg": f"invalid JSON: {errors[0]['msg']}", "input": None}]
            ) from None
        if start == b"[":  # an oversized batch is refused as such, whatever else is wrong with it
            with contextlib.suppress(orjson.JSONDecodeError):
                payload = orjson.loads(body)
                if isinstance(payload, list):
                    _check_batch_size(state, len(payload))
        raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in errors]) from None
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as err:
        raise RequestValidationError(
            [{"type": "json_invalid", "loc": ("body",), "msg": f"invalid JSON: {err}", "input": None}]
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


def _check_batch_size(state: ServiceState, n: int) -> None:
    if n > state.settings.max_records:
        raise HTTPException(
            status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
            f"{n} records in one request; the limit is {state.settings.max_records}",
        )


@dataclass(frozen=True)
class Served:
    """One answered request: the records, the version and variant that answered, their values."""

    request_id: str
    records: list[dict[str, Any]]
    model: LoadedModel
    variant: str
    values: Any

    @property
    def headers(self) -> dict[str, str]:
        return {"X-Model-Version": self.model.version, "X-Variant": self.variant, "X-Request-ID": self.request_id}


async def serve(
    state: ServiceState, request: Request, body: bytes, *, x_request_id: str | None, pin: str | None
) -> Served:
    """What every prediction route does: check, route, predict (micro-batched), log, mirror."""
    snap = serving_snapshot(state, pin=pin)
    if x_request_id is not None and not _REQUEST_ID.match(x_request_id):
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "X-Request-ID must be 1-96 chars of [A-Za-z0-9._:-]")
    records = parse_records(state, body)
    # Whether a client-chosen id was used before is asked now and read after the prediction, so the
    # lookup's round trip (a database server's: a worker thread and the network) overlaps the model's
    # work instead of adding to it. Nothing is logged or answered before the check.
    earlier = earlier_use(state, x_request_id) if x_request_id is not None else None
    request_id = x_request_id or uuid.uuid4().hex
    rollout = snap.rollout if snap.candidate is not None else None
    routing_key = request.headers.get(rollout.config.ab.routing_header) if rollout else None
    decision = route(rollout, request_key=request_id, routing_key=routing_key, pin=pin)  # type: ignore[arg-type]
    try:
        model, variant, values, entries = await _answer(state, snap, decision, request_id, records)
    except BaseException:
        if isinstance(earlier, asyncio.Future):
            earlier.cancel()  # nobody will read the lookup now
        raise
    if x_request_id is not None:
        await check_request_id(state, x_request_id, records, earlier=earlier)
    await state.writer.submit(entries)
    if decision.mirror and snap.candidate is not None:
        task = asyncio.create_task(_mirror(state, snap.candidate, request_id, records))
        state.background.add(task)
        task.add_done_callback(state.background.discard)
    return Served(request_id, records, model, variant, values)


def earlier_use(state: ServiceState, request_id: str) -> Records | asyncio.Future[Records | None]:
    """The records an earlier request logged under ``request_id``: known now when that request is still
    queued for the log (the store cannot tell yet), else the store's lookup, started now."""
    pending = state.writer.pending_records(request_id)
    return pending if pending is not None else state.request_ids.ask(request_id)


async def check_request_id(
    state: ServiceState,
    request_id: str,
    records: list[dict[str, Any]],
    *,
    earlier: Records | asyncio.Future[Records | None] | None,
) -> None:
    """A client-chosen X-Request-ID names one request for the life of the prediction log.

    The same records again are a retry (a gateway's, a client's): answered again and logged once.
    Other records under a used id are refused: logged under it, they would be lost (the log keeps
    one answer per id), and labels sent for its prediction ids would join the wrong records.
    ``earlier`` is what ``earlier_use`` gave when the request arrived.
    """
    if isinstance(earlier, asyncio.Future):
        try:
            earlier = await earlier
        except UNAVAILABLE as err:
            # The database is restarting. Answering does not need it (the log's writer spills meanwhile),
            # and refusing would turn a restart into failed predictions, so the request is answered
            # unchecked. Were its records another use of the id, the log would keep the first use's.
            log.warning("X-Request-ID %r answered unchecked: the database is unavailable (%s)", request_id, err.orig)
            return
    if earlier is not None and earlier != records:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            f"X-Request-ID '{request_id}' was used for other records: send a new id (a retry must send the "
            "same records)",
        )


def serving_snapshot(state: ServiceState, *, pin: str | None) -> Any:
    """What serves now; 503 when nothing does, 400 for an unknown pin, 409 for a candidate pin without one."""
    snap = state.control.snapshot
    if snap is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, f"no model to serve: {state.control.last_error}")
    if pin not in (None, "stable", "candidate"):
        raise HTTPException(status.HTTP_400_BAD_REQUEST, f"{PIN_HEADER} must be 'stable' or 'candidate'")
    if pin == "candidate" and snap.candidate is None:
        raise HTTPException(status.HTTP_409_CONFLICT, "no rollout in progress: there is no candidate to pin")
    return snap


async def _timed_predict(
    state: ServiceState, model: LoadedModel, records: list[dict[str, Any]]
) -> tuple[Any, str | None, float]:
    """(values, error, latency in ms): a failure is returned, not raised, so the caller decides what it means.

    The call joins the model's micro-batch: concurrent requests share one predict call.
    """
    result = await state.predict(model, records)
    return result.values, result.error, result.latency_ms


def _record(
    state: ServiceState,
    model: LoadedModel,
    variant: str,
    values: Any,
    error: str | None,
    latency: float,
    *,
    request_id: str,
    records: list[dict[str, Any]],
) -> LoggedRequest:
    state.metrics.count(
        version=model.version, variant=variant, ok=error is None, records=len(records), latency_s=latency / 1000
    )
    return state.log_entry(
        request_id=request_id,
        records=records,
        model=model,
        variant=variant,
        values=values,
        latency_ms=latency,
        error=error,
    )


async def _answer(
    state: ServiceState,
    snap: Any,
    decision: Route,
    request_id: str,
    records: list[dict[str, Any]],
) -> tuple[LoadedModel, str, Any, list[LoggedRequest]]:
    """Predict with the routed version. A failing candidate falls back to stable; its failure is logged."""
    where = {"request_id": request_id, "records": records}
    entries: list[LoggedRequest] = []
    if decision.variant == "candidate" and snap.candidate is not None:
        values, error, latency = await _timed_predict(state, snap.candidate, records)
        entries.append(_record(state, snap.candidate, "candidate", values, error, latency, **where))
        if error is None:
            return snap.candidate, "candidate", values, entries
    values, error, latency = await _timed_predict(state, snap.stable, records)
    if error is not None:
        raise HTTPException(
            status.HTTP_500_INTERNAL_SERVER_ERROR, f"model v{snap.stable.version} failed: {error.split(':')[0]}"
        )
    entries.append(_record(state, snap.stable, "stable", values, None, latency, **where))
    return snap.stable, "stable", values, entries


async def _mirror(state: ServiceState, candidate: LoadedModel, request_id: str, records: list[dict[str, Any]]) -> None:
    """Shadow traffic: the candidate answers off the user's path; its answer is only logged."""
    values, error, latency = await _timed_predict(state, candidate, records)
    await state.writer.submit(
        [_record(state, candidate, "shadow", values, error, latency, request_id=request_id, records=records)]
    )


def prediction_labels(values: np.ndarray, use_case: UseCase, *, threshold: float) -> list[str | None]:
    """A classifier's label: the positive class when the probability reaches the version's threshold."""
    if use_case.task != "classification":
        return [None] * len(values)
    categories = use_case.schema_.columns[use_case.target].categories or []
    negative = next(c for c in categories if c != use_case.positive_class)
    return [use_case.positive_class if v >= threshold else negative for v in values]
