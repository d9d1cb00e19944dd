"""Admin API: rollouts (start, pause, resume, promote, abort, rollback, status, history, why) and reload.

Mounted under /admin. Every route checks X-Admin-Token before its body is read (security.py):
the admin token for everything, the read-only token for GETs.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, Literal

import numpy as np
from fastapi import APIRouter, Header, HTTPException, Query, Security, status
from fastapi.responses import PlainTextResponse

from services.serving.answers import BODY_ANSWERS, DATABASE_ANSWER
from services.serving.dependencies import State
from services.serving.model_store import ModelUnavailable
from services.serving.rollouts import stats
from services.serving.rollouts.config import RolloutConfig
from services.serving.rollouts.engine import RolloutError
from services.serving.rollouts.explain import explain
from services.serving.security import AUTH_RESPONSES, TokenFirstRoute, admin_token_scheme

admin_router = APIRouter(
    route_class=TokenFirstRoute,
    dependencies=[Security(admin_token_scheme)],
    responses={**AUTH_RESPONSES, **DATABASE_ANSWER},
)
NOT_FOUND = {404: {"description": "No such rollout."}}
# The POST routes: they take a body (or may be sent one), and refuse what the state does not allow.
CONFLICT = {**BODY_ANSWERS, 409: {"description": "Refused in the current state (the reason says why)."}}
Actor = Annotated[str, Header(alias="X-Actor", max_length=64)]
Action = Literal["pause", "resume", "promote", "abort"]


def _conflict(err: Exception) -> HTTPException:
    return HTTPException(status.HTTP_409_CONFLICT, str(err))


@admin_router.post(
    "/reload", responses={**CONFLICT, 503: {"description": "The champion cannot be loaded; the old one serves."}}
)
async def reload(state: State) -> dict[str, Any]:
    """Serve the registry's current champion; the old version keeps serving if that fails."""
    try:
        return await state.control.reload()
    except ModelUnavailable as err:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, f"reload failed: {err}") from None
    except RolloutError as err:
        raise _conflict(err) from None


@admin_router.get("/status")
async def serving_status(state: State) -> dict[str, Any]:
    """What this replica serves right now."""
    snap = state.control.snapshot
    return {
        "stable_version": snap.stable.version if snap else None,
        "candidate_version": snap.candidate.version if snap and snap.candidate else None,
        "rollout": snap.rollout.to_dict() if snap and snap.rollout else None,
        "loaded_versions": state.control.cache.loaded,
        "reason": None if snap else state.control.last_error,
    }


@admin_router.post("/rollouts", status_code=status.HTTP_201_CREATED, responses=CONFLICT)
async def start_rollout(config: RolloutConfig, state: State, actor: Actor = "admin-api") -> dict[str, Any]:
    """Start a rollout of ``candidate_version`` with a strategy; the candidate is loaded before any traffic."""
    try:
        return (await state.control.start_rollout(config, actor=actor)).to_dict()
    except RolloutError as err:
        raise _conflict(err) from None


@admin_router.get("/rollouts")
async def history(state: State, limit: Annotated[int, Query(ge=1, le=500)] = 20) -> list[dict[str, Any]]:
    rollouts = await asyncio.to_thread(state.control.store.history, state.control.model_name, limit=limit)
    return [r.to_dict() for r in rollouts]


@admin_router.get("/rollouts/current", responses={404: {"description": "No rollout in progress."}})
async def current(state: State) -> dict[str, Any]:
    rollout = await asyncio.to_thread(state.control.store.active, state.control.model_name)
    if rollout is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no rollout in progress")
    return rollout.to_dict()


async def _get(state: State, rollout_id: str) -> Any:
    rollout = await asyncio.to_thread(state.control.store.get, rollout_id)
    if rollout is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no rollout {rollout_id}")
    return rollout


@admin_router.get("/rollouts/{rollout_id}", responses=NOT_FOUND)
async def get_rollout(rollout_id: str, state: State) -> dict[str, Any]:
    return (await _get(state, rollout_id)).to_dict()


@admin_router.get("/rollouts/{rollout_id}/events", responses=NOT_FOUND)
async def events(rollout_id: str, state: State) -> list[dict[str, Any]]:
    """The append-only decision log: every step, measurement, threshold, verdict and actor."""
    await _get(state, rollout_id)
    log = await asyncio.to_thread(state.control.store.events, rollout_id)
    return [e.__dict__ for e in log]


@admin_router.get("/rollouts/{rollout_id}/traffic", responses=NOT_FOUND)
async def traffic(
    rollout_id: str,
    state: State,
    window_seconds: Annotated[float, Query(gt=0, le=3600, description="How far back to look.")] = 10,
) -> dict[str, Any]:
    """Requests per second, latency and error rate of each side over the last ``window_seconds`` (up to
    its end, for a finished rollout), from the shared prediction log: every replica's traffic."""
    rollout = await _get(state, rollout_id)
    until = rollout.finished_at or state.control.clock.now()
    since = until - window_seconds
    versions = []
    for side, version in (("stable", rollout.stable_version), ("candidate", rollout.candidate_version)):
        sample = await asyncio.to_thread(state.control.metrics.sample, version=version, since=since, until=until)
        latencies = sample.latencies_ms
        versions.append(
            {
                "version": version,
                "side": side,
                "requests": sample.requests,
                "requests_per_s": sample.requests / window_seconds,
                "error_rate": sample.errors / sample.requests if sample.requests else None,
                "p50_ms": float(np.percentile(latencies, 50)) if len(latencies) else None,
                "p99_ms": float(np.percentile(latencies, 99)) if len(latencies) else None,
            }
        )
    return {"window_seconds": window_seconds, "until": until, "versions": versions}


@admin_router.get("/rollouts/{rollout_id}/why", response_class=PlainTextResponse, responses=NOT_FOUND)
async def why(rollout_id: str, state: State) -> str:
    """A plain-language account of why the rollout was promoted, rolled back or is still running."""
    rollout = await _get(state, rollout_id)
    return explain(rollout, await asyncio.to_thread(state.control.store.events, rollout_id))


@admin_router.get("/rollouts/{rollout_id}/shadow", responses=NOT_FOUND)
async def shadow(rollout_id: str, state: State) -> dict[str, Any]:
    """Paired comparison of stable and mirrored candidate answers to the same requests."""
    rollout = await _get(state, rollout_id)
    until = rollout.finished_at or state.control.clock.now()
    pairs = await asyncio.to_thread(
        state.log.paired, use_case=state.use_case.name, since=rollout.started_at, until=until + 1
    )
    return stats.paired_comparison(pairs, task=state.use_case.task)


@admin_router.post("/rollouts/{rollout_id}/{action}", responses={**NOT_FOUND, **CONFLICT})
async def act(
    rollout_id: str,
    action: Action,
    state: State,
    actor: Actor = "admin-api",
    force: Annotated[bool, Query(description="Promote despite failed analysis (logged).")] = False,
) -> dict[str, Any]:
    """pause | resume | promote | abort."""
    try:
        return (await state.control.act(rollout_id, action, actor=actor, force=force)).to_dict()
    except LookupError as err:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(err)) from None
    except RolloutError as err:
        raise _conflict(err) from None


@admin_router.post("/rollback", responses=CONFLICT)
async def rollback(state: State, actor: Actor = "admin-api") -> dict[str, Any]:
    """Undo the last promotion: the previous version serves again, and the registry's aliases follow.
    Refused (409) when the last change was not a promotion (an aborted rollout, a rollback already)."""
    try:
        return await state.control.rollback(actor=actor)
    except RolloutError as err:
        raise _conflict(err) from None
