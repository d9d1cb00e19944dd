"""Plain ASGI middlewares that answer before any route runs: the body's size and its declared type."""

from __future__ import annotations

from fastapi import HTTPException, status
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class BodySizeLimit:
    """Refuses a request body past the limit, for every route, however the body arrives.

    A declared Content-Length over the limit is answered 413 before anything reads the body; a
    chunked body is counted as it is read, and 413 is raised the moment it passes the limit.
    A plain ASGI middleware: Starlette's ``BaseHTTPMiddleware`` wraps every request in extra
    tasks and streams, which costs more than a whole single-record prediction's parsing.
    """

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for key, value in scope["headers"]:
            if key == b"content-length" and value.isdigit() and int(value) > self.max_bytes:
                detail = f"request body of {value.decode()} bytes exceeds {self.max_bytes}"
                response = JSONResponse({"detail": detail}, status_code=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE)
                await response(scope, receive, send)
                return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    # An HTTPException: the app's exception handling turns it into the 413 answer.
                    raise HTTPException(
                        status.HTTP_413_REQUEST_ENTITY_TOO_LARGE, f"request body exceeds {self.max_bytes} bytes"
                    )
            return message

        await self.app(scope, counted, send)


BODY_METHODS = frozenset({b"POST", b"PUT", b"PATCH"})


class JsonBodiesOnly:
    """Answers 415 to a request whose body is declared as anything but JSON, before anything reads it.

    Without it a ``text/plain`` or XML body would be parsed as JSON anyway (the record routes read
    raw bytes), and a client that sends the wrong thing would learn it from a confusing 422. A
    body with no Content-Type at all is read as JSON, as FastAPI reads one: Open Inference
    Protocol clients (Triton's) send none.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"].encode() not in BODY_METHODS:
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        media_type = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
        if media_type and not (media_type == b"application/json" or media_type.endswith(b"+json")):
            given = media_type.decode(errors="replace")
            response = JSONResponse(
                {"detail": f"the body must be JSON (Content-Type: application/json), not {given}"},
                status_code=status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
            )
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)
