"""The rollout state machine. Pure: state and measurements in, new state and decision-log events out."""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable

import numpy as np

from services.serving.rollouts import stats
from services.serving.rollouts.analysis import CheckResult, MetricsSource, VersionSample, run_checks
from services.serving.rollouts.config import RolloutConfig
from services.serving.rollouts.state import Event, Rollout

SYSTEM = "controller"


class RolloutError(ValueError):
    """A request the rollout's state does not allow; the message says why."""


def start(
    config: RolloutConfig,
    *,
    model_name: str,
    stable_version: str,
    now: float,
    actor: str,
    rollout_id: str | None = None,
) -> tuple[Rollout, list[Event]]:
    if config.candidate_version == stable_version:
        raise RolloutError(f"version {stable_version} is already the stable version")
    rid = rollout_id or uuid.uuid4().hex[:12]
    weight, mirror = _initial_traffic(config)
    r = Rollout(
        id=rid,
        model_name=model_name,
        strategy=config.strategy,
        stable_version=stable_version,
        candidate_version=config.candidate_version,
        config=config,
        phase="progressing",
        started_at=now,
        updated_at=now,
        weight=weight,
        mirror_share=mirror,
        step_started_at=now,
        last_analysis_at=now,
    )
    what = {
        "canary": f"canary at {weight:.0%}",
        "blue-green": "blue-green preview (mirrored traffic)",
        "shadow": f"shadow ({mirror:.0%} mirrored)",
        "ab": f"A/B test ({weight:.0%} of routing keys)",
    }
    return r, [
        Event(
            rid,
            now,
            "started",
            actor,
            f"started {what[config.strategy]}: v{stable_version} -> v{config.candidate_version}",
            {"config": config.model_dump()},
        )
    ]


def _initial_traffic(config: RolloutConfig) -> tuple[float, float]:
    if config.strategy == "canary":
        return config.steps[0].weight, 0.0
    if config.strategy == "ab":
        return config.ab.split, 0.0
    return 0.0, config.mirror_share  # shadow and the blue-green preview see mirrored traffic only


def _finish(
    r: Rollout, *, phase: str, now: float, actor: str, kind: str, message: str, data: dict | None = None
) -> tuple[Rollout, list[Event]]:
    promoted = phase == "promoted"
    release = now + r.config.rollback_window_seconds if promoted and r.strategy == "blue-green" else None
    new = r.evolve(
        phase=phase,
        weight=1.0 if promoted else 0.0,
        mirror_share=0.0,
        finished_at=now,
        updated_at=now,
        reason=message,
        release_at=release,
    )
    return new, [Event(r.id, now, kind, actor, message, data or {})]


# -- operator actions ---------------------------------------------------------------------------------
def _require_active(r: Rollout, action: str) -> None:
    if not r.active:
        raise RolloutError(f"cannot {action} rollout {r.id}: it is already {r.phase}")


def pause(r: Rollout, *, now: float, actor: str) -> tuple[Rollout, list[Event]]:
    _require_active(r, "pause")
    if r.phase == "paused":
        raise RolloutError(f"rollout {r.id} is already paused")
    return r.evolve(phase="paused", updated_at=now), [
        Event(r.id, now, "paused", actor, f"paused at weight {r.weight:.0%}; traffic split frozen")
    ]


def resume(r: Rollout, *, now: float, actor: str) -> tuple[Rollout, list[Event]]:
    if r.phase != "paused":
        raise RolloutError(f"cannot resume rollout {r.id}: it is {r.phase}, not paused")
    # The bake time restarts: measurements taken while paused do not count toward the step.
    return r.evolve(phase="progressing", updated_at=now, step_started_at=now, passes_in_step=0), [
        Event(r.id, now, "resumed", actor, "resumed; the current step's bake time restarts")
    ]


def promote(r: Rollout, *, now: float, actor: str, force: bool = False) -> tuple[Rollout, list[Event]]:
    _require_active(r, "promote")
    failed = [x for x in r.results if x.get("status") == "fail"]
    if (r.failures or failed) and not force:
        raise RolloutError(
            f"rollout {r.id} has failed analysis ({r.failures} failed runs): promotion refused; "
            "use force to override (it is logged)"
        )
    message = f"promoted v{r.candidate_version} by {actor}" + (" (FORCED over failed analysis)" if force else "")
    return _finish(
        r,
        phase="promoted",
        now=now,
        actor=actor,
        kind="promoted",
        message=message,
        data={"forced": force, "failures": r.failures},
    )


def abort(r: Rollout, *, now: float, actor: str, reason: str = "aborted by operator") -> tuple[Rollout, list[Event]]:
    _require_active(r, "abort")
    return _finish(
        r, phase="aborted", now=now, actor=actor, kind="aborted", message=f"{reason}: 100% back to v{r.stable_version}"
    )


