"""Deploy flow: ship a registered challenger through a rollout in the running service.

The flow talks to the service's admin API over HTTP (pipelines never import
the service), waits for a terminal state, and records the outcome on the
model version in the registry and as an artifact of the flow run.
"""

from __future__ import annotations

import time
from typing import Any

import httpx
from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact

from models.registry import CHALLENGER
from pipelines.runtime import get_runtime

TERMINAL = {"promoted", "rolled_back", "aborted", "inconclusive"}


class DeployError(RuntimeError):
    pass


def rollout_request(
    *, strategy: str, candidate_version: str, config: dict[str, Any], overrides: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The admin API body: the use case's rollout configuration, with per-run overrides on top."""
    return {**config, **(overrides or {}), "strategy": strategy, "candidate_version": candidate_version}


def _same_rollout_running(client: httpx.Client, body: dict[str, Any]) -> dict[str, Any] | None:
    """The active rollout, when it is the one ``body`` asks for (same candidate and strategy)."""
    current = client.get("/admin/rollouts/current")
    if current.status_code != 200:
        return None
    rollout = current.json()
    same = (rollout["candidate_version"], rollout["strategy"]) == (body["candidate_version"], body["strategy"])
    return rollout if same else None


def _poll(client: httpx.Client, path: str, *, last: dict[str, Any], logger: Any) -> dict[str, Any]:
    """The rollout now, or as last seen while the service cannot say: the rollout goes on in the
    service whatever happens to this poll (a replica restarting, its database restarting), so a
    failed look is retried at the next one rather than ending the flow."""
    try:
        response = client.get(path)
    except httpx.TransportError as err:
        logger.warning("rollout %s: the service did not answer (%s); looking again", last["id"], err)
        return last
    if response.status_code >= 500:
        logger.warning("rollout %s: the service answered %d; looking again", last["id"], response.status_code)
        return last
    response.raise_for_status()
    return response.json()


@flow(name="deploy", log_prints=True)
def deploy_flow(
    use_case: str,
    candidate_version: str | None = None,
    strategy: str | None = None,
    overrides: dict[str, Any] | None = None,
    timeout_s: float = 900,
    state_dir: str | None = None,
) -> dict[str, Any]:
    """Roll out ``candidate_version`` (default: the registry's challenger) with the use case's strategy."""
    logger = get_run_logger()
    rt = get_runtime(state_dir)
    uc = rt.use_case(use_case)
    url = rt.settings.serving_url
    if not url:
        raise DeployError("no serving service configured (MLOPS_SERVING_URL)")
    if candidate_version is None:
        challenger = rt.registry.by_alias(uc.model_name, CHALLENGER)
        if challenger is None:
            raise DeployError(f"'{uc.model_name}' has no challenger to deploy")
        candidate_version = challenger.version
    if overrides is None and rt.settings.rollout_profile == "fast":
        overrides = uc.deployment.demo_config
    body = rollout_request(
        strategy=strategy or uc.deployment.strategy,
        candidate_version=candidate_version,
        config=uc.deployment.config,
        overrides=overrides,
    )
    headers = {"X-Admin-Token": rt.settings.admin_token, "X-Actor": "deploy-flow"}
    with httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=30) as client:
        started = client.post("/admin/rollouts", json=body)
        if started.status_code == 201:
            rollout = started.json()
        elif started.status_code == 409 and (same := _same_rollout_running(client, body)) is not None:
            # The gateway retried the request on another replica after the first had started it.
            logger.info("rollout %s of v%s is running already; following it", same["id"], candidate_version)
            rollout = same
        else:
            raise DeployError(f"the service refused the rollout ({started.status_code}): {started.text}")
        logger.info("rollout %s: %s of v%s started", rollout["id"], body["strategy"], candidate_version)
        deadline = time.monotonic() + timeout_s
        while rollout["phase"] not in TERMINAL:
            if time.monotonic() > deadline:
                rollout = client.post(f"/admin/rollouts/{rollout['id']}/abort").json()
                break
            time.sleep(0.5)
            rollout = _poll(client, f"/admin/rollouts/{rollout['id']}", last=rollout, logger=logger)
        why = client.get(f"/admin/rollouts/{rollout['id']}/why").text
    outcome = {
        "rollout_id": rollout["id"],
        "strategy": rollout["strategy"],
        "candidate_version": candidate_version,
        "outcome": rollout["phase"],
        "final_weight": rollout["weight"],
        "reason": rollout["reason"],
    }
    rt.registry.tag(
        uc.model_name,
        candidate_version,
        {
            "rollout_id": rollout["id"],
            "rollout_strategy": rollout["strategy"],
            "rollout_outcome": rollout["phase"],
            "rollout_reason": rollout["reason"][:4000],
        },
    )
    challenger = rt.registry.by_alias(uc.model_name, CHALLENGER)
    if challenger is not None and challenger.version == candidate_version:
        rt.registry.delete_alias(uc.model_name, CHALLENGER)  # decided, one way or the other
    create_markdown_artifact(
        key=f"rollout-{rollout['id']}",
        markdown=f"```\n{why}\n```",
        description=f"{rollout['strategy']} of v{candidate_version}: {rollout['phase']}",
    )
    logger.info("rollout %s ended %s: %s", rollout["id"], rollout["phase"], rollout["reason"])
    return outcome
