"""The rollout state machine against a manual clock and in-memory metrics."""

from __future__ import annotations

import pytest

from services.serving.rollouts import engine
from services.serving.rollouts.clock import ManualClock
from services.serving.rollouts.config import Check, RolloutConfig, Step
from services.serving.rollouts.engine import RolloutError
from services.serving.rollouts.memory import InMemoryMetrics, Observation


def _config(**overrides) -> RolloutConfig:
    base = dict(
        strategy="canary",
        candidate_version="2",
        steps=[Step(weight=0.2, bake_seconds=30), Step(weight=0.5, bake_seconds=30), Step(weight=1.0, bake_seconds=0)],
        checks=[Check(metric="error_rate", threshold=0.05, min_samples=10, window_seconds=30)],
        analysis_interval_seconds=10,
        failure_limit=2,
    )
    return RolloutConfig(**{**base, **overrides})


def _traffic(metrics: InMemoryMetrics, clock: ManualClock, *, candidate_errors: float, n: int = 20) -> None:
    for i in range(n):
        ok_candidate = i >= n * candidate_errors
        metrics.record(Observation(clock.now(), "2", True, 5.0, 1.0 if ok_candidate else None))
        metrics.record(Observation(clock.now(), "1", True, 5.0, 1.0))


def _run(config: RolloutConfig, *, candidate_errors: float, seconds: int) -> tuple[engine.Rollout, list]:
    clock, metrics = ManualClock(), InMemoryMetrics()
    r, log = engine.start(config, model_name="m", stable_version="1", now=clock.now(), actor="test")
    for _ in range(seconds):
        _traffic(metrics, clock, candidate_errors=candidate_errors)
        clock.advance(1)
        r, events = engine.tick(r, metrics, now=clock.now())
        log += events
        if not r.active:
            break
    return r, log


def test_canary_walks_its_steps_then_promotes():
    r, log = _run(_config(), candidate_errors=0.0, seconds=200)
    assert r.phase == "promoted" and r.weight == 1.0
    steps = [e for e in log if e.kind == "step"]
    assert [e.data["weight"] for e in steps] == [0.5]
    assert log[-1].kind == "promoted" and "every canary step passed" in log[-1].message
    # it never left a step before its bake time
    assert steps[0].ts - log[0].ts >= 30 and log[-1].ts - steps[0].ts >= 30


def test_failures_roll_back_at_the_failure_limit():
    r, log = _run(_config(), candidate_errors=0.5, seconds=200)
    assert r.phase == "rolled_back" and r.weight == 0.0 and r.failures == 2
    assert r.detected_at is not None and r.finished_at - r.detected_at == pytest.approx(10)
    assert "error_rate 0.5 > 0.05" in log[-1].message


def test_too_few_samples_is_inconclusive_never_a_pass():
    clock, metrics = ManualClock(), InMemoryMetrics()
    r, _ = engine.start(_config(), model_name="m", stable_version="1", now=clock.now(), actor="t")
    for _ in range(100):
        clock.advance(1)
        r, _ = engine.tick(r, metrics, now=clock.now())  # no traffic at all
    assert r.phase == "progressing" and r.step == 0 and r.weight == 0.2
    assert all(res["status"] == "inconclusive" for res in r.results)


def test_no_verdict_within_max_duration_ends_inconclusive():
    r, _ = _run(
        _config(max_duration_seconds=50, checks=[Check(metric="quality", threshold=1, min_samples=5)]),
        candidate_errors=0.0,
        seconds=100,
    )
    assert r.phase == "inconclusive" and r.weight == 0.0 and "stable v1 stays" in r.reason


def test_pause_freezes_and_resume_restarts_the_bake():
    clock = ManualClock()
    r, _ = engine.start(_config(), model_name="m", stable_version="1", now=clock.now(), actor="t")
    r, ev = engine.pause(r, now=clock.now(), actor="alice")
    assert r.phase == "paused" and ev[0].actor == "alice"
    clock.advance(100)
    assert engine.tick(r, InMemoryMetrics(), now=clock.now())[0] is r  # paused: nothing moves
    with pytest.raises(RolloutError, match="already paused"):
        engine.pause(r, now=clock.now(), actor="alice")
    r, _ = engine.resume(r, now=clock.now(), actor="alice")
    assert r.phase == "progressing" and r.step_started_at == clock.now()


