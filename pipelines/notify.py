"""Tell the running service that the champion changed (real HTTP, best effort with a clear log)."""

from __future__ import annotations

import logging

import httpx

log = logging.getLogger(__name__)


def reload_service(base_url: str | None, *, token: str, timeout: float = 30.0) -> dict | None:
    """POST /admin/reload. Returns the service's answer, or None when no service is configured.

    A service that is down is not an error for the pipeline: the registry
    already holds the new champion, and the service loads it when it starts.
    """
    if not base_url:
        return None
    try:
        response = httpx.post(f"{base_url.rstrip('/')}/admin/reload", headers={"X-Admin-Token": token}, timeout=timeout)
        response.raise_for_status()
        return response.json()
    except httpx.HTTPError as err:
        log.warning("could not reload the service at %s: %s", base_url, err)
        return {"error": str(err)}
