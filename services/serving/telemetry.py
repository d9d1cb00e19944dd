"""Prometheus metrics of the service, labelled by model version and variant."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from services.serving.rollouts.state import Rollout

OUTCOMES = ("ok", "error")  # of a prediction, in the mlops_predictions counter
PHASES = ("none", "progressing", "paused", "promoted", "rolled_back", "aborted", "inconclusive")


class ServiceMetrics:
    """One registry per app instance, so several apps in one process (tests) never collide."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.predictions = Counter(
            "mlops_predictions", "Predicted records", ["model_version", "variant", "outcome"], registry=self.registry
        )
        self.requests = Counter(
            "mlops_predict_requests", "Prediction requests", ["model_version", "variant"], registry=self.registry
        )
        self.latency = Histogram(
            "mlops_predict_latency_seconds",
            "Time to predict one request",
            ["model_version", "variant"],
            registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
        )
        self.weight = Gauge("mlops_rollout_weight", "Share of user traffic on the candidate", registry=self.registry)
        self.mirror = Gauge(
            "mlops_rollout_mirror_share", "Share of traffic mirrored to the candidate", registry=self.registry
        )
        self.phase = Gauge("mlops_rollout_phase", "1 for the current rollout phase", ["phase"], registry=self.registry)
        self.serving = Gauge("mlops_serving_version", "Version answering by default (stable)", registry=self.registry)
        self.log_queued = Gauge(
            "mlops_prediction_log_queued_requests",
            "Answered requests in memory, not yet written (what a crash would lose)",
            registry=self.registry,
        )
        self.log_spilled = Gauge(
            "mlops_prediction_log_spilled_requests",
            "Answered requests on local disk while the database does not take them",
            registry=self.registry,
        )
        self.log_lost = Gauge(
            "mlops_prediction_log_lost_requests",
            "Answered requests that could be neither written nor spilled (0 unless the disk failed too)",
            registry=self.registry,
        )
        # Each (version, variant)'s metric children, looked up once: ``labels()`` on every request
        # cost 3 % of the event loop's time under load.
        self._children: dict[tuple[str, str], _Children] = {}

    def count(self, *, version: str, variant: str, ok: bool, records: int, latency_s: float) -> None:
        """One answered request: its records by outcome, and its latency."""
        children = self._children.get((version, variant))
        if children is None:
            # Both outcomes exist from a version's first request on, so that an error-rate query
            # reads 0, not "no data".
            children = self._children[version, variant] = _Children(
                requests=self.requests.labels(model_version=version, variant=variant),
                outcomes={
                    o: self.predictions.labels(model_version=version, variant=variant, outcome=o) for o in OUTCOMES
                },
                latency=self.latency.labels(model_version=version, variant=variant),
            )
        children.requests.inc()
        children.outcomes["ok" if ok else "error"].inc(records)
        children.latency.observe(latency_s)

    def observe_rollout(self, rollout: Rollout | None, stable_version: str | None) -> None:
        current = rollout.phase if rollout is not None else "none"
        for phase in PHASES:
            self.phase.labels(phase=phase).set(1.0 if phase == current else 0.0)
        self.weight.set(rollout.weight if rollout is not None else 0.0)
        self.mirror.set(rollout.mirror_share if rollout is not None else 0.0)
        if stable_version and stable_version.isdigit():
            self.serving.set(float(stable_version))

    def observe_log(self, *, queued: int, spilled: int, lost: int) -> None:
        self.log_queued.set(queued)
        self.log_spilled.set(spilled)
        self.log_lost.set(lost)

    def render(self) -> bytes:
        return generate_latest(self.registry)


@dataclass(frozen=True, slots=True)
class _Children:
    requests: Counter
    outcomes: dict[str, Counter]
    latency: Histogram
