"""The HTTP floor: the service's own stack with nothing behind it.

    python -m uvicorn benchmarks.http_floor:create_app --factory --ws none --port PORT

The same server as ``mlops serve`` (uvicorn with uvloop and httptools, one process), the same
ASGI middlewares, the same reading of the request id and pin headers and the same
parsing of the body into a checked record, then an answer of /predict's shape: no model, no
routing, no prediction log. What the service reaches against it is what its own work costs
on top of the HTTP stack it shares with every FastAPI service.
"""

from __future__ import annotations

import uuid

import orjson
from fastapi import FastAPI, Request, Response
from pydantic import TypeAdapter

from core.usecase import load_use_case
from services.serving.middleware import BodySizeLimit, JsonBodiesOnly
from services.serving.predicting import request_headers
from services.serving.schemas import record_dict
from services.serving.settings import ServingSettings


def create_app() -> FastAPI:
    settings = ServingSettings()
    use_case = load_use_case(settings.use_case, usecases_dir=settings.usecases_dir)
    one = TypeAdapter(record_dict(use_case))
    app = FastAPI(title="HTTP floor", openapi_url=None)

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/predict")
    async def predict(request: Request) -> Response:
        x_request_id, pin = request_headers(request)
        one.validate_json(await request.body())
        request_id = x_request_id or uuid.uuid4().hex
        body = {
            "request_id": request_id,
            "model_name": use_case.model_name,
            "model_version": "0",
            "variant": pin or "stable",
            "threshold": None,
            "predictions": [{"id": request_id, "value": 0.0, "label": None}],
        }
        headers = {"X-Model-Version": "0", "X-Variant": "stable", "X-Request-ID": request_id}
        return Response(orjson.dumps(body), media_type="application/json", headers=headers)

    app.add_middleware(JsonBodiesOnly)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    return app
