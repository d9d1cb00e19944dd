"""A rollout's declared configuration: strategy, steps, analysis checks and limits."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Strategy = Literal["canary", "blue-green", "shadow", "ab"]
STRATEGIES: tuple[Strategy, ...] = ("canary", "blue-green", "shadow", "ab")
# Upper bounds on every number: a typo (2e31 samples, a bake of centuries) is refused with a 422
# instead of being stored as a rollout that can never finish.
HOUR, DAY = 3600.0, 86400.0
WEEK = 7 * DAY
MAX_SAMPLES = 1_000_000
Metric = Literal["error_rate", "latency_p50", "latency_p99", "prediction_psi", "prediction_ks", "quality"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Step(_Strict):
    weight: float = Field(gt=0, le=1, description="Share of user traffic sent to the candidate.")
    bake_seconds: float = Field(
        ge=0, le=WEEK, description="How long the step runs (with passing analysis) before the next."
    )


class Check(_Strict):
    """One analysis check. ``absolute``: candidate value <= threshold.
    ``relative``: candidate value <= stable value x threshold (latency, error, quality).
    """

    metric: Metric
    comparison: Literal["absolute", "relative"] = "absolute"
    threshold: float = Field(gt=0, le=1e6)
    window_seconds: float = Field(default=60, gt=0, le=DAY)
    min_samples: int = Field(default=30, ge=1, le=MAX_SAMPLES)

    @property
    def name(self) -> str:
        return f"{self.metric}{'<=' if self.comparison == 'absolute' else '<=stable*'}{self.threshold:g}"


# PSI over 10 bins carries a small-sample bias of about 9/n per side, so it needs ~100
# predictions before 0.25 means a shift; the quality check compares noisy per-request
# losses, so it needs ~100 labels and a tolerance of 25 %. Both look back further.
DEFAULT_CHECKS: tuple[Check, ...] = (
    Check(metric="error_rate", threshold=0.02, min_samples=20),
    Check(metric="latency_p99", comparison="relative", threshold=3.0, min_samples=20),
    Check(metric="prediction_psi", threshold=0.25, min_samples=100, window_seconds=300),
    Check(metric="quality", comparison="relative", threshold=1.25, min_samples=100, window_seconds=300),
)


class ABTest(_Strict):
    split: float = Field(default=0.5, gt=0, lt=1, description="Share of routing keys assigned to the candidate.")
    routing_header: str = Field(default="X-Routing-Key", pattern=r"^[A-Za-z0-9-]{1,64}$")
    min_samples_per_arm: int = Field(
        default=300,
        ge=10,
        le=MAX_SAMPLES,
        description="Planned labelled outcomes per arm. The test runs once, when both arms reach it (no peeking).",
    )
    alpha: float = Field(default=0.05, gt=0, lt=0.5)
    srm_alpha: float = Field(default=0.001, gt=0, lt=0.1, description="Sample-ratio-mismatch test level.")


class RolloutConfig(_Strict):
    strategy: Strategy
    candidate_version: str = Field(min_length=1, max_length=32)
    stable_version: str | None = Field(default=None, max_length=32, description="Defaults to the current champion.")
    steps: list[Step] = Field(
        default_factory=lambda: [
            Step(weight=0.1, bake_seconds=60),
            Step(weight=0.5, bake_seconds=60),
            Step(weight=1.0, bake_seconds=0),
        ],
        max_length=20,
        description="Canary steps; the last must reach weight 1.",
    )
    checks: list[Check] = Field(default_factory=lambda: list(DEFAULT_CHECKS), max_length=20)
    analysis_interval_seconds: float = Field(default=10, gt=0, le=HOUR)
    failure_limit: int = Field(default=2, ge=1, le=100, description="Failed analysis runs that trigger a rollback.")
    mirror_share: float = Field(default=1.0, gt=0, le=1, description="Shadow and blue-green preview mirroring.")
    duration_seconds: float = Field(default=120, gt=0, le=WEEK, description="Shadow, preview and A/B observation time.")
    max_duration_seconds: float = Field(
        default=3600, gt=0, le=30 * DAY, description="Give up as 'inconclusive' after this."
    )
    rollback_window_seconds: float = Field(
        default=300, ge=0, le=DAY, description="Blue-green: keep the old slot loaded."
    )
    ab: ABTest = ABTest()

    @model_validator(mode="after")
    def _coherent(self) -> RolloutConfig:
        if self.strategy == "canary":
            if not self.steps:
                raise ValueError("a canary needs at least one step")
            weights = [s.weight for s in self.steps]
            if weights != sorted(weights):
                raise ValueError(f"canary step weights must not decrease: {weights}")
            if weights[-1] != 1.0:
                raise ValueError(f"the last canary step must reach weight 1.0, not {weights[-1]}")
        if self.stable_version is not None and self.stable_version == self.candidate_version:
            raise ValueError("candidate_version and stable_version are the same version")
        return self
