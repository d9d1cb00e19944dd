"""Exploratory analysis of one dataset version: what a careful analyst looks at before modelling.

``profile`` is pure: a curated frame and its use case in, a JSON-able summary out. The statistics
are pandas' and SciPy's (quantiles, skewness, Pearson and Spearman, Cramér's V from a contingency
table); this module decides what to compute per column and what deserves a warning:

- leakage: a column that nearly determines the target (its association with the target, see
  ``target_against``, at least ``eda.leakage_threshold``): an error when it is a feature, a note
  when the use case already keeps it out;
- redundancy: two features that restate each other (|Pearson| at least ``eda.redundancy_threshold``);
- a constant or almost-empty column; strong class imbalance; heavy skew;
- outliers by the declared rule (beyond ``eda.iqr_factor`` interquartile ranges) and duplicates,
  exact and by the declared key.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from core.usecase import UseCase

EVENT_TIME = "event_time"
QUANTILES = {"min": 0.0, "p01": 0.01, "p25": 0.25, "median": 0.5, "p75": 0.75, "p99": 0.99, "max": 1.0}
MAX_CATEGORIES = 20  # shares listed per categorical column; the rest are counted as "other"


@dataclass(frozen=True)
class Warning:
    kind: Literal["leakage", "redundant", "constant", "almost_empty", "imbalance", "skew", "duplicates", "outliers"]
    severity: Literal["error", "warning", "info"]
    columns: list[str]
    message: str


def _finite(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def column_kind(frame: pd.DataFrame, column: str, use_case: UseCase) -> Literal["numeric", "categorical"]:
    spec = use_case.schema_.columns.get(column)
    if spec is not None:
        return "numeric" if spec.type in ("int", "float", "bool") else "categorical"
    return "numeric" if pd.api.types.is_numeric_dtype(frame[column]) else "categorical"


def _role(column: str, use_case: UseCase) -> str:
    if column == use_case.target:
        return "target"
    return "feature" if column in use_case.features else "not a feature"


def describe_column(series: pd.Series, kind: str, *, iqr_factor: float) -> dict[str, Any]:
    """Missing share, distinct values, and the shape of the distribution (numbers) or its shares (categories)."""
    present = series.dropna()
    out: dict[str, Any] = {
        "kind": kind,
        "rows": len(series),
        "missing_share": float(series.isna().mean()) if len(series) else 0.0,
        "distinct": int(present.nunique()),
    }
    if kind == "numeric" and len(present):
        values = pd.to_numeric(present, errors="coerce").dropna().astype(float)
        q = values.quantile(list(QUANTILES.values()))
        out["quantiles"] = {name: float(q.iloc[i]) for i, name in enumerate(QUANTILES)}
        out["mean"], out["std"] = float(values.mean()), _finite(float(values.std()))
        out["skew"] = _finite(float(values.skew())) if len(values) > 2 else None
        low_q, high_q = out["quantiles"]["p25"], out["quantiles"]["p75"]
        low, high = low_q - iqr_factor * (high_q - low_q), high_q + iqr_factor * (high_q - low_q)
        outside = int(((values < low) | (values > high)).sum())
        out["outliers"] = {
            "rule": f"IQR x {iqr_factor:g}",
            "low": low,
            "high": high,
            "count": outside,
            "share": outside / len(values),
        }
    elif kind == "categorical":
        shares = present.astype(str).value_counts(normalize=True)
        out["shares"] = {str(k): float(v) for k, v in shares.head(MAX_CATEGORIES).items()}
        if len(shares) > MAX_CATEGORIES:
            out["shares"]["(other)"] = float(shares.iloc[MAX_CATEGORIES:].sum())
    return out


def cramers_v(a: pd.Series, b: pd.Series) -> float | None:
    """Association of two categorical series, 0 (none) to 1 (one determines the other)."""
    from scipy.stats.contingency import association

    table = pd.crosstab(a.astype(str), b.astype(str))
    if table.shape[0] < 2 or table.shape[1] < 2:
        return None
    return _finite(float(association(table.to_numpy(), method="cramer")))


def _matrix(frame: pd.DataFrame, method: str) -> dict[str, dict[str, float | None]]:
    corr = frame.corr(method=method)
    return {a: {b: _finite(float(corr.loc[a, b])) for b in corr.columns} for a in corr.index}


def correlations(frame: pd.DataFrame, numeric: list[str], categorical: list[str]) -> dict[str, Any]:
    numbers = frame[numeric].apply(pd.to_numeric, errors="coerce").astype(float)
    numbers = numbers.loc[:, numbers.nunique() > 1]  # a constant column has no correlation
    return {
        "pearson": _matrix(numbers, "pearson") if numbers.shape[1] else {},
        "spearman": _matrix(numbers, "spearman") if numbers.shape[1] else {},
        "cramers_v": {a: {b: cramers_v(frame[a], frame[b]) for b in categorical} for a in categorical},
    }


def separation(x: pd.Series, positive: pd.Series) -> float | None:
    """How well one number alone separates the classes: |2 AUC - 1| (the Gini coefficient), 0 to 1.

    AUC from the Mann-Whitney U statistic; 1 means a threshold on ``x`` alone splits the classes.
    """
    from scipy.stats import mannwhitneyu

    ones, zeros = x[positive.astype(bool)].dropna(), x[~positive.astype(bool)].dropna()
    if ones.empty or zeros.empty:
        return None
    auc = mannwhitneyu(ones, zeros).statistic / (len(ones) * len(zeros))
    return _finite(abs(2 * auc - 1))


def correlation_ratio(category: pd.Series, y: pd.Series) -> float | None:
    """eta: how much of a number's variance the categories explain, 0 to 1."""
    total = ((y - y.mean()) ** 2).sum()
    if not total:
        return None
    groups = y.groupby(category.astype(str))
    between = (groups.size() * (groups.mean() - y.mean()) ** 2).sum()
    return _finite(math.sqrt(between / total))


