"""The Open Inference Protocol (KServe/Triton "v2" REST): tensors in, tensors out, as records in between.

A request carries one input tensor per feature column (``shape [n]`` or ``[n, 1]``, the column's
values in ``data``); the records built from them go through /predict's checks. The answer is one
output tensor, ``predictions`` (FP64, shape ``[n]``): the values /predict gives.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import Enum
from typing import Any

import orjson
from fastapi import FastAPI, HTTPException, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from core.usecase import ColumnSpec, UseCase
from core.version import PACKAGE, installed_version
from services.serving.dependencies import ServiceState, State
from services.serving.predicting import serve, serving_snapshot

# The protocol's datatype of each use-case column type.
DATATYPES = {"int": "INT64", "bool": "INT64", "float": "FP64", "category": "BYTES", "str": "BYTES"}
OUTPUT = "predictions"


class OipError(ValueError):
    """A request the protocol refuses: answered 400 with ``{"error": ...}``."""


def _tensor(name: str, spec: ColumnSpec) -> dict[str, Any]:
    return {"name": name, "datatype": DATATYPES[spec.type], "shape": [-1]}


def model_metadata(use_case: UseCase, versions: Sequence[str]) -> dict[str, Any]:
    columns = use_case.schema_.columns
    return {
        "name": use_case.model_name,
        "versions": list(versions),
        "platform": PACKAGE,
        "inputs": [_tensor(name, columns[name]) for name in use_case.features],
        "outputs": [{"name": OUTPUT, "datatype": "FP64", "shape": [-1]}],
    }


def oip_records(body: bytes, use_case: UseCase) -> tuple[str | None, list[dict[str, Any]]]:
    """(the request's id, its records) from an inference request."""
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as err:
        raise OipError(f"invalid JSON: {err}") from None
    if not isinstance(payload, dict) or not isinstance(payload.get("inputs"), list) or not payload["inputs"]:
        raise OipError("an inference request needs 'inputs': a list of tensors, one per feature")
    request_id = payload.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise OipError("'id' must be a string")
    columns: dict[str, list[Any]] = {}
    for tensor in payload["inputs"]:
        if not isinstance(tensor, dict) or not isinstance(tensor.get("name"), str):
            raise OipError("each input tensor needs a 'name'")
        name, data, shape = tensor["name"], tensor.get("data"), tensor.get("shape")
        if name not in use_case.features:
            raise OipError(f"unknown input '{name}'; the inputs are {list(use_case.features)}")
        if name in columns:
            raise OipError(f"input '{name}' is given twice")
        if not isinstance(data, list) or not isinstance(shape, list) or not all(isinstance(d, int) for d in shape):
            raise OipError(f"input '{name}' needs 'shape' (a list of integers) and 'data' (a list)")
        if not (len(shape) == 1 or (len(shape) == 2 and shape[1] == 1)) or shape[0] != len(data):
            raise OipError(
                f"input '{name}': shape {shape} does not match {len(data)} values (one column: [n] or [n, 1])"
            )
        columns[name] = [v[0] if isinstance(v, list) and len(v) == 1 else v for v in data]
    lengths = {len(values) for values in columns.values()}
    if len(lengths) != 1:
        raise OipError(f"the input tensors hold different numbers of rows: { {k: len(v) for k, v in columns.items()} }")
    n = lengths.pop()
    records = [{name: values[i] for name, values in columns.items()} for i in range(n)]
    return request_id, records


def infer_response(*, use_case: UseCase, version: str, request_id: str, values: list[float]) -> dict[str, Any]:
    return {
        "model_name": use_case.model_name,
        "model_version": version,
        "id": request_id,
        "outputs": [{"name": OUTPUT, "datatype": "FP64", "shape": [len(values)], "data": values}],
    }


ERROR_ANSWERS: dict[int | str, dict[str, Any]] = {
    400: {"description": 'A request the protocol or the features\' rules refuse: `{"error": ...}`.'},
    404: {"description": "No such model or served version."},
    503: {"description": "No model loaded yet."},
}
TAGS: list[str | Enum] = ["open inference protocol"]


def _served_pin(state: ServiceState, name: str, version: str | None) -> str | None:
    """The variant a version path names (None: routed as /predict routes); 404 for another model or version."""
    if name != state.use_case.model_name:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, f"no model '{name}' (this service serves {state.use_case.model_name})"
        )
    snap = serving_snapshot(state, pin=None)  # 503 when nothing is loaded, as /predict answers
    if version is None or version == snap.stable.version:
        return None if version is None else "stable"
    if snap.candidate is not None and version == snap.candidate.version:
        return "candidate"
    raise HTTPException(status.HTTP_404_NOT_FOUND, f"version {version} is not served now")


