"""Moving aliases: challenger becomes champion, the old champion becomes previous."""

from __future__ import annotations

from datetime import UTC, datetime

from models.registry import CHALLENGER, CHAMPION, PREVIOUS, ModelRegistry


class PromotionError(RuntimeError):
    pass


def promote_challenger(registry: ModelRegistry, model_name: str, *, actor: str, reason: str) -> tuple[str, str | None]:
    """Make the challenger the champion. Returns (new champion version, previous champion version)."""
    challenger = registry.by_alias(model_name, CHALLENGER)
    if challenger is None:
        raise PromotionError(f"'{model_name}' has no challenger to promote")
    champion = registry.by_alias(model_name, CHAMPION)
    at = datetime.now(UTC).isoformat(timespec="seconds")
    if champion is not None:
        registry.set_alias(model_name, PREVIOUS, champion.version)
        registry.tag(model_name, champion.version, {"retired_at": at, "retired_by": actor})
    registry.set_alias(model_name, CHAMPION, challenger.version)
    registry.delete_alias(model_name, CHALLENGER)
    registry.tag(model_name, challenger.version, {"promoted_at": at, "promoted_by": actor, "promoted_because": reason})
    return challenger.version, champion.version if champion else None
