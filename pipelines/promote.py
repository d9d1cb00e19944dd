"""Promoting the challenger: the retraining flow's path when no service runs rollouts."""

from __future__ import annotations

from models.promotion import record_promotion
from models.registry import CHALLENGER, CHAMPION, ModelRegistry


class PromotionError(RuntimeError):
    pass


def promote_challenger(registry: ModelRegistry, model_name: str, *, actor: str, reason: str) -> tuple[str, str | None]:
    """Make the challenger the champion. Returns (new champion version, previous champion version)."""
    challenger = registry.by_alias(model_name, CHALLENGER)
    if challenger is None:
        raise PromotionError(f"'{model_name}' has no challenger to promote")
    champion = registry.by_alias(model_name, CHAMPION)
    old = champion.version if champion else None
    record_promotion(registry, model_name, new=challenger.version, old=old, actor=actor, reason=reason)
    return challenger.version, old
