"""Feature pipeline built from a use case, saved inside the model so serving cannot skew."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.utils.validation import check_is_fitted, validate_data

from core.usecase import UseCase
from models.compiled import on_the_circle


class CyclicalEncoder(TransformerMixin, BaseEstimator):
    """Encode a periodic feature (hour of day, day of week) as sine and cosine.

    Hour 23 and hour 0 are neighbours; a linear model only sees that once the
    value is mapped onto the unit circle. Follows scikit-learn's estimator
    contract: parameters are only stored in ``__init__``, everything learnt is
    set in ``fit`` with a trailing underscore.
    """

    def __init__(self, period: float = 24.0) -> None:
        self.period = period

    def fit(self, X: Any, y: Any = None) -> CyclicalEncoder:
        if self.period <= 0:
            raise ValueError(f"period must be positive, got {self.period}")
        validate_data(self, X, reset=True, dtype=np.float64)
        return self

    def transform(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "n_features_in_")
        values = validate_data(self, X, reset=False, dtype=np.float64)
        return on_the_circle(values, self.period)

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        check_is_fitted(self, "n_features_in_")
        names = (
            list(input_features)
            if input_features is not None
            else list(getattr(self, "feature_names_in_", [f"x{i}" for i in range(self.n_features_in_)]))
        )
        return np.asarray([f"{n}_sin" for n in names] + [f"{n}_cos" for n in names], dtype=object)


def build_preprocessor(use_case: UseCase) -> ColumnTransformer:
    """Numeric features imputed and scaled, categories one-hot encoded, periodic features on the circle.

    Unknown categories at serving time map to all zeros instead of failing: the
    request schema already rejects values outside the declared categories, so
    this only matters for categories the training window never saw.
    """
    numeric = Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())])
    categorical = Pipeline(
        [
            ("impute", SimpleImputer(strategy="most_frequent")),
            ("onehot", OneHotEncoder(handle_unknown="ignore", sparse_output=False)),
        ]
    )
    transformers: list[tuple[str, Any, list[str]]] = []
    if use_case.numeric_features:
        transformers.append(("numeric", numeric, use_case.numeric_features))
    if use_case.categorical_features:
        transformers.append(("categorical", categorical, use_case.categorical_features))
    for feature, period in use_case.training.cyclical.items():
        transformers.append((f"cyclical_{feature}", CyclicalEncoder(period=period), [feature]))
    return ColumnTransformer(transformers, remainder="drop", verbose_feature_names_out=True)
