"""Answers that many routes can give, declared once so that every route's OpenAPI lists them."""

from __future__ import annotations

from typing import Any

Answers = dict[int | str, dict[str, Any]]

# Any route that takes a body (the middlewares answer these before the route runs).
BODY_ANSWERS: Answers = {
    400: {"description": "The body cannot be read as JSON text (bytes that are not UTF-8, say)."},
    413: {"description": "The body is larger than MLOPS_MAX_BODY_BYTES, or holds too many records."},
    415: {"description": "The body is declared as something else than JSON (Content-Type)."},
}
# Any route that reads or writes the service's database.
DATABASE_ANSWER: Answers = {
    503: {"description": "The service's database is unavailable (a restart, say): retry after Retry-After."}
}
