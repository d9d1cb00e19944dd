"""A profile of a lake too large for one process: statistics that add up, chunk by chunk.

Each chunk of rows gives sums (counts, missing values, sums of values, squares and cross-products
with the target, per-category counts and target sums, histogram counts over the schema's declared
range); sums of chunks are the sums of the whole, so the merged profile is exact, not an estimate
from a sample: means, standard deviations, ranges, Pearson's r with the target and the correlation
ratio (eta) of each categorical feature with it. ``pipelines.outofcore.profile_lake`` computes the
chunks on Dask workers.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from core.usecase import UseCase

BINS = 20


@dataclass
class Sums:
    """The additive statistics of some rows."""

    rows: int = 0
    # Per numeric column, 12 numbers: n, missing, Σx, Σx², min, max over its present values; then, over
    # the rows where it and the target are both present, Σxy, their count, Σx, Σx², Σy, Σy² (Pearson's r).
    numeric: dict[str, np.ndarray] = field(default_factory=dict)
    histograms: dict[str, np.ndarray] = field(default_factory=dict)
    categories: dict[str, Counter[str]] = field(default_factory=dict)
    category_target: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)  # value -> n, Σy, Σy²
    target: np.ndarray = field(default_factory=lambda: np.zeros(3))  # n, Σy, Σy²

    def __add__(self, other: Sums) -> Sums:
        out = Sums(rows=self.rows + other.rows, target=self.target + other.target)
        for name in self.numeric.keys() | other.numeric.keys():
            a, b = self.numeric.get(name), other.numeric.get(name)
            if a is None or b is None:
                out.numeric[name] = (a if b is None else b).copy()
                continue
            merged = a + b
            merged[4], merged[5] = np.fmin(a[4], b[4]), np.fmax(a[5], b[5])
            out.numeric[name] = merged
        for name in self.histograms.keys() | other.histograms.keys():
            out.histograms[name] = self.histograms.get(name, 0) + other.histograms.get(name, 0)
        for name in self.categories.keys() | other.categories.keys():
            out.categories[name] = self.categories.get(name, Counter()) + other.categories.get(name, Counter())
            mine, theirs = self.category_target.get(name, {}), other.category_target.get(name, {})
            out.category_target[name] = {
                v: mine.get(v, np.zeros(3)) + theirs.get(v, np.zeros(3)) for v in mine.keys() | theirs.keys()
            }
        return out


def chunk_sums(frame: pd.DataFrame, use_case: UseCase) -> Sums:
    """The sums of one chunk of curated rows."""
    y = pd.to_numeric(frame[use_case.target], errors="coerce").to_numpy(dtype=float)
    labelled = ~np.isnan(y)
    out = Sums(rows=len(frame), target=np.array([labelled.sum(), y[labelled].sum(), (y[labelled] ** 2).sum()]))
    for name in use_case.numeric_features:
        x = pd.to_numeric(frame[name], errors="coerce").to_numpy(dtype=float)
        present = ~np.isnan(x)
        both = present & labelled
        values = x[present]
        out.numeric[name] = np.array(
            [
                present.sum(),
                (~present).sum(),
                values.sum(),
                (values**2).sum(),
                values.min() if values.size else np.nan,
                values.max() if values.size else np.nan,
                (x[both] * y[both]).sum(),
                both.sum(),
                x[both].sum(),
                (x[both] ** 2).sum(),
                y[both].sum(),
                (y[both] ** 2).sum(),
            ]
        )
        bounds = _bounds(use_case, name)
        if bounds is not None:
            out.histograms[name] = np.histogram(values, bins=BINS, range=bounds)[0]
    for name in use_case.categorical_features:
        values = frame[name].astype("string").fillna("<missing>")
        out.categories[name] = Counter(values.value_counts().to_dict())
        grouped = pd.DataFrame({"v": values[labelled].to_numpy(), "y": y[labelled]}).groupby("v")["y"]
        stats = grouped.agg(["count", "sum", lambda s: (s**2).sum()])
        out.category_target[name] = {str(v): row.to_numpy(dtype=float) for v, row in stats.iterrows()}
    return out


def _bounds(use_case: UseCase, name: str) -> tuple[float, float] | None:
    column = use_case.schema_.columns[name]
    low, high = column.min, column.max
    return (float(low), float(high)) if low is not None and high is not None and high > low else None


def summarize(sums: Sums, use_case: UseCase) -> dict[str, Any]:
    """The profile of all the rows the sums came from."""
    columns: dict[str, Any] = {}
    for name, s in sorted(sums.numeric.items()):
        n, missing, total, squares, low, high = s[:6]
        columns[name] = {
            "kind": "numeric",
            "count": int(n),
            "missing": int(missing),
            "mean": float(total / n) if n else None,
            "std": _std(n, total, squares),
            "min": None if np.isnan(low) else float(low),
            "max": None if np.isnan(high) else float(high),
            "pearson_with_target": _pearson(*s[6:]),
        }
        if name in sums.histograms:
            low_edge, high_edge = _bounds(use_case, name)  # type: ignore[misc]
            columns[name]["histogram"] = {
                "edges": np.linspace(low_edge, high_edge, BINS + 1).round(6).tolist(),
                "counts": sums.histograms[name].astype(int).tolist(),
            }
    n_y, sum_y, sum_y2 = sums.target
    for name, counts in sorted(sums.categories.items()):
        columns[name] = {
            "kind": "categorical",
            "count": int(sum(counts.values())),
            "values": {str(v): int(c) for v, c in counts.most_common()},
            "correlation_ratio_with_target": _eta(sums.category_target[name], n_y, sum_y, sum_y2),
        }
    return {
        "rows": sums.rows,
        "target": {
            "name": use_case.target,
            "count": int(n_y),
            "mean": float(sum_y / n_y) if n_y else None,
            "std": _std(n_y, sum_y, sum_y2),
        },
        "columns": columns,
    }


def _std(n: float, total: float, squares: float) -> float | None:
    """The sample standard deviation from a count, a sum and a sum of squares."""
    if n < 2:
        return None
    return math.sqrt(max(squares - total**2 / n, 0.0) / (n - 1))


def _pearson(sum_xy: float, n: float, sum_x: float, sum_x2: float, sum_y: float, sum_y2: float) -> float | None:
    if n < 2:
        return None
    cov = sum_xy - sum_x * sum_y / n
    var_x, var_y = sum_x2 - sum_x**2 / n, sum_y2 - sum_y**2 / n
    return float(cov / math.sqrt(var_x * var_y)) if var_x > 0 and var_y > 0 else None


def _eta(groups: dict[str, np.ndarray], n: float, sum_y: float, sum_y2: float) -> float | None:
    """The correlation ratio: the share of the target's spread that the category's means explain, square-rooted."""
    total = sum_y2 - sum_y**2 / n if n else 0.0
    if total <= 0:
        return None
    between = sum(s**2 / c for c, s, _ in groups.values() if c) - sum_y**2 / n
    return float(math.sqrt(max(between, 0.0) / total))
