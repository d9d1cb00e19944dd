"""An in-memory metrics store: the simulator's and the unit tests' stand-in for the prediction log."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from services.serving.rollouts.analysis import VersionSample


@dataclass(slots=True)
class Observation:
    ts: float
    version: str
    user_facing: bool
    latency_ms: float
    prediction: float | None  # None: the prediction failed
    loss: float | None = None
    label_at: float | None = None  # when the ground truth arrives


class InMemoryMetrics:
    def __init__(self) -> None:
        self.observations: list[Observation] = []

    def record(self, obs: Observation) -> None:
        self.observations.append(obs)

    def sample(self, *, version: str, since: float, until: float, user_facing_only: bool = False) -> VersionSample:
        rows = [
            o
            for o in self.observations
            if o.version == version and since <= o.ts < until and (o.user_facing or not user_facing_only)
        ]
        ok = [o for o in rows if o.prediction is not None]
        labelled = [o.loss for o in ok if o.loss is not None and o.label_at is not None and o.label_at <= until]
        return VersionSample(
            version=version,
            requests=len(rows),
            errors=len(rows) - len(ok),
            latencies_ms=np.array([o.latency_ms for o in rows]),
            predictions=np.array([o.prediction for o in ok]),
            losses=np.array(labelled, dtype=float),
        )
