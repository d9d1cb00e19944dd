"""Records as the model reads them: one typed NumPy column per feature. NumPy only.

The serving process builds its model inputs here; ``models.frames`` wraps the same columns in
a pandas frame for the pipelines. One place decides the dtypes, so training and serving agree.
"""

from __future__ import annotations

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


def encode_labels(labels: Sequence[Any], use_case: UseCase) -> np.ndarray:
    """Ground-truth labels as they arrive through feedback, in the model's encoding."""
    if use_case.task == "classification":
        return np.asarray([1 if str(v) == use_case.positive_class else 0 for v in labels], dtype=np.int64)
    return np.asarray(labels, dtype=np.float64)
