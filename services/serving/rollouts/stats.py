"""The statistics behind the analysis: distribution drift, arm comparison, sample-ratio mismatch."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


def psi(expected: np.ndarray, actual: np.ndarray, *, bins: int = 10) -> float:
    """Population stability index of ``actual`` against ``expected``, on the expected's quantile bins.

    < 0.1 stable, 0.1-0.25 moderate shift, > 0.25 major shift (the usual reading).
    """
    expected, actual = np.asarray(expected, float), np.asarray(actual, float)
    if len(expected) == 0 or len(actual) == 0:
        raise ValueError("PSI needs two non-empty samples")
    edges = np.unique(np.quantile(expected, np.linspace(0, 1, bins + 1)))
    if len(edges) < 2:  # a constant reference: compare the share equal to it
        same_e, same_a = np.mean(expected == edges[0]), np.mean(actual == edges[0])
        e, a = np.array([same_e, 1 - same_e]), np.array([same_a, 1 - same_a])
    else:
        edges[0], edges[-1] = -np.inf, np.inf
        e = np.histogram(expected, edges)[0] / len(expected)
        a = np.histogram(actual, edges)[0] / len(actual)
    e, a = np.clip(e, 1e-4, None), np.clip(a, 1e-4, None)
    return float(np.sum((a - e) * np.log(a / e)))


# SciPy is imported where a test needs it, not with this module: ``scipy.stats`` costs the
# serving process most of a second of start-up, and only some rollout checks use it.


def ks_pvalue(a: np.ndarray, b: np.ndarray) -> float:
    from scipy import stats

    return float(stats.ks_2samp(a, b).pvalue)


@dataclass(frozen=True)
class ArmComparison:
    """Candidate vs stable on a per-request loss (lower is better)."""

    n_stable: int
    n_candidate: int
    mean_stable: float
    mean_candidate: float
    p_value: float
    verdict: str  # "candidate_better" | "candidate_worse" | "no_difference" | "inconclusive"


def compare_arms(
    stable_loss: np.ndarray, candidate_loss: np.ndarray, *, alpha: float, min_samples: int
) -> ArmComparison:
    """Welch's t-test on per-request losses. Below ``min_samples`` in either arm: inconclusive, never a pass."""
    s, c = np.asarray(stable_loss, float), np.asarray(candidate_loss, float)
    ms = float(s.mean()) if len(s) else math.nan
    mc = float(c.mean()) if len(c) else math.nan
    if len(s) < min_samples or len(c) < min_samples:
        return ArmComparison(len(s), len(c), ms, mc, math.nan, "inconclusive")
    if np.allclose(s, s[0]) and np.allclose(c, c[0]):
        p = 1.0 if math.isclose(ms, mc) else 0.0
    else:
        from scipy import stats

        p = float(stats.ttest_ind(c, s, equal_var=False).pvalue)
    if p < alpha:
        verdict = "candidate_better" if mc < ms else "candidate_worse"
    else:
        verdict = "no_difference"
    return ArmComparison(len(s), len(c), ms, mc, p, verdict)


def sample_ratio_mismatch(n_stable: int, n_candidate: int, *, expected_candidate_share: float) -> float:
    """Chi-square p-value that the observed split matches the configured one (small = the router is broken)."""
    total = n_stable + n_candidate
    if total == 0:
        return 1.0
    from scipy import stats

    expected = [total * (1 - expected_candidate_share), total * expected_candidate_share]
    return float(stats.chisquare([n_stable, n_candidate], expected).pvalue)


def percentile(values: np.ndarray, q: float) -> float:
    return float(np.percentile(values, q)) if len(values) else math.nan


def paired_comparison(pairs: list[tuple[float, float]], *, task: str, tolerance: float = 0.1) -> dict[str, object]:
    """Shadow analysis on the same requests: agreement, difference percentiles, class flips.

    Regression: two answers agree when within ``tolerance`` (relative) of each other.
    Classification: when both give the same class at 0.5.
    """
    if not pairs:
        return {"pairs": 0}
    stable, candidate = np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs])
    diff = candidate - stable
    out: dict[str, object] = {
        "pairs": len(pairs),
        "diff_p50": float(np.percentile(diff, 50)),
        "diff_p90": float(np.percentile(diff, 90)),
        "diff_p99": float(np.percentile(diff, 99)),
        "abs_diff_mean": float(np.mean(np.abs(diff))),
    }
    if task == "classification":
        s, c = stable >= 0.5, candidate >= 0.5
        out["agreement_rate"] = float(np.mean(s == c))
        out["class_flips"] = {
            "negative->negative": int(np.sum(~s & ~c)),
            "negative->positive": int(np.sum(~s & c)),
            "positive->negative": int(np.sum(s & ~c)),
            "positive->positive": int(np.sum(s & c)),
        }
    else:
        scale = np.maximum(np.abs(stable), 1e-9)
        out["agreement_rate"] = float(np.mean(np.abs(diff) / scale <= tolerance))
    return out