# -- the controller's step ------------------------------------------------------------------------------
def rollback_refusal(
    latest: Rollout | None,
    *,
    rolled_back_at: float | None,
    stable: str | None,
    previous: str | None,
    changed_at: float,
) -> str | None:
    """Why a manual rollback cannot be done now, or None when it can.

    A rollback undoes the last change of the serving version. When that change was a rollout's
    end (the serving state changed no later than it finished), only a promotion is undone: an
    aborted or rolled-back rollout changed nothing, and a rollback already done is not toggled
    back (``rolled_back_at``: when the latest rollout was last rolled back by hand). A change since
    then (a reload of a champion promoted by the retraining flow) is undone as such.
    """
    if latest is not None and not latest.active:  # an active rollout: the store refuses, with its reason
        if rolled_back_at is not None and changed_at <= rolled_back_at:
            return f"already rolled back: v{stable} serves again since rollout {latest.id} was undone"
        if latest.finished_at is not None and changed_at <= latest.finished_at and latest.phase != "promoted":
            return (
                f"the last rollout ({latest.id}, v{latest.candidate_version}) ended "
                f"{latest.phase.replace('_', ' ')}: v{stable} never stopped serving, so there is no promotion to undo"
            )
    if stable is None or previous is None:
        return "nothing to roll back to: no previous version is recorded"
    return None


def tick(r: Rollout, metrics: MetricsSource, *, now: float) -> tuple[Rollout, list[Event]]:
    """Advance a progressing rollout: analyse when due, roll back on failures, move to the next step."""
    if r.phase != "progressing":
        return r, []
    cfg = r.config
    if now - r.started_at > cfg.max_duration_seconds:
        return _finish(
            r,
            phase="inconclusive",
            now=now,
            actor=SYSTEM,
            kind="inconclusive",
            message=f"no verdict within {cfg.max_duration_seconds:.0f}s: stable v{r.stable_version} stays",
        )
    if now - r.last_analysis_at < cfg.analysis_interval_seconds:
        return r, []
    if r.strategy == "ab":
        return _tick_ab(r, metrics, now=now)
    window = max(c.window_seconds for c in cfg.checks) if cfg.checks else cfg.analysis_interval_seconds
    # Look back over the current step only: earlier steps ran at another weight.
    since = max(r.step_started_at, now - window)
    candidate = metrics.sample(version=r.candidate_version, since=since, until=now)
    stable = metrics.sample(version=r.stable_version, since=since, until=now, user_facing_only=True)
    results = run_checks(cfg.checks, candidate, stable)
    failed = [x for x in results if x.status == "fail"]
    verdict = "fail" if failed else ("inconclusive" if any(x.status == "inconclusive" for x in results) else "pass")
    events = [
        Event(
            r.id,
            now,
            "analysis",
            SYSTEM,
            _summary(verdict, results),
            {"verdict": verdict, "weight": r.weight, "results": [x.to_dict() for x in results]},
        )
    ]
    r = r.evolve(last_analysis_at=now, updated_at=now, results=[x.to_dict() for x in results])
    if failed:
        r = r.evolve(failures=r.failures + 1, detected_at=r.detected_at or now)
        if r.failures >= cfg.failure_limit:
            names = ", ".join(x.detail for x in failed)
            r, more = _finish(
                r,
                phase="rolled_back",
                now=now,
                actor=SYSTEM,
                kind="rolled_back",
                message=f"rolled back automatically after {r.failures} failed analysis runs "
                f"(limit {cfg.failure_limit}): {names}",
            )
            return r, events + more
        return r, events
    if verdict == "pass":
        r = r.evolve(passes_in_step=r.passes_in_step + 1)
    return _advance(r, now=now, verdict=verdict, events=events)


def _advance(r: Rollout, *, now: float, verdict: str, events: list[Event]) -> tuple[Rollout, list[Event]]:
    cfg = r.config
    elapsed = now - r.step_started_at
    if r.passes_in_step == 0:
        return r, events  # nothing has passed in this step yet: keep observing
    if r.strategy == "canary":
        if elapsed < cfg.steps[r.step].bake_seconds:
            return r, events
        nxt = cfg.steps[min(r.step + 1, len(cfg.steps) - 1)]
        if r.step + 1 >= len(cfg.steps) or nxt.weight >= 1.0:  # all traffic on the candidate is a promotion
            new, more = _finish(
                r,
                phase="promoted",
                now=now,
                actor=SYSTEM,
                kind="promoted",
                message=f"promoted v{r.candidate_version}: every canary step passed analysis",
            )
            return new, events + more
        new = r.evolve(step=r.step + 1, weight=nxt.weight, step_started_at=now, passes_in_step=0, updated_at=now)
        return new, [
            *events,
            Event(
                r.id,
                now,
                "step",
                SYSTEM,
                f"step {r.step + 2}/{len(cfg.steps)}: candidate weight {r.weight:.0%} -> {nxt.weight:.0%}",
                {"step": r.step + 1, "weight": nxt.weight},
            ),
        ]
    # shadow and the blue-green preview: observe for duration_seconds, then switch
    if elapsed < cfg.duration_seconds:
        return r, events
    how = (
        "atomic switch to the candidate slot; old slot kept for rollback"
        if r.strategy == "blue-green"
        else "shadow comparison passed"
    )
    new, more = _finish(
        r, phase="promoted", now=now, actor=SYSTEM, kind="promoted", message=f"promoted v{r.candidate_version}: {how}"
    )
    return new, events + more


