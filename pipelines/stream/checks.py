"""The batch suite's expectations, evaluated per event.

One source of truth: the checks are read off ``build_suite(use_case)``, the same suite Great
Expectations runs on every batch, and each failure reads exactly as GX's does in quarantine
(``expect_column_values_to_be_between(temp, min=0.0, max=1.0)``). Great Expectations stays the
batch gate; starting a GX checkpoint per event would cost tens of milliseconds where the stream
has a fraction of one. A test runs both on the same hostile rows and compares them row by row.

An expectation type without a per-event form here is refused when the consumer starts, naming it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from core.usecase import UseCase
from pipelines.batches import ROW_NUMBER
from pipelines.validation import ValidationOutcome, build_suite, describe_expectation

Check = Callable[[pd.DataFrame, dict[str, Any]], np.ndarray]  # rows that fail, as a boolean mask


def _not_null(frame: pd.DataFrame, kw: dict[str, Any]) -> np.ndarray:
    return frame[kw["column"]].isna().to_numpy()


def _between(frame: pd.DataFrame, kw: dict[str, Any]) -> np.ndarray:
    values = pd.to_numeric(frame[kw["column"]], errors="coerce").astype("float64")
    low, high = kw.get("min_value"), kw.get("max_value")
    bad = pd.Series(False, index=frame.index)
    if low is not None:
        bad |= values <= low if kw.get("strict_min") else values < low
    if high is not None:
        bad |= values >= high if kw.get("strict_max") else values > high
    return (bad & values.notna()).to_numpy()  # a null is the null check's business, as in GX


def _in_set(frame: pd.DataFrame, kw: dict[str, Any]) -> np.ndarray:
    values = frame[kw["column"]]
    return (values.notna() & ~values.isin(kw["value_set"])).to_numpy()


def _a_greater_than_b(frame: pd.DataFrame, kw: dict[str, Any]) -> np.ndarray:
    a = pd.to_numeric(frame[kw["column_A"]], errors="coerce").astype("float64")
    b = pd.to_numeric(frame[kw["column_B"]], errors="coerce").astype("float64")
    ignore = kw.get("ignore_row_if", "both_values_are_missing")
    missing = (a.isna() & b.isna()) if ignore == "both_values_are_missing" else (a.isna() | b.isna())
    greater = (a >= b) if kw.get("or_equal") else (a > b)
    return (~missing & ~greater).to_numpy()


CHECKS: dict[str, Check] = {
    "expect_column_values_to_not_be_null": _not_null,
    "expect_column_values_to_be_between": _between,
    "expect_column_values_to_be_in_set": _in_set,
    "expect_column_pair_values_a_to_be_greater_than_b": _a_greater_than_b,
}


class UnsupportedExpectation(ValueError):
    """The suite holds an expectation that has no per-event form."""


def event_checks(use_case: UseCase) -> list[tuple[str, Check, dict[str, Any]]]:
    """The suite's expectations as (reason, check, kwargs); ``UnsupportedExpectation`` names one without a form."""
    checks = []
    for expectation in build_suite(use_case)["expectations"]:
        kind, kwargs = expectation["type"], dict(expectation["kwargs"])
        if kind not in CHECKS:
            raise UnsupportedExpectation(
                f"validation expectation '{kind}' has no per-event check, so `mlops stream consume` cannot "
                f"apply the batch suite to events; per-event forms exist for {sorted(CHECKS)}"
            )
        checks.append((describe_expectation(kind, kwargs), CHECKS[kind], kwargs))
    return checks


class EventValidator:
    """The batch validator's interface (``validate``) over the per-event checks, so that a micro-batch
    goes through the same triage as a batch chunk."""

    def __init__(self, use_case: UseCase) -> None:
        self._use_case = use_case
        self._checks = event_checks(use_case)

    def validate(self, frame: pd.DataFrame, use_case: UseCase, *, docs: bool = False) -> ValidationOutcome:
        if use_case is not self._use_case:
            self._use_case, self._checks = use_case, event_checks(use_case)
        failures: dict[int, list[str]] = {}
        rows = frame[ROW_NUMBER].to_numpy()
        for reason, check, kwargs in self._checks:
            for i in np.flatnonzero(check(frame, kwargs)):
                failures.setdefault(int(rows[i]), []).append(reason)
        return ValidationOutcome(failures, not failures, {"evaluated_expectations": len(self._checks)}, None)