def install(app: FastAPI) -> None:
    """The protocol's routes on ``app``; inference goes through /predict's path (predicting.serve)."""

    @app.get("/v2/health/live", tags=TAGS)
    async def live() -> dict[str, bool]:
        return {"live": True}

    @app.get("/v2/health/ready", tags=TAGS, responses={503: {"description": "Not ready."}})
    async def ready(state: State) -> JSONResponse:
        up = state.control.snapshot is not None
        return JSONResponse({"ready": up}, status_code=200 if up else 503)

    @app.get("/v2", tags=TAGS)
    async def server() -> dict[str, Any]:
        return {"name": PACKAGE, "version": installed_version(), "extensions": []}

    @app.get("/v2/models/{name}", tags=TAGS, responses=ERROR_ANSWERS)
    @app.get("/v2/models/{name}/versions/{version}", tags=TAGS, responses=ERROR_ANSWERS)
    async def metadata(state: State, name: str, version: str | None = None) -> dict[str, Any]:
        _served_pin(state, name, version)
        snap = state.control.snapshot
        served = [m.version for m in (snap.stable, snap.candidate) if m is not None] if snap else []
        return model_metadata(state.use_case, [version] if version else served)

    @app.get("/v2/models/{name}/ready", tags=TAGS, responses=ERROR_ANSWERS)
    @app.get("/v2/models/{name}/versions/{version}/ready", tags=TAGS, responses=ERROR_ANSWERS)
    async def model_ready(state: State, name: str, version: str | None = None) -> dict[str, Any]:
        _served_pin(state, name, version)
        return {"name": name, "ready": True}

    infer_body = {"requestBody": {"required": True, "content": {"application/json": {"schema": {"type": "object"}}}}}

    @app.post("/v2/models/{name}/infer", tags=TAGS, responses=ERROR_ANSWERS, openapi_extra=infer_body)
    @app.post(
        "/v2/models/{name}/versions/{version}/infer", tags=TAGS, responses=ERROR_ANSWERS, openapi_extra=infer_body
    )
    async def infer(request: Request, state: State, name: str, version: str | None = None) -> JSONResponse:
        """Inference: one input tensor per feature, one output tensor `predictions` (/predict's values)."""
        try:
            pin = _served_pin(state, name, version)
            request_id, records = oip_records(await request.body(), state.use_case)
            served = await serve(state, request, orjson.dumps(records), x_request_id=request_id, pin=pin)
        except OipError as err:
            return JSONResponse({"error": str(err)}, status_code=status.HTTP_400_BAD_REQUEST)
        except RequestValidationError as err:  # the features' rules, as /predict's 422 words them
            first = err.errors()[0]
            where = ".".join(str(part) for part in first["loc"][1:])
            return JSONResponse({"error": f"{where}: {first['msg']}"}, status_code=status.HTTP_400_BAD_REQUEST)
        except HTTPException as err:
            return JSONResponse({"error": str(err.detail)}, status_code=err.status_code, headers=err.headers)
        body = infer_response(
            use_case=state.use_case,
            version=served.model.version,
            request_id=served.request_id,
            values=served.values.tolist(),
        )
        return JSONResponse(body, headers=served.headers)