def target_against(frame: pd.DataFrame, use_case: UseCase, kinds: dict[str, str]) -> dict[str, Any]:
    """How the target moves with each other column, and one association with it from 0 (none) to 1
    (determines it): |Spearman| for a number against a numeric target, the Gini coefficient of the
    number alone for classes, Cramér's V for categories against classes, the correlation ratio for
    categories against a number."""
    target = frame[use_case.target]
    classification = use_case.task == "classification"
    y = (target.astype(str) == use_case.positive_class).astype(float) if classification else pd.to_numeric(target)
    out: dict[str, Any] = {}
    for column, kind in kinds.items():
        if column == use_case.target:
            continue
        if kind == "numeric":
            x = pd.to_numeric(frame[column], errors="coerce")
            if x.nunique() < 2:
                out[column] = {"spearman": None, "pearson": None, "association": None}
                continue
            entry: dict[str, Any] = {
                "spearman": _finite(float(x.corr(y, method="spearman"))),
                "pearson": _finite(float(x.corr(y))),
            }
            if classification:
                entry["mean_by_class"] = {str(k): float(v) for k, v in x.groupby(target.astype(str)).mean().items()}
                entry["association"] = {"measure": "gini", "value": separation(x, y)}
            else:
                spearman = entry["spearman"]
                entry["association"] = {"measure": "|spearman|", "value": None if spearman is None else abs(spearman)}
            out[column] = entry
        else:
            grouped = y.groupby(frame[column].astype(str)).mean()
            key = "positive_rate_by_category" if classification else "target_mean_by_category"
            measure, value = (
                ("cramers_v", cramers_v(frame[column], target))
                if classification
                else ("correlation_ratio", correlation_ratio(frame[column], y))
            )
            out[column] = {
                key: {str(k): float(v) for k, v in grouped.head(MAX_CATEGORIES).items()},
                "association": {"measure": measure, "value": value},
            }
    return out


def describe_target(frame: pd.DataFrame, use_case: UseCase, *, iqr_factor: float) -> dict[str, Any]:
    target = frame[use_case.target]
    if use_case.task == "classification":
        shares = target.astype(str).value_counts(normalize=True)
        return {
            "task": "classification",
            "class_shares": {str(k): float(v) for k, v in shares.items()},
            "positive_class": use_case.positive_class,
            "positive_share": float(shares.get(use_case.positive_class, 0.0)),
        }
    return {"task": "regression", **describe_column(target, "numeric", iqr_factor=iqr_factor)}


def time_view(frame: pd.DataFrame, use_case: UseCase) -> dict[str, Any]:
    """The target over event time: by hour of day and weekday where rows carry a clock time, and by month."""
    if EVENT_TIME not in frame.columns:
        return {}
    when = pd.to_datetime(frame[EVENT_TIME])
    target = frame[use_case.target]
    y = (
        (target.astype(str) == use_case.positive_class).astype(float)
        if use_case.task == "classification"
        else (pd.to_numeric(target))
    )
    views: dict[str, Any] = {
        "measure": "positive rate" if use_case.task == "classification" else "mean target",
        "from": str(when.min()),
        "until": str(when.max()),
    }
    groups = {"by_month": when.dt.strftime("%Y-%m")}
    if use_case.event_time.kind != "arrival":  # arrival times say when a batch came, not when rows happened
        groups = {"by_hour": when.dt.hour, "by_weekday": when.dt.day_name().str[:3], **groups}
    for name, key in groups.items():
        grouped = y.groupby(key)
        views[name] = {
            str(k): {"mean": float(v), "rows": int(n)}
            for (k, v), n in zip(grouped.mean().items(), grouped.size(), strict=True)
        }
    return views


def duplicates(frame: pd.DataFrame, use_case: UseCase) -> dict[str, Any]:
    columns = [c for c in use_case.columns if c in frame.columns]
    out: dict[str, Any] = {"exact_rows": int(frame.duplicated(subset=columns).sum()), "key": use_case.eda.key}
    out["key_rows"] = int(frame.duplicated(subset=use_case.eda.key).sum()) if use_case.eda.key else None
    return out


