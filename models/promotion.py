"""The champion/challenger rule, as a pure function, and the one routine that records a promotion."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Literal, Protocol

from models.registry import CHALLENGER, CHAMPION, PREVIOUS

Verdict = Literal["champion", "challenger", "rejected"]


@dataclass(frozen=True)
class PromotionDecision:
    verdict: Verdict
    reason: str
    candidate_score: float
    champion_score: float | None
    required: float | None

    @property
    def promoted(self) -> bool:
        return self.verdict != "rejected"


def decide_promotion(
    *,
    metric: str,
    candidate_score: float,
    champion_score: float | None,
    margin: float,
    higher_is_better: bool,
) -> PromotionDecision:
    """First model ever -> champion. Otherwise challenger only if it beats the champion by ``margin``.

    Both scores must come from the same held-out window; the margin is relative
    (0.02 = at least 2 % better) so one rule fits metrics of any scale.
    """
    if math.isnan(candidate_score):
        return PromotionDecision(
            "rejected", f"candidate {metric} is undefined (NaN)", candidate_score, champion_score, None
        )
    if champion_score is None:
        return PromotionDecision(
            "champion",
            f"no champion yet: first model becomes champion ({metric}={candidate_score:.4g})",
            candidate_score,
            None,
            None,
        )
    if math.isnan(champion_score):
        return PromotionDecision(
            "challenger",
            f"champion {metric} is undefined on the held-out window; candidate {metric}={candidate_score:.4g}",
            candidate_score,
            champion_score,
            None,
        )
    if higher_is_better:
        required = champion_score + margin * abs(champion_score)
        beats = candidate_score >= required
        cmp = ">=" if beats else "<"
    else:
        required = champion_score - margin * abs(champion_score)
        beats = candidate_score <= required
        cmp = "<=" if beats else ">"
    detail = (
        f"candidate {metric}={candidate_score:.4g} {cmp} required {required:.4g} "
        f"(champion {champion_score:.4g}, margin {margin:.1%})"
    )
    if beats:
        return PromotionDecision("challenger", f"beats champion: {detail}", candidate_score, champion_score, required)
    return PromotionDecision("rejected", f"does not beat champion: {detail}", candidate_score, champion_score, required)


def gate_on_fairness(decision: PromotionDecision, *, fair: bool, why: str) -> PromotionDecision:
    """A challenger that fails the fairness check (models.fairness) is not promoted, and says why.

    The first model still becomes champion (something has to serve); its verdict carries the finding.
    """
    if fair:
        return decision
    if decision.verdict == "challenger":
        return replace(decision, verdict="rejected", reason=f"fails the fairness check: {why} ({decision.reason})")
    if decision.verdict == "champion":
        return replace(decision, reason=f"{decision.reason}; fails the fairness check: {why}")
    return decision


class AliasRegistry(Protocol):
    """What a promotion changes in the registry: aliases, and tags on versions.

    MlflowRegistry (the pipelines) and the service's model sources (the MLflow client, or its REST
    API in the serving image) implement it.
    """

    def alias_version(self, name: str, alias: str) -> str | None: ...
    def set_alias(self, name: str, alias: str, version: str) -> None: ...
    def delete_alias(self, name: str, alias: str) -> None: ...
    def tag(self, name: str, version: str, tags: dict[str, str]) -> None: ...


def record_promotion(
    registry: AliasRegistry,
    name: str,
    *,
    new: str,
    old: str | None,
    actor: str,
    reason: str,
    at: datetime | None = None,
) -> None:
    """Make ``new`` the champion: the retraining flow's promotion, a rollout's and a rollback alike.

    The version it replaces becomes ``previous`` (the rollback target) and is tagged retired; a
    ``challenger`` alias naming ``new`` is cleared; ``new`` is tagged with who promoted it, when
    and why. Safe to repeat (a retry, a restart that completes an interrupted promotion): each step
    sets a value, so a second run leaves the same aliases.
    """
    stamp = (at or datetime.now(UTC)).isoformat(timespec="seconds")
    if old is not None and old != new:
        registry.set_alias(name, PREVIOUS, old)
        registry.tag(name, old, {"retired_at": stamp, "retired_by": actor})
    registry.set_alias(name, CHAMPION, new)
    if registry.alias_version(name, CHALLENGER) == new:
        registry.delete_alias(name, CHALLENGER)
    registry.tag(name, new, {"promoted_at": stamp, "promoted_by": actor, "promoted_because": reason})
