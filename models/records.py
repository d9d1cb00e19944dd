"""Records as the model reads them: one typed NumPy column per feature. NumPy only.

The serving process builds its model inputs here; ``models.frames`` wraps the same columns in
a pandas frame for the pipelines. One place decides the dtypes, so training and serving agree.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np

from core.usecase import UseCase

Kind = Literal["number", "category"]


def input_kinds(use_case: UseCase) -> dict[str, Kind]:
    """Each feature of the use case, in order, as the model reads it: a number or a category."""
    numeric = set(use_case.numeric_features)
    return {name: "number" if name in numeric else "category" for name in use_case.features}


def record_columns(records: Sequence[Mapping[str, Any]], kinds: Mapping[str, Kind]) -> dict[str, np.ndarray]:
    """The named columns of ``records``: numbers as float64 (a missing value becomes NaN), categories as objects."""
    out: dict[str, np.ndarray] = {}
    for name, kind in kinds.items():
        values = [r.get(name) for r in records]
        out[name] = np.array(values, dtype=np.float64 if kind == "number" else object)
    return out


def label_problem(value: Any, use_case: UseCase) -> str | None:
    """Why a ground-truth label does not fit the use case's target; None when it does.

    A classifier's label is one of the target's categories, spelled exactly (``"up"`` is not ``"Up"``,
    and ``1`` is not a class): anything else would be scored silently as the negative class. A
    regressor's is a finite number within the target's declared range.
    """
    spec = use_case.schema_.columns[use_case.target]
    if use_case.task == "classification":
        if isinstance(value, str) and value in (spec.categories or []):
            return None
        return f"not one of the classes {spec.categories}"
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return "not a finite number"
    if (spec.min is not None and value < spec.min) or (spec.max is not None and value > spec.max):
        return f"outside the target's range [{spec.min}, {spec.max}]"
    if spec.type == "int" and value % 1:
        return "not a whole number"
    return None


def encode_labels(labels: Sequence[Any], use_case: UseCase) -> np.ndarray:
    """Ground-truth labels as they arrive through feedback, in the model's encoding (float64).

    A missing label, or one that does not fit the target (stored before labels were checked), is
    NaN: left out of what is scored, never counted as the negative class.
    """
    out = np.full(len(labels), np.nan)
    for i, value in enumerate(labels):
        if value is None or label_problem(value, use_case) is not None:
            continue
        out[i] = float(value == use_case.positive_class) if use_case.task == "classification" else float(value)
    return out
