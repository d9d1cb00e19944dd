"""The rollout record and its decision-log events."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

from services.serving.rollouts.config import RolloutConfig, Strategy

Phase = Literal["progressing", "paused", "promoted", "rolled_back", "aborted", "inconclusive"]
TERMINAL: frozenset[str] = frozenset({"promoted", "rolled_back", "aborted", "inconclusive"})


@dataclass(frozen=True)
class Rollout:
    id: str
    model_name: str
    strategy: Strategy
    stable_version: str
    candidate_version: str
    config: RolloutConfig
    phase: Phase
    started_at: float
    updated_at: float
    step: int = 0
    weight: float = 0.0  # share of user traffic answered by the candidate
    mirror_share: float = 0.0  # share of requests mirrored to the candidate (shadow, blue-green preview)
    step_started_at: float = 0.0
    last_analysis_at: float = 0.0
    failures: int = 0
    passes_in_step: int = 0
    results: list[dict[str, Any]] = field(default_factory=list)
    detected_at: float | None = None
    finished_at: float | None = None
    release_at: float | None = None  # blue-green: the old slot stays loaded until then
    reason: str = ""
    revision: int = 0

    @property
    def active(self) -> bool:
        return self.phase not in TERMINAL

    @property
    def routes_candidate(self) -> bool:
        """Whether the candidate takes (or mirrors) traffic now."""
        return self.active and (self.weight > 0 or self.mirror_share > 0)

    def evolve(self, **changes: Any) -> Rollout:
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["config"] = self.config.model_dump()
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Rollout:
        return cls(**{**data, "config": RolloutConfig.model_validate(data["config"])})


@dataclass(frozen=True)
class Event:
    """One line of the append-only decision log."""

    rollout_id: str
    ts: float
    kind: str  # started | step | analysis | paused | resumed | promoted | rolled_back | aborted | ...
    actor: str
    message: str
    data: dict[str, Any] = field(default_factory=dict)
