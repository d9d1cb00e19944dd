"""An ensemble of models each fitted on its own chunk of the rows: how a model learns from more rows
than one process can hold (pipelines/outofcore.py fits each member on a Dask worker).

Averaging models fitted on disjoint chunks is bagging without the resampling: each member sees
``1/k`` of the data, the mean of their answers has less variance than any one of them, and no
process ever holds more than one chunk.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Self

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin, clone
from sklearn.utils import _safe_indexing
from sklearn.utils.validation import (
    check_array,
    check_consistent_length,
    check_is_fitted,
    column_or_1d,
    validate_data,
)


class PartitionEnsemble(RegressorMixin, BaseEstimator):
    """Regression: the mean prediction of ``members``, each fitted on its own chunk of the rows.

    Follows scikit-learn's estimator contract: ``fit(X, y)`` fits a clone of each member on
    consecutive chunks of ``X`` (one per member, in order) and keeps them in ``members_``. Members
    fitted elsewhere (each on a chunk no process but its worker held) are joined with
    ``from_fitted``.
    """

    def __init__(self, members: Sequence[Any] = ()) -> None:
        self.members = members

    def fit(self, X: Any, y: Any) -> Self:
        if len(self.members) == 0:
            raise ValueError("a PartitionEnsemble needs at least one member")
        if y is None:
            raise ValueError("PartitionEnsemble requires y to be passed, but the target y is None")
        X = _as_input(X)
        validate_data(self, X, skip_check_array=True)  # counts and names the columns
        y = column_or_1d(y, warn=True)
        check_consistent_length(X, y)
        if len(y) < len(self.members):
            raise ValueError(f"n_samples = {len(y)} rows cannot be split into {len(self.members)} chunks")
        chunks = np.array_split(np.arange(len(y)), len(self.members))
        self.members_ = [
            clone(m).fit(_safe_indexing(X, rows), y[rows]) for m, rows in zip(self.members, chunks, strict=True)
        ]
        return self

    @classmethod
    def from_fitted(cls, members: Sequence[Any]) -> PartitionEnsemble:
        """The ensemble of members already fitted, each on its own chunk."""
        if not members:
            raise ValueError("a PartitionEnsemble needs at least one member")
        for member in members:
            check_is_fitted(member)
        ensemble = cls(members=[clone(m) for m in members])
        ensemble.members_ = list(members)
        return ensemble

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True  # what the members take; they refuse what they cannot
        return tags

    def predict(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "members_")
        X = _as_input(X)
        if hasattr(self, "n_features_in_"):  # fitted here, not joined: the columns must be the ones it saw
            validate_data(self, X, skip_check_array=True, reset=False)
        return np.mean([member.predict(X) for member in self.members_], axis=0)


def _as_input(X: Any) -> Any:
    """A frame stays a frame (members that are pipelines need its columns); anything else is checked as 2-D."""
    return X if hasattr(X, "iloc") else check_array(X, accept_sparse=["csr", "csc"])
