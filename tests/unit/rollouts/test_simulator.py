"""Every strategy against every scenario, in the deterministic simulator."""

from __future__ import annotations

import pytest

from services.serving.rollouts.simulator import simulate

EXPECTED = {
    ("good", "canary"): "promoted",
    ("good", "blue-green"): "promoted",
    ("good", "shadow"): "promoted",
    ("good", "ab"): "inconclusive",  # as good as stable is not proof of being better
    ("better-after-labels", "canary"): "promoted",
    ("better-after-labels", "blue-green"): "promoted",
    ("better-after-labels", "shadow"): "promoted",
    ("better-after-labels", "ab"): "promoted",
    **{
        (bad, s): "rolled_back"
        for bad in ("errors", "slow", "shifted")
        for s in ("canary", "blue-green", "shadow", "ab")
    },
}


@pytest.mark.parametrize(("scenario", "strategy"), sorted(EXPECTED))
def test_outcome(scenario, strategy):
    result = simulate(scenario, strategy)
    assert result.outcome == EXPECTED[(scenario, strategy)], result.reason
    if result.outcome == "rolled_back":
        assert result.time_to_detect_s is not None and result.time_to_rollback_s is not None
    if strategy in ("shadow", "blue-green"):
        assert result.requests_to_candidate == 0  # mirrored, never user-facing, whatever the outcome
        assert result.mirrored_to_candidate > 0


@pytest.mark.parametrize("scenario", ["errors", "slow", "shifted"])
def test_canary_limits_the_blast_radius_compared_with_ab(scenario):
    assert simulate(scenario, "canary").requests_to_candidate < simulate(scenario, "ab").requests_to_candidate


def test_the_simulation_is_deterministic():
    assert simulate("shifted", "canary") == simulate("shifted", "canary")


def test_unknown_names_are_refused():
    with pytest.raises(ValueError, match="unknown scenario"):
        simulate("meteor", "canary")
    with pytest.raises(ValueError, match="unknown strategy"):
        simulate("good", "big-bang")  # type: ignore[arg-type]