def _tick_ab(r: Rollout, metrics: MetricsSource, *, now: float) -> tuple[Rollout, list[Event]]:
    ab = r.config.ab
    since = r.started_at
    candidate = metrics.sample(version=r.candidate_version, since=since, until=now, user_facing_only=True)
    stable = metrics.sample(version=r.stable_version, since=since, until=now, user_facing_only=True)
    srm_p = stats.sample_ratio_mismatch(stable.requests, candidate.requests, expected_candidate_share=ab.split)
    # Fixed horizon: the test looks at exactly the planned number of outcomes per arm, once.
    # Testing again at every interval until p < alpha ("peeking") would inflate false positives.
    n = ab.min_samples_per_arm
    cmp = stats.compare_arms(stable.losses[:n], candidate.losses[:n], alpha=ab.alpha, min_samples=n)
    data = {
        "srm_p_value": srm_p,
        "requests": {"stable": stable.requests, "candidate": candidate.requests},
        "labelled": {"stable": cmp.n_stable, "candidate": cmp.n_candidate},
        "mean_loss": {"stable": _nan_to_none(cmp.mean_stable), "candidate": _nan_to_none(cmp.mean_candidate)},
        "p_value": _nan_to_none(cmp.p_value),
        "verdict": cmp.verdict,
    }
    errors = _error_gate(r, candidate, stable)
    r = r.evolve(last_analysis_at=now, updated_at=now, results=[data])
    base = Event(
        r.id,
        now,
        "analysis",
        SYSTEM,
        f"A/B: {cmp.verdict} (labelled {cmp.n_stable} stable / {cmp.n_candidate} candidate, "
        f"p={cmp.p_value:.4g}); SRM p={srm_p:.3g}",
        data,
    )

    def conclude(phase: str, message: str, *, detected: bool) -> tuple[Rollout, list[Event]]:
        ended = r.evolve(detected_at=r.detected_at or now) if detected else r
        new, more = _finish(ended, phase=phase, now=now, actor=SYSTEM, kind=phase, message=message)
        return new, [base, *more]

    if stable.requests + candidate.requests >= 100 and srm_p < ab.srm_alpha:
        return conclude(
            "rolled_back",
            f"sample ratio mismatch (p={srm_p:.2g}): the router does not split "
            f"{ab.split:.0%}/{1 - ab.split:.0%}; result not trusted",
            detected=True,
        )
    if errors:
        r = r.evolve(failures=r.failures + 1, detected_at=r.detected_at or now)
        if r.failures < r.config.failure_limit:
            return r, [base]
        return conclude(
            "rolled_back",
            f"rolled back automatically after {r.failures} failed guardrail checks "
            f"(limit {r.config.failure_limit}): {errors}",
            detected=True,
        )
    losses = f"({cmp.mean_candidate:.4g} vs {cmp.mean_stable:.4g}, p={cmp.p_value:.3g})"
    if cmp.verdict == "candidate_better":
        return conclude(
            "promoted", f"promoted v{r.candidate_version}: significantly lower loss {losses}", detected=False
        )
    if cmp.verdict == "candidate_worse":
        return conclude("rolled_back", f"rolled back: significantly higher loss {losses}", detected=True)
    if cmp.verdict == "no_difference":
        return conclude(
            "inconclusive",
            f"no significant difference at the planned {n} outcomes per arm "
            f"(p={cmp.p_value:.3g}): stable v{r.stable_version} stays",
            detected=False,
        )
    return r, [base]


def _error_gate(r: Rollout, candidate: VersionSample, stable: VersionSample) -> str | None:
    """Guardrails while the A/B test waits for labels: every configured check but quality (the test itself)."""
    for result in run_checks([c for c in r.config.checks if c.metric != "quality"], candidate, stable):
        if result.status == "fail":
            return result.detail
    return None


def _summary(verdict: str, results: list[CheckResult]) -> str:
    return f"analysis {verdict}: " + "; ".join(f"{x.metric} {x.status} ({x.detail})" for x in results)


def _nan_to_none(x: float) -> float | None:
    return None if math.isnan(x) else x


def loss_function(task: str) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """Per-request loss used for quality checks and A/B: squared error, or log loss for classifiers."""
    if task == "classification":

        def log_loss(p: np.ndarray, y: np.ndarray) -> np.ndarray:
            p = np.clip(p, 1e-15, 1 - 1e-15)
            return -(y * np.log(p) + (1 - y) * np.log(1 - p))

        return log_loss
    return lambda p, y: (p - y) ** 2
