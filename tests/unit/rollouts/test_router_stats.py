"""Routing and the statistics behind the analysis."""

from __future__ import annotations

import numpy as np
import pytest

from services.serving.rollouts import engine, stats
from services.serving.rollouts.config import RolloutConfig, Step
from services.serving.rollouts.router import route, unit_hash


def _rollout(strategy: str, **overrides):
    config = RolloutConfig(
        strategy=strategy,
        candidate_version="2",
        steps=[Step(weight=0.25, bake_seconds=1), Step(weight=1.0, bake_seconds=0)],
        **overrides,
    )
    return engine.start(config, model_name="m", stable_version="1", now=0.0, actor="t")[0]


def _share(rollout, n=20_000, **kw) -> float:
    return sum(route(rollout, request_key=f"r{i}", **kw).variant == "candidate" for i in range(n)) / n


def test_no_rollout_routes_everything_to_stable():
    assert route(None, request_key="x").variant == "stable"


def test_canary_sends_its_weight():
    assert _share(_rollout("canary")) == pytest.approx(0.25, abs=0.01)


def test_ab_assignment_is_sticky_per_routing_key():
    r = _rollout("ab")
    assert _share(r) == pytest.approx(0.5, abs=0.01)
    for user in ("alice", "bob", "carol"):
        assert len({route(r, request_key=f"req{i}", routing_key=user).variant for i in range(50)}) == 1


def test_shadow_answers_from_stable_and_mirrors():
    r = _rollout("shadow", mirror_share=0.3)
    routes = [route(r, request_key=f"r{i}") for i in range(10_000)]
    assert {x.variant for x in routes} == {"stable"}
    assert sum(x.mirror for x in routes) / len(routes) == pytest.approx(0.3, abs=0.02)


@pytest.mark.parametrize("strategy", ["canary", "blue-green", "shadow", "ab"])
def test_pin_header_wins_in_every_strategy(strategy):
    r = _rollout(strategy)
    assert route(r, request_key="x", pin="candidate").variant == "candidate"
    assert route(r, request_key="x", pin="stable").variant == "stable"


def test_unit_hash_is_uniform_and_stable():
    values = [unit_hash(str(i)) for i in range(10_000)]
    assert unit_hash("abc") == unit_hash("abc")
    assert 0.48 < np.mean(values) < 0.52 and min(values) >= 0 and max(values) < 1


def test_psi_is_small_for_the_same_distribution_and_large_for_a_shift():
    rng = np.random.default_rng(0)
    a, b = rng.normal(0, 1, 5000), rng.normal(0, 1, 5000)
    assert stats.psi(a, b) < 0.02
    assert stats.psi(a, b + 1) > 0.5


def test_compare_arms_needs_the_minimum_sample():
    rng = np.random.default_rng(1)
    small = stats.compare_arms(rng.normal(10, 1, 20), rng.normal(5, 1, 20), alpha=0.05, min_samples=50)
    assert small.verdict == "inconclusive"
    better = stats.compare_arms(rng.normal(10, 1, 100), rng.normal(9, 1, 100), alpha=0.05, min_samples=50)
    assert better.verdict == "candidate_better" and better.p_value < 0.05
    same = stats.compare_arms(rng.normal(10, 1, 100), rng.normal(10, 1, 100), alpha=0.01, min_samples=50)
    assert same.verdict == "no_difference"


def test_sample_ratio_mismatch_flags_a_broken_router():
    assert stats.sample_ratio_mismatch(5000, 5040, expected_candidate_share=0.5) > 0.05
    assert stats.sample_ratio_mismatch(5000, 4000, expected_candidate_share=0.5) < 1e-6


def test_paired_comparison_for_classifiers_counts_flips():
    out = stats.paired_comparison([(0.9, 0.8), (0.2, 0.7), (0.1, 0.05), (0.6, 0.4)], task="classification")
    assert out["agreement_rate"] == 0.5
    assert out["class_flips"] == {
        "negative->negative": 1,
        "negative->positive": 1,
        "positive->negative": 1,
        "positive->positive": 1,
    }
