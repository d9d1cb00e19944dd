"""Per-version samples and the checks that judge a candidate against the stable version."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Literal, Protocol

import numpy as np

from services.serving.rollouts import stats
from services.serving.rollouts.config import Check

Status = Literal["pass", "fail", "inconclusive"]


@dataclass
class VersionSample:
    """What one version did in a window: requests, failures, latencies, predictions, labelled losses."""

    version: str
    requests: int = 0
    errors: int = 0
    latencies_ms: np.ndarray = field(default_factory=lambda: np.empty(0))
    predictions: np.ndarray = field(default_factory=lambda: np.empty(0))
    losses: np.ndarray = field(default_factory=lambda: np.empty(0))


class MetricsSource(Protocol):
    def sample(self, *, version: str, since: float, until: float, user_facing_only: bool = False) -> VersionSample: ...


@dataclass(frozen=True)
class CheckResult:
    check: str
    metric: str
    status: Status
    candidate: float
    stable: float | None
    threshold: float
    samples: int
    detail: str

    def to_dict(self) -> dict[str, object]:
        return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in asdict(self).items()}


def _value(metric: str, sample: VersionSample) -> tuple[float, int]:
    if metric == "error_rate":
        return (sample.errors / sample.requests if sample.requests else math.nan), sample.requests
    if metric == "latency_p50":
        return stats.percentile(sample.latencies_ms, 50), len(sample.latencies_ms)
    if metric == "latency_p99":
        return stats.percentile(sample.latencies_ms, 99), len(sample.latencies_ms)
    if metric == "quality":
        return (float(np.mean(sample.losses)) if len(sample.losses) else math.nan), len(sample.losses)
    raise ValueError(f"no per-version value for metric {metric}")


def evaluate_check(check: Check, candidate: VersionSample, stable: VersionSample) -> CheckResult:
    """One check: pass, fail, or inconclusive when either side has fewer than ``min_samples``."""

    def result(status: Status | bool, value: float, n: int, detail: str, base: float | None = None) -> CheckResult:
        if isinstance(status, bool):
            status = "pass" if status else "fail"
        return CheckResult(check.name, check.metric, status, value, base, check.threshold, n, detail)

    if check.metric in ("prediction_psi", "prediction_ks"):
        n = min(len(candidate.predictions), len(stable.predictions))
        if n < check.min_samples:
            return result("inconclusive", math.nan, n, f"{n} paired predictions < {check.min_samples}")
        if check.metric == "prediction_psi":
            value = stats.psi(stable.predictions, candidate.predictions)
            ok = value <= check.threshold
            return result(ok, value, n, f"PSI {value:.3f} {'<=' if ok else '>'} {check.threshold:g}")
        value = stats.ks_pvalue(stable.predictions, candidate.predictions)
        ok = value >= check.threshold
        return result(ok, value, n, f"KS p={value:.4f} {'>=' if ok else '<'} {check.threshold:g}")

    value, n = _value(check.metric, candidate)
    if n < check.min_samples:
        return result("inconclusive", value, n, f"candidate has {n} samples < {check.min_samples}")
    if check.comparison == "absolute":
        ok = value <= check.threshold
        return result(ok, value, n, f"{check.metric} {value:.4g} {'<=' if ok else '>'} {check.threshold:g}")
    base, base_n = _value(check.metric, stable)
    if base_n < check.min_samples:
        return result("inconclusive", value, n, f"stable has {base_n} samples < {check.min_samples}", base)
    # A floor keeps "3x a near-zero error rate" from failing on one unlucky request.
    floor = {"error_rate": 0.01, "latency_p50": 1.0, "latency_p99": 1.0}.get(check.metric, 0.0)
    limit = max(base, floor) * check.threshold
    ok = value <= limit
    return result(
        ok,
        value,
        n,
        f"{check.metric} {value:.4g} {'<=' if ok else '>'} {limit:.4g} (stable {base:.4g} x {check.threshold:g})",
        base,
    )


def run_checks(checks: list[Check], candidate: VersionSample, stable: VersionSample) -> list[CheckResult]:
    return [evaluate_check(c, candidate, stable) for c in checks]
