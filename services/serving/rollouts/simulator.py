"""A deterministic rollout simulator: virtual time, synthetic traffic, and a library of candidate behaviours.

Every strategy runs the real state machine, router and analysis; only the
models and the clock are simulated, so a ten-minute rollout replays in well
under a second and gives the same answer every time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from services.serving.rollouts import engine
from services.serving.rollouts.clock import ManualClock
from services.serving.rollouts.config import STRATEGIES, ABTest, RolloutConfig, Step, Strategy
from services.serving.rollouts.memory import InMemoryMetrics, Observation
from services.serving.rollouts.router import route


@dataclass(frozen=True)
class Behaviour:
    """How a model version behaves on the synthetic traffic."""

    noise: float = 10.0  # prediction error (sd) around the truth
    bias: float = 0.0
    error_rate: float = 0.0
    latency_ms: float = 4.0


STABLE = Behaviour()
SCENARIOS: dict[str, tuple[str, Behaviour]] = {
    "good": ("a sound candidate, as good as stable", Behaviour(noise=9.5)),
    "errors": ("fails 15 % of its requests", Behaviour(error_rate=0.15)),
    "slow": ("its latency is 6x stable's", Behaviour(latency_ms=24.0)),
    "shifted": ("its predictions are systematically 30 units too high", Behaviour(bias=30.0)),
    "better-after-labels": ("looks like stable until labels arrive, then proves more accurate", Behaviour(noise=5.0)),
}


def simulation_config(strategy: Strategy, candidate: str = "2") -> RolloutConfig:
    """Production-shaped settings at a pace that suits 20 requests/s of simulated traffic."""
    return RolloutConfig(
        strategy=strategy,
        candidate_version=candidate,
        steps=[
            Step(weight=0.1, bake_seconds=60),
            Step(weight=0.25, bake_seconds=60),
            Step(weight=0.5, bake_seconds=60),
            Step(weight=1.0, bake_seconds=0),
        ],
        analysis_interval_seconds=10,
        failure_limit=2,
        duration_seconds=180 if strategy == "ab" else 90,
        max_duration_seconds=900,
        rollback_window_seconds=120,
        ab=ABTest(min_samples_per_arm=300),
    )


@dataclass(frozen=True)
class SimulationResult:
    scenario: str
    strategy: Strategy
    outcome: str  # promoted | rolled_back | inconclusive
    requests_to_candidate: int  # user-facing responses the candidate produced (the blast radius)
    mirrored_to_candidate: int
    time_to_detect_s: float | None
    time_to_rollback_s: float | None
    duration_s: float
    reason: str

    def to_json(self) -> dict[str, object]:
        return {
            "scenario": self.scenario,
            "strategy": self.strategy,
            "outcome": self.outcome,
            "requests_to_candidate": self.requests_to_candidate,
            "time_to_detect_s": self.time_to_detect_s,
            "time_to_rollback_s": self.time_to_rollback_s,
            "mirrored_to_candidate": self.mirrored_to_candidate,
            "duration_s": self.duration_s,
            "reason": self.reason,
        }


def simulate(
    scenario: str,
    strategy: Strategy,
    *,
    seed: int = 7,
    rate: int = 20,
    label_delay_s: float = 30.0,
    horizon_s: float = 1200.0,
) -> SimulationResult:
    if scenario not in SCENARIOS:
        raise ValueError(f"unknown scenario '{scenario}'; known: {sorted(SCENARIOS)}")
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy '{strategy}'; known: {list(STRATEGIES)}")
    candidate = SCENARIOS[scenario][1]
    rng = np.random.default_rng(seed)
    clock = ManualClock()
    metrics = InMemoryMetrics()
    rollout, _ = engine.start(
        simulation_config(strategy),
        model_name="sim",
        stable_version="1",
        now=clock.now(),
        actor="simulator",
        rollout_id=f"sim-{scenario}-{strategy}",
    )
    served_by_candidate = mirrored = 0
    n = 0
    while rollout.active and clock.now() - rollout.started_at < horizon_s:
        now = clock.now()
        for _ in range(rate):
            n += 1
            truth = 100 + 50 * rng.standard_normal()
            decision = route(rollout, request_key=f"req-{n}", routing_key=f"user-{n % 5000}")
            answer = candidate if decision.variant == "candidate" else STABLE
            version = "2" if decision.variant == "candidate" else "1"
            metrics.record(_observe(rng, answer, version, truth, now, user_facing=True, delay=label_delay_s))
            served_by_candidate += decision.variant == "candidate"
            if decision.mirror:
                mirrored += 1
                metrics.record(_observe(rng, candidate, "2", truth, now, user_facing=False, delay=label_delay_s))
            now += 1.0 / rate
        clock.advance(1.0)
        rollout, _ = engine.tick(rollout, metrics, now=clock.now())
    outcome = {"promoted": "promoted", "inconclusive": "inconclusive"}.get(rollout.phase, "rolled_back")
    if rollout.active:
        outcome = "inconclusive"
    detect = rollout.detected_at - rollout.started_at if rollout.detected_at else None
    back = rollout.finished_at - rollout.detected_at if rollout.detected_at and outcome == "rolled_back" else None
    return SimulationResult(
        scenario,
        strategy,
        outcome,
        served_by_candidate,
        mirrored,
        detect,
        back,
        (rollout.finished_at or clock.now()) - rollout.started_at,
        rollout.reason,
    )


def _observe(
    rng: np.random.Generator, b: Behaviour, version: str, truth: float, now: float, *, user_facing: bool, delay: float
) -> Observation:
    latency = float(b.latency_ms * rng.lognormal(0, 0.25))
    if rng.random() < b.error_rate:
        return Observation(now, version, user_facing, latency, None)
    prediction = truth + b.bias + b.noise * rng.standard_normal()
    return Observation(now, version, user_facing, latency, prediction, (prediction - truth) ** 2, now + delay)


def simulate_all(*, seed: int = 7) -> list[SimulationResult]:
    return [simulate(s, st, seed=seed) for s in SCENARIOS for st in STRATEGIES]


def format_table(results: list[SimulationResult]) -> str:
    head = (
        f"{'scenario':<20} {'strategy':<11} {'outcome':<13} {'to candidate':>12} {'detect (s)':>10} "
        f"{'rollback (s)':>12}"
    )
    lines = [head, "-" * len(head)]
    for r in results:
        fmt = lambda x: "-" if x is None else f"{x:.0f}"  # noqa: E731
        lines.append(
            f"{r.scenario:<20} {r.strategy:<11} {r.outcome:<13} {r.requests_to_candidate:>12} "
            f"{fmt(r.time_to_detect_s):>10} {fmt(r.time_to_rollback_s):>12}"
        )
    return "\n".join(lines)
