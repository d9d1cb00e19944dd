"""A model card per registered version: what it is for, what it was trained on, how good and how fair
it is (with the uncertainty of a finite test window), how it decides, and where it falls short.

Pure: ``card_markdown`` and ``card_html`` render one card, a plain dict that the training flow
assembles from its run (``pipelines.train.model_card``). Both go on the training run in MLflow
(``card/``) and beside the state directory's reports; ``mlops model-card`` prints one.
"""

from __future__ import annotations

import html
from typing import Any


def _number(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _sections(card: dict[str, Any]) -> list[tuple[str, list[str] | list[list[str]], list[str] | None]]:
    """(title, lines or table rows, table header or None), in the card's order."""
    data = card["data"]
    windows = data["windows"]
    sections: list[tuple[str, Any, Any]] = [
        (
            "Intended use",
            [
                card["intended_use"],
                f"Out of scope: {card['out_of_scope']}",
                f"Task: {card['task']} of `{card['target']}`.",
            ],
            None,
        ),
        (
            "Data",
            [
                f"Data version `{data['data_version']}`, {data['rows']} rows; exploratory analysis: "
                f"`{data['eda_artifact']}` on the run ({data['eda_report']}).",
                f"Training window {windows['train_start']} to {windows['train_end']} ({windows['train_rows']} rows), "
                f"validation to {windows['validation_end']} ({windows['validation_rows']}), "
                f"test {windows['test_start']} to {windows['test_end']} ({windows['test_rows']}).",
            ],
            None,
        ),
        (
            "Model",
            [f"{card['algorithm']} with {', '.join(f'{k}={v}' for k, v in card['params'].items()) or 'defaults'}."],
            None,
        ),
        (
            f"Metrics on the test window (95 % bootstrap intervals, {card['resamples']} resamples)",
            [
                [name, _number(m["value"]), f"{_number(m['low'])} to {_number(m['high'])}"]
                for name, m in card["metrics"].items()
            ],
            ["metric", "value", "interval"],
        ),
    ]
    threshold = card.get("threshold")
    if threshold:
        sections.append(
            (
                "Decision threshold",
                [
                    f"Positive when the probability is at least {threshold['threshold']:.4g} "
                    f"({threshold['rule']}); on the validation window: precision "
                    f"{threshold['precision']:.3f}, recall {threshold['recall']:.3f}."
                ],
                None,
            )
        )
    calibration = card.get("calibration")
    if calibration:
        tried = ", ".join(f"{method} {value:.4f}" for method, value in calibration["brier"].items())
        sections.append(
            (
                "Calibration of the probabilities",
                [
                    f"Served: {calibration['map']}. Why: {calibration['reason']}.",
                    f"Brier score on the validation window ({calibration['judged_rows']} rows) of maps fitted on "
                    f"{calibration['fitted_rows']} out-of-time predictions of the training window: {tried} "
                    "(`none`: the raw probabilities).",
                ],
                None,
            )
        )
    fairness = card.get("fairness") or []
    if fairness:
        rows = [
            [report["attribute"], group, *(_number(v) for v in values.values())]
            for report in fairness
            for group, values in report["by_group"].items()
        ]
        header = ["group column", "group", *next(iter(fairness[0]["by_group"].values())).keys()]
        sections.append(("Fairness: per group", rows, header))
        gaps = [
            f"{r['attribute']}: " + ", ".join(f"{k.replace('_', ' ')} {v:.3f}" for k, v in r["gaps"].items())
            for r in fairness
        ]
        sections.append(("Fairness: gaps", [*gaps, card["fairness_verdict"]], None))
    sections += [
        (
            "Most important features (permutation importance on the test window)",
            [[name, _number(value)] for name, value in card["top_features"]],
            ["feature", "importance"],
        ),
        ("Limitations", card["limitations"] or ["None recorded."], None),
        (
            "Promotion",
            [f"Verdict: {card['promotion']['verdict']}. {card['promotion']['reason']}"],
            None,
        ),
    ]
    return sections


def card_markdown(card: dict[str, Any]) -> str:
    out = [
        f"# Model card: {card['model_name']} v{card['version']}",
        "",
        f"{card['description']} Use case `{card['use_case']}`; registered {card['created']} (run `{card['run_id']}`).",
    ]
    for title, body, header in _sections(card):
        out += ["", f"## {title}", ""]
        if header is None:
            out += [f"- {line}" for line in body]
        else:
            out += [f"| {' | '.join(header)} |", f"|{'---|' * len(header)}", *(f"| {' | '.join(r)} |" for r in body)]
    return "\n".join(out) + "\n"


def card_html(card: dict[str, Any]) -> str:
    e = html.escape
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>Model card: {e(card['model_name'])} v{e(str(card['version']))}</title>",
        "<style>body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;color:#222}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.2rem .5rem}th{background:#f4f4f4}</style>",
        f"</head><body><h1>Model card: {e(card['model_name'])} v{e(str(card['version']))}</h1>",
        f"<p>{e(card['description'])} Use case <code>{e(card['use_case'])}</code>; "
        f"registered {e(card['created'])}.</p>",
    ]
    for title, body, header in _sections(card):
        parts.append(f"<h2>{e(title)}</h2>")
        if header is None:
            parts.append("<ul>" + "".join(f"<li>{e(line)}</li>" for line in body) + "</ul>")
        else:
            head = "".join(f"<th>{e(h)}</th>" for h in header)
            rows = "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in r) + "</tr>" for r in body)
            parts.append(f"<table><tr>{head}</tr>{rows}</table>")
    return "".join(parts) + "</body></html>\n"
