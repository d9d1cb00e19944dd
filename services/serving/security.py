"""Who may call the admin API: two tokens, compared in constant time, checked before the body is read.

``MLOPS_ADMIN_TOKEN`` may do everything; ``MLOPS_READ_TOKEN`` (optional) may only read: status,
history, events, why and the shadow comparison. Both travel in the ``X-Admin-Token`` header,
declared in the OpenAPI as an API-key scheme, so ``/docs`` gets an Authorize button.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import HTTPException, Request, Response, status
from fastapi.routing import APIRoute
from fastapi.security import APIKeyHeader

TOKEN_HEADER = "X-Admin-Token"
READ_METHODS = frozenset({"GET", "HEAD"})

# Declares the scheme for the OpenAPI (and /docs' Authorize button); it checks nothing itself
# (auto_error=False): TokenFirstRoute does, before FastAPI reads the body.
admin_token_scheme = APIKeyHeader(
    name=TOKEN_HEADER,
    scheme_name="AdminToken",
    description="MLOPS_ADMIN_TOKEN for every admin call; MLOPS_READ_TOKEN for the read-only ones (GET).",
    auto_error=False,
)

AUTH_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"description": f"No {TOKEN_HEADER} header."},
    403: {"description": f"{TOKEN_HEADER} is wrong, or a read-only token asked to change something."},
}


def matches(presented: str, expected: str) -> bool:
    """Constant time: how long a wrong guess takes says nothing about how much of it was right."""
    return hmac.compare_digest(presented.encode(), expected.encode())


def refusal(presented: str | None, *, admin: str, read: str | None, method: str) -> HTTPException | None:
    """Why a caller may not make this call, or None when it may."""
    if presented is None:
        return HTTPException(
            status.HTTP_401_UNAUTHORIZED, f"missing {TOKEN_HEADER} header", headers={"WWW-Authenticate": "ApiKey"}
        )
    # Both comparisons always run: which token matched must not show in the timing either.
    is_admin = matches(presented, admin)
    is_reader = read is not None and matches(presented, read)
    if is_admin or (is_reader and method in READ_METHODS):
        return None
    if is_reader:
        return HTTPException(status.HTTP_403_FORBIDDEN, "the read-only token cannot change anything")
    return HTTPException(status.HTTP_403_FORBIDDEN, f"wrong {TOKEN_HEADER}")


class TokenFirstRoute(APIRoute):
    """A route that checks the token from the headers before FastAPI reads, parses or validates the body.

    A dependency would run too late: FastAPI reads the body first, so a caller without a token
    would get a 422 that teaches it the body's rules, and would make the service parse whatever
    it sends.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def checked(request: Request) -> Response:
            settings = request.app.state.service.settings
            problem = refusal(
                request.headers.get(TOKEN_HEADER),
                admin=settings.admin_token,
                read=settings.read_token,
                method=request.method,
            )
            if problem is not None:
                raise problem
            return await handler(request)

        return checked
