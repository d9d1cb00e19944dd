"""The EDA summary as one self-contained HTML page: the warnings first, then tables and plots.

Plots are drawn with matplotlib (Agg) and embedded as PNG data, so the page is one file that
opens anywhere: from the state directory, or as an MLflow artifact of the training run.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Callable
from typing import Any

import pandas as pd

from analysis.eda import column_kind, numeric_values
from core.usecase import UseCase

SAMPLE = 3000  # points in a scatter plot; the statistics use every row
STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:1200px;color:#222}
h1{font-size:1.5rem}h2{font-size:1.2rem;margin-top:2rem;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:.85rem}td,th{border:1px solid #ddd;padding:.25rem .5rem;text-align:right}
th{background:#f5f5f5}td.l,th.l{text-align:left}.error{background:#fde2e1}.warning{background:#fff4d6}
.info{background:#eef5ff}img{max-width:100%}.meta{color:#555}
"""


def _figure(draw: Callable[[Any], None], *, panels: int, columns: int = 4, height: float = 2.6) -> str:
    """A grid of ``panels`` axes drawn by ``draw(axes)``, as an <img> with embedded PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = max(1, min(columns, panels))
    rows = -(-panels // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(3.6 * columns, height * rows), squeeze=False)
    flat = list(axes.flat)
    draw(flat[:panels])
    for ax in flat[:panels]:
        if not ax.images:  # few ticks: drawing tick labels is most of a small plot's cost
            ax.locator_params(axis="x", nbins=4)
    for ax in flat[panels:]:
        ax.set_visible(False)
    fig.subplots_adjust(left=0.08, right=0.98, bottom=0.1, top=0.92, hspace=0.6, wspace=0.35)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80)
    plt.close(fig)
    return f'<img alt="plot" src="data:image/png;base64,{base64.b64encode(buffer.getvalue()).decode()}">'


def _target_values(frame: pd.DataFrame, use_case: UseCase) -> pd.Series:
    target = frame[use_case.target]
    if use_case.task == "classification":
        return (target.astype(str) == use_case.positive_class).astype(float)
    return pd.to_numeric(target, errors="coerce")


def distributions(frame: pd.DataFrame, use_case: UseCase, columns: list[str]) -> str:
    def draw(axes: list[Any]) -> None:
        for ax, column in zip(axes, columns, strict=True):
            if column_kind(frame, column, use_case) == "numeric":
                ax.hist(numeric_values(frame, column), bins=40, color="#4c72b0")
            else:
                shares = frame[column].astype(str).value_counts().head(12)
                ax.barh(shares.index[::-1], shares.to_numpy()[::-1], color="#55a868")
            ax.set_title(column, fontsize=9)
            ax.tick_params(labelsize=7)

    return _figure(draw, panels=len(columns))


def target_against_features(frame: pd.DataFrame, use_case: UseCase) -> str:
    y = _target_values(frame, use_case)
    sample = frame.sample(min(SAMPLE, len(frame)), random_state=0)
    features = use_case.features

    def draw(axes: list[Any]) -> None:
        for ax, column in zip(axes, features, strict=True):
            if column_kind(frame, column, use_case) == "categorical":
                rate = y.groupby(frame[column].astype(str)).mean().head(12)
                ax.barh(rate.index[::-1], rate.to_numpy()[::-1], color="#c44e52")
                ax.set_xlabel("positive rate" if use_case.task == "classification" else f"mean {use_case.target}")
            elif use_case.task == "classification":
                classes = frame[use_case.target].astype(str)
                for label, color in ((use_case.positive_class, "#c44e52"), (None, "#4c72b0")):
                    chosen = classes == label if label else classes != use_case.positive_class
                    values = pd.to_numeric(frame.loc[chosen, column], errors="coerce").dropna()
                    ax.hist(
                        values,
                        bins=40,
                        density=True,
                        alpha=0.5,
                        color=color,
                        label=label or f"not {use_case.positive_class}",
                    )
                ax.legend(fontsize=7)
            else:
                x = pd.to_numeric(sample[column], errors="coerce")
                ax.scatter(x, y.loc[sample.index], s=3, alpha=0.3, color="#4c72b0")
                ax.set_ylabel(use_case.target, fontsize=7)
            ax.set_title(column, fontsize=9)
            ax.tick_params(labelsize=7)

    return _figure(draw, panels=len(features))


def correlation_heatmap(summary: dict[str, Any]) -> str:
    matrix = summary["correlations"]["spearman"]
    names = list(matrix)
    if len(names) < 2:
        return "<p>Fewer than two numeric columns.</p>"

    def draw(axes: list[Any]) -> None:
        ax = axes[0]
        values = [[matrix[a][b] if matrix[a][b] is not None else 0.0 for b in names] for a in names]
        image = ax.imshow(values, cmap="coolwarm", vmin=-1, vmax=1)
        ax.set_xticks(range(len(names)), names, rotation=90, fontsize=7)
        ax.set_yticks(range(len(names)), names, fontsize=7)
        ax.figure.colorbar(image, ax=ax, shrink=0.8)

    return _figure(draw, panels=1, columns=1, height=5.5)


def time_plots(summary: dict[str, Any]) -> str:
    views = {k: v for k, v in summary["time"].items() if k.startswith("by_")}
    if not views:
        return "<p>No event time.</p>"
    measure = summary["time"]["measure"]

    def draw(axes: list[Any]) -> None:
        for ax, (name, view) in zip(axes, views.items(), strict=True):
            keys = list(view)
            ax.bar(range(len(keys)), [view[k]["mean"] for k in keys], color="#8172b2")
            ax.set_xticks(range(len(keys)), keys, rotation=90, fontsize=7)
            ax.set_title(f"{measure} {name.replace('_', ' ')}", fontsize=9)

    return _figure(draw, panels=len(views), columns=3, height=3)


def _number(value: Any, digits: int = 4) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return html.escape(str(value))


def _columns_table(summary: dict[str, Any]) -> str:
    head = (
        "<tr><th class=l>column</th><th class=l>role</th><th class=l>kind</th><th>missing</th><th>distinct</th>"
        "<th>min</th><th>median</th><th>max</th><th>mean</th><th>std</th><th>skew</th><th>outliers</th>"
        "<th class=l>top categories</th></tr>"
    )
    rows = []
    for name, c in summary["columns"].items():
        q = c.get("quantiles", {})
        outliers = c.get("outliers")
        top = ", ".join(f"{html.escape(k)} {v:.0%}" for k, v in list(c.get("shares", {}).items())[:4])
        flagged = "" if not outliers else f"{outliers['count']} ({outliers['share']:.1%})"
        rows.append(
            f"<tr><td class=l>{html.escape(name)}</td><td class=l>{c['role']}</td><td class=l>{c['kind']}</td>"
            f"<td>{c['missing_share']:.1%}</td><td>{c['distinct']}</td><td>{_number(q.get('min'))}</td>"
            f"<td>{_number(q.get('median'))}</td><td>{_number(q.get('max'))}</td><td>{_number(c.get('mean'))}</td>"
            f"<td>{_number(c.get('std'))}</td><td>{_number(c.get('skew'), 3)}</td>"
            f"<td>{flagged}</td>"
            f"<td class=l>{top}</td></tr>"
        )
    return f"<table>{head}{''.join(rows)}</table>"


def _warnings_table(summary: dict[str, Any]) -> str:
    if not summary["warnings"]:
        return "<p>Nothing to warn about.</p>"
    rows = "".join(
        f"<tr class={w['severity']}><td class=l>{w['severity']}</td><td class=l>{w['kind']}</td>"
        f"<td class=l>{html.escape(w['message'])}</td></tr>"
        for w in summary["warnings"]
    )
    return f"<table><tr><th class=l>severity</th><th class=l>kind</th><th class=l>finding</th></tr>{rows}</table>"


def _target_section(summary: dict[str, Any]) -> str:
    t = summary["target"]
    if t["task"] == "classification":
        shares = ", ".join(f"{html.escape(k)}: {v:.1%}" for k, v in t["class_shares"].items())
        return f"<p>Class balance: {shares} (positive class '{html.escape(str(t['positive_class']))}').</p>"
    q = t["quantiles"]
    return (
        f"<p>Mean {t['mean']:.4g}, std {_number(t['std'])}, median {q['median']:.4g}, "
        f"1st-99th percentile {q['p01']:.4g}-{q['p99']:.4g}, skew {_number(t['skew'], 3)}.</p>"
    )


def render(summary: dict[str, Any], frame: pd.DataFrame, use_case: UseCase) -> str:
    """The HTML page of ``summary``, with plots drawn from ``frame`` (the rows it summarises)."""
    columns = list(summary["columns"])
    dup = summary["duplicates"]
    key = f", {dup['key_rows']} repeat the key {', '.join(dup['key'])}" if dup["key_rows"] is not None else ""
    time_range = f"{summary['time']['from']} to {summary['time']['until']}" if summary["time"] else "no event time"
    strongest = sorted(
        (
            (v["association"]["value"], k, v["association"]["measure"])
            for k, v in summary["target_vs_features"].items()
            if v.get("association") and v["association"]["value"] is not None
        ),
        reverse=True,
    )[:5]
    return f"""<!doctype html><html><head><meta charset="utf-8">
<title>EDA: {html.escape(use_case.name)} {summary["data_version"]}</title><style>{STYLE}</style></head><body>
<h1>Exploratory analysis: {html.escape(use_case.name)}</h1>
<p class=meta>Data version {summary["data_version"]}: {summary["rows"]} rows, {len(columns)} columns, {time_range}.
Task: {use_case.task}, target '{html.escape(use_case.target)}'.</p>
<h2>Warnings</h2>{_warnings_table(summary)}
<h2>Columns</h2>{_columns_table(summary)}
<p>Duplicates: {dup["exact_rows"]} exact rows{key}.</p>
<h2>Distributions</h2>{distributions(frame, use_case, columns)}
<h2>The target</h2>{_target_section(summary)}
<p>Strongest associations with the target (0 none, 1 determines it):
{", ".join(f"{html.escape(k)} {v:.2f} ({m})" for v, k, m in strongest) or "none"}.</p>
<h2>The target against each feature</h2>{target_against_features(frame, use_case)}
<h2>Correlations (Spearman)</h2>{correlation_heatmap(summary)}
<h2>Over event time</h2>{time_plots(summary)}
</body></html>
"""
