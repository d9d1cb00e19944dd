"""The live rollout page: one static HTML shell at /ui/rollouts.

It holds no data and needs no token to load: everything it shows comes from the admin API, which
it calls from the browser with the token the operator types (read-only tokens see, the admin token
acts). A strict Content-Security-Policy lets it talk to this service only.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

ui_router = APIRouter(include_in_schema=False)

POLICY = (
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; "
    "form-action 'none'; frame-ancestors 'none'; base-uri 'none'"
)


@cache
def _page() -> str:
    return (resources.files("services.serving") / "static" / "rollouts.html").read_text(encoding="utf-8")


@ui_router.get("/ui/rollouts", response_class=HTMLResponse)
def rollout_page() -> HTMLResponse:
    return HTMLResponse(_page(), headers={"Content-Security-Policy": POLICY, "Cache-Control": "no-store"})
