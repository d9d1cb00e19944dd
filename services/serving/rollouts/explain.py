"""`mlops rollout why`: a plain-language account of a rollout, from its decision log."""

from __future__ import annotations

from datetime import UTC, datetime

from services.serving.rollouts.state import Event, Rollout

OUTCOME = {
    "promoted": "was PROMOTED",
    "rolled_back": "was ROLLED BACK",
    "aborted": "was ABORTED",
    "inconclusive": "ended INCONCLUSIVE (the stable version stays)",
    "progressing": "is still in progress",
    "paused": "is paused",
}


def _t(ts: float, start: float) -> str:
    return f"+{ts - start:6.0f}s"


def explain(rollout: Rollout, events: list[Event]) -> str:
    started = datetime.fromtimestamp(rollout.started_at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    lines = [
        f"Rollout {rollout.id} ({rollout.strategy}) of {rollout.model_name} v{rollout.candidate_version} "
        f"against stable v{rollout.stable_version}, started {started}, {OUTCOME.get(rollout.phase, rollout.phase)}.",
    ]
    if rollout.reason:
        lines.append(f"Why: {rollout.reason}.")
    analyses = [e for e in events if e.kind == "analysis"]
    failed = [e for e in analyses if e.data.get("verdict") == "fail"]
    if analyses:
        lines.append(
            f"Analysis ran {len(analyses)} times: {len(failed)} failed, "
            f"{sum(e.data.get('verdict') == 'pass' for e in analyses)} passed, "
            f"{sum(e.data.get('verdict') == 'inconclusive' for e in analyses)} inconclusive "
            f"(failure limit {rollout.config.failure_limit})."
        )
    if failed:
        first = failed[0]
        bad = [r for r in first.data.get("results", []) if r.get("status") == "fail"]
        lines.append(
            f"First failure at {_t(first.ts, rollout.started_at)}, at weight {first.data.get('weight', 0):.0%}: "
            + "; ".join(r["detail"] for r in bad)
            + "."
        )
    lines.append("Timeline:")
    for e in events:
        if e.kind == "analysis" and e.data.get("verdict") == "pass" and e is not analyses[-1]:
            continue  # passing analyses are summarised above; the log keeps every one
        lines.append(f"  {_t(e.ts, rollout.started_at)}  {e.kind:<12} {e.actor:<12} {e.message}")
    return "\n".join(lines)
