"""What the reporting commands print by default: a few lines a person reads. ``--json`` prints the
whole result instead, as one JSON object, for scripts."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def _numbers(metrics: Mapping[str, Any]) -> str:
    return ", ".join(f"{k} {v:.4g}" for k, v in metrics.items() if isinstance(v, int | float))


def ingested(r: Mapping[str, Any]) -> list[str]:
    if r.get("duplicate"):
        return [f"batch {r['batch_id'][:12]}: the same bytes were ingested on {r['ingested_at']}; nothing to do"]
    lines = [
        f"batch {r['batch_id'][:12]} {r['status']}: {r['rows_received']} rows received, "
        f"{r['rows_accepted']} accepted, {r['rows_quarantined']} quarantined"
    ]
    if r.get("reason"):
        lines.append(f"  why: {r['reason']}")
    for reason, n in sorted((r.get("failure_counts") or {}).items(), key=lambda kv: -kv[1])[:5]:
        lines.append(f"  {n} x {reason}")
    if r.get("data_docs"):
        lines.append(f"  data docs: {r['data_docs']}")
    return lines


def validated(r: Mapping[str, Any]) -> list[str]:
    lines = [f"{r['rows_received']} rows: {r['rows_accepted']} would be accepted, {r['rows_quarantined']} quarantined"]
    lines += [f"  row {q['row']}: {'; '.join(q['reasons'])}" for q in r["quarantined"]]
    if r.get("data_docs"):
        lines.append(f"  data docs: {r['data_docs']}")
    return lines


def trained(r: Mapping[str, Any]) -> list[str]:
    decision = r["decision"]
    return [
        f"{r['model_name']} v{r['version']} ({r['algorithm']}, {r['rows']} rows, data {r['data_version']}): "
        f"{decision['verdict']}: {decision['reason']}",
        f"  test: {_numbers(r['test_metrics'])}",
        f"  run {r['run_id']}; analysis of the data: {r['eda_report']}",
    ]


def trained_out_of_core(r: Mapping[str, Any]) -> list[str]:
    decision, rows = r["decision"], r["rows"]
    return [
        f"{r['model_name']} v{r['version']} ({r['algorithm']} x{r['members']} chunks, {rows['train']:,} rows; "
        f"tested on {rows['test']:,}): {decision['verdict']}: {decision['reason']}",
        f"  test: {_numbers(r['test_metrics'])}",
        f"  on {len(r['dask_workers'])} Dask workers; profile of the lake: {r['profile']}",
    ]


def analysed(r: Mapping[str, Any]) -> list[str]:
    return [f"data version {r['data_version']} ({r['rows']} rows): {r['report']}", *(f"  {w}" for w in r["warnings"])]


def monitored(r: Mapping[str, Any]) -> list[str]:
    if r.get("skipped"):
        return [f"{r['name']}: only {r['rows']} rows in the window, not enough to judge drift"]
    verdict = "DRIFT" if r["drift_detected"] else "no drift"
    lines = [
        f"{r['name']}: {verdict}, drift share {r['drift_share']:.2f} (threshold {r['threshold']:.2f}) "
        f"against v{r['model_version']}; drifted: {', '.join(r.get('drifted_features') or []) or 'nothing'}"
    ]
    if r.get("quality"):
        lines.append(f"  live quality: {_numbers(r['quality'])}")
    lines += [f"  report: {r[k]}" for k in ("html_report", "json_report") if r.get(k)]
    if r.get("retraining"):
        lines += ["  retraining:", *(f"  {line}" for line in retrained(r["retraining"]))]
    return lines


def retrained(r: Mapping[str, Any]) -> list[str]:
    lines = trained(r["trained"]) if r.get("trained") else []
    rollout = r.get("rollout")
    if rollout:
        lines.append(f"  {rollout.get('strategy')} of v{rollout.get('candidate_version')}: {rollout.get('outcome')}")
    lines.append(f"  champion: v{r.get('champion')}" + (" (promoted now)" if r.get("promoted") else ""))
    return lines