def test_promote_after_failed_analysis_is_refused_unless_forced():
    clock, metrics = ManualClock(), InMemoryMetrics()
    r, _ = engine.start(_config(failure_limit=5), model_name="m", stable_version="1", now=clock.now(), actor="t")
    for _ in range(12):
        _traffic(metrics, clock, candidate_errors=0.5)
        clock.advance(1)
        r, _ = engine.tick(r, metrics, now=clock.now())
    assert r.failures == 1 and r.phase == "progressing"
    with pytest.raises(RolloutError, match="promotion refused"):
        engine.promote(r, now=clock.now(), actor="bob")
    forced, events = engine.promote(r, now=clock.now(), actor="bob", force=True)
    assert forced.phase == "promoted" and events[0].data["forced"] is True and "FORCED" in events[0].message


def test_abort_sends_everything_back_to_stable_at_once():
    clock = ManualClock()
    r, _ = engine.start(_config(), model_name="m", stable_version="1", now=clock.now(), actor="t")
    r, _ = engine.abort(r, now=clock.now(), actor="carol")
    assert r.phase == "aborted" and r.weight == 0.0 and not r.routes_candidate
    with pytest.raises(RolloutError, match="already aborted"):
        engine.abort(r, now=clock.now(), actor="carol")


def test_blue_green_previews_on_mirrored_traffic_then_switches_atomically():
    config = _config(strategy="blue-green", duration_seconds=30, rollback_window_seconds=60)
    clock, metrics = ManualClock(), InMemoryMetrics()
    r, _ = engine.start(config, model_name="m", stable_version="1", now=clock.now(), actor="t")
    assert r.weight == 0.0 and r.mirror_share == 1.0
    while r.active:
        _traffic(metrics, clock, candidate_errors=0.0)
        clock.advance(1)
        r, _ = engine.tick(r, metrics, now=clock.now())
    assert r.phase == "promoted" and r.weight == 1.0 and r.release_at == r.finished_at + 60


def test_the_same_version_cannot_roll_out_over_itself():
    with pytest.raises(RolloutError, match="already the stable version"):
        engine.start(_config(candidate_version="1"), model_name="m", stable_version="1", now=0, actor="t")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"steps": [Step(weight=0.5, bake_seconds=1), Step(weight=0.2, bake_seconds=1)]}, "must not decrease"),
        ({"steps": [Step(weight=0.5, bake_seconds=1)]}, "must reach weight 1.0"),
        ({"stable_version": "2"}, "the same version"),
    ],
)
def test_malformed_configurations_are_explained(overrides, message):
    with pytest.raises(ValueError, match=message):
        _config(**overrides)


def _ended(phase: str, *, at: float = 100.0) -> engine.Rollout:
    r, _ = engine.start(_config(), model_name="m", stable_version="1", now=0.0, actor="test")
    return r.evolve(phase=phase, finished_at=at)


def test_a_rollback_undoes_a_promotion_and_nothing_else():
    promoted = _ended("promoted")
    # the promotion was the last change: undone
    assert engine.rollback_refusal(promoted, rolled_back_at=None, stable="2", previous="1", changed_at=100.0) is None
    # an aborted rollout changed nothing
    reason = engine.rollback_refusal(_ended("aborted"), rolled_back_at=None, stable="1", previous="0", changed_at=50.0)
    assert reason is not None and "ended aborted" in reason and "v1 never stopped serving" in reason
    # a rollback already done is not toggled back
    reason = engine.rollback_refusal(promoted, rolled_back_at=120.0, stable="1", previous="2", changed_at=120.0)
    assert reason is not None and "already rolled back" in reason
    # a change since the rollout (a reload of a champion the retraining flow promoted) is undone as such
    refusal = engine.rollback_refusal
    assert refusal(_ended("aborted"), rolled_back_at=None, stable="3", previous="1", changed_at=200.0) is None
    assert refusal(None, rolled_back_at=None, stable="2", previous="1", changed_at=5.0) is None
    assert "no previous version" in refusal(None, rolled_back_at=None, stable="1", previous=None, changed_at=0)