def warnings_for(summary: dict[str, Any], use_case: UseCase) -> list[Warning]:
    """What a careful analyst would raise before modelling, most serious first."""
    cfg, found = use_case.eda, []
    target = use_case.target
    for column, against in summary["target_vs_features"].items():
        association = against.get("association") or {}
        strength = association.get("value")
        if strength is not None and strength >= cfg.leakage_threshold:
            is_feature = column in use_case.features
            found.append(
                Warning(
                    "leakage",
                    "error" if is_feature else "info",
                    [column],
                    f"'{column}' nearly determines '{target}' ({association['measure']} {strength:.3f}): "
                    + (
                        "a model would learn the answer from it; it must not be a feature"
                        if is_feature
                        else "rightly not a feature"
                    ),
                )
            )
    pearson = summary["correlations"]["pearson"]
    features = [f for f in use_case.features if f in pearson]
    for i, a in enumerate(features):
        for b in features[i + 1 :]:
            r = pearson[a].get(b)
            if r is not None and abs(r) >= cfg.redundancy_threshold:
                found.append(
                    Warning("redundant", "warning", [a, b], f"'{a}' and '{b}' restate each other (Pearson {r:.3f})")
                )
    for column, stats in summary["columns"].items():
        if stats["distinct"] <= 1:
            found.append(Warning("constant", "warning", [column], f"'{column}' has a single value: it carries nothing"))
        if stats["missing_share"] >= cfg.sparse_threshold:
            found.append(
                Warning("almost_empty", "warning", [column], f"'{column}' is {stats['missing_share']:.0%} missing")
            )
        skew = stats.get("skew")
        if skew is not None and abs(skew) >= cfg.skew_threshold and stats["distinct"] > 2:
            found.append(
                Warning("skew", "info", [column], f"'{column}' is heavily skewed ({skew:.2f}): consider a log scale")
            )
        outliers = stats.get("outliers")
        if outliers and outliers["share"] >= 0.05:
            found.append(
                Warning(
                    "outliers",
                    "info",
                    [column],
                    f"{outliers['share']:.1%} of '{column}' lies outside {outliers['rule']} "
                    f"[{outliers['low']:.4g}, {outliers['high']:.4g}]",
                )
            )
    target_stats = summary["target"]
    if target_stats["task"] == "classification":
        minority = min(target_stats["class_shares"].values())
        if minority < cfg.imbalance_threshold:
            found.append(
                Warning(
                    "imbalance",
                    "warning",
                    [target],
                    f"the minority class is {minority:.1%} of rows: judge the model by precision-recall, "
                    "not accuracy, and choose its decision threshold on purpose",
                )
            )
    dup = summary["duplicates"]
    if dup["exact_rows"] or dup.get("key_rows"):
        found.append(
            Warning(
                "duplicates",
                "warning",
                dup["key"],
                f"{dup['exact_rows']} exact duplicate rows"
                + (f", {dup['key_rows']} rows repeat the key {dup['key']}" if dup.get("key_rows") is not None else ""),
            )
        )
    order = {"error": 0, "warning": 1, "info": 2}
    return sorted(found, key=lambda w: order[w.severity])


def profile(frame: pd.DataFrame, use_case: UseCase, *, data_version: str) -> dict[str, Any]:
    """The exploratory summary of ``frame`` (one dataset version of ``use_case``), JSON-able."""
    if frame.empty:
        raise ValueError(f"no rows to analyse for '{use_case.name}' (data version {data_version})")
    missing = [c for c in [*use_case.features, use_case.target] if c not in frame.columns]
    if missing:
        raise ValueError(f"the data lacks columns the use case needs: {missing}")
    columns = [c for c in use_case.columns if c in frame.columns]
    kinds = {c: column_kind(frame, c, use_case) for c in columns}
    iqr = use_case.eda.iqr_factor
    summary: dict[str, Any] = {
        "use_case": use_case.name,
        "task": use_case.task,
        "data_version": data_version,
        "rows": len(frame),
        "columns": {
            c: {**describe_column(frame[c], kinds[c], iqr_factor=iqr), "role": _role(c, use_case)} for c in columns
        },
        "duplicates": duplicates(frame, use_case),
        "correlations": correlations(
            frame,
            [c for c in columns if kinds[c] == "numeric"],
            [c for c in columns if kinds[c] == "categorical" and c != use_case.target],
        ),
        "target": describe_target(frame, use_case, iqr_factor=iqr),
        "target_vs_features": target_against(frame, use_case, kinds),
        "time": time_view(frame, use_case),
    }
    summary["warnings"] = [asdict(w) for w in warnings_for(summary, use_case)]
    return summary


def numeric_values(frame: pd.DataFrame, column: str) -> np.ndarray:
    """A column as floats without missing values (for plots)."""
    return pd.to_numeric(frame[column], errors="coerce").dropna().to_numpy(dtype=float)
