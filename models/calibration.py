"""Calibration: probabilities that mean what they say, learned and judged over time.

ROC AUC asks only whether positives score above negatives. A cost threshold, a review queue
ordered by risk, or anyone who reads "0.3" as "three in ten" needs more: that of the rows given
about p, a share about p turns out positive. Forests pull their probabilities towards the middle,
boosting with few positives is often over-confident, class weights inflate them all; a monotone
map fitted on predictions the model did not train on puts them back, leaving the ranking as it is
(the sigmoid exactly; isotonic up to ties).

Time-aware, like the rest of training. The map is fitted on out-of-time predictions (each row
predicted by a model fitted only on rows before it: the time-series CV folds of the training
window), and judged on the newer validation window against the raw probabilities, by Brier
score. It is kept only where it helps; the kept map is then refitted on both windows.

The served form is a few numbers applied with NumPy alone (``Calibration.apply``), registered in
the version's ``decision.json`` beside the threshold: the service calibrates what its compiled
model or pipeline answers, and so does everything that loads the version from the registry.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal, get_args

import numpy as np

Method = Literal["sigmoid", "isotonic"]
METHODS: tuple[str, ...] = get_args(Method)
EPSILON = 1e-6  # probabilities are clipped this far from 0 and 1 before their log-odds are taken


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=np.float64), EPSILON, 1 - EPSILON)
    return np.log(p / (1 - p))


@dataclass(frozen=True)
class Calibration:
    """A monotone map from a model's probability to a calibrated one.

    ``sigmoid``: Platt scaling on the log-odds, ``1 / (1 + exp(-(slope * logit(p) + intercept)))``;
    two parameters, so it needs few positives, and it keeps the ranking exactly.
    ``isotonic``: a non-decreasing step function through ``knots`` (linear between them, flat
    beyond); any monotone shape, but it needs more data and ties rows within a step.
    """

    method: Method
    slope: float = 1.0
    intercept: float = 0.0
    knots_x: tuple[float, ...] = ()
    knots_y: tuple[float, ...] = ()

    def apply(self, p: np.ndarray) -> np.ndarray:
        if self.method == "sigmoid":
            return 1.0 / (1.0 + np.exp(-(self.slope * _logit(p) + self.intercept)))
        return np.interp(np.asarray(p, dtype=np.float64), self.knots_x, self.knots_y)

    def describe(self) -> str:
        if self.method == "sigmoid":
            return f"sigmoid on the log-odds (slope {self.slope:.3g}, intercept {self.intercept:.3g})"
        return f"isotonic ({len(self.knots_x)} knots)"

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}

    @classmethod
    def from_dict(cls, data: Any) -> Calibration:
        """The registered form back; a ValueError that says what is wrong with a damaged one."""
        if not isinstance(data, dict) or data.get("method") not in METHODS:
            raise ValueError(f"a calibration needs a method among {list(METHODS)}, got {data!r:.200}")
        try:
            calibration = cls(
                method=data["method"],
                slope=float(data.get("slope", 1.0)),
                intercept=float(data.get("intercept", 0.0)),
                knots_x=tuple(float(v) for v in data.get("knots_x", ())),
                knots_y=tuple(float(v) for v in data.get("knots_y", ())),
            )
        except (TypeError, ValueError) as err:
            raise ValueError(f"a calibration's numbers are not numbers: {err}") from err
        _check(calibration)
        return calibration


def _check(c: Calibration) -> None:
    if c.method == "sigmoid":
        # A negative slope would reverse the ranking; a zero one would answer the same for everyone.
        if not (np.isfinite(c.slope) and np.isfinite(c.intercept) and c.slope > 0):
            raise ValueError(f"a sigmoid calibration needs a finite positive slope, got {c.slope}, {c.intercept}")
        return
    x, y = np.asarray(c.knots_x), np.asarray(c.knots_y)
    if len(x) < 2 or len(x) != len(y):
        raise ValueError(f"an isotonic calibration needs two or more knots, x and y alike ({len(x)}, {len(y)})")
    if not (np.all(np.diff(x) > 0) and np.all(np.diff(y) >= 0) and y.min() >= 0 and y.max() <= 1):
        raise ValueError("an isotonic calibration's knots must rise in x, not fall in y, and stay within [0, 1]")


def fit_calibration(y_true: np.ndarray, y_score: np.ndarray, method: Method) -> Calibration:
    """The map of ``method`` fitted on these labels (1 = positive) and probabilities."""
    y = np.asarray(y_true, dtype=np.int64)
    if len(np.unique(y)) != 2:
        raise ValueError(f"calibration needs both classes among its {len(y)} rows")
    if method == "sigmoid":
        from sklearn.linear_model import LogisticRegression

        # Unpenalised: two parameters on thousands of rows need no shrinkage, and a penalty would
        # pull the slope towards 0 (everyone towards the base rate).
        fit = LogisticRegression(C=np.inf).fit(_logit(y_score)[:, None], y)
        calibration = Calibration("sigmoid", slope=float(fit.coef_[0, 0]), intercept=float(fit.intercept_[0]))
    elif method == "isotonic":
        from sklearn.isotonic import IsotonicRegression

        fit = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(np.asarray(y_score, float), y)
        calibration = Calibration(
            "isotonic", knots_x=tuple(map(float, fit.X_thresholds_)), knots_y=tuple(map(float, fit.y_thresholds_))
        )
    else:
        raise ValueError(f"unknown calibration method {method!r} ({list(METHODS)})")
    _check(calibration)  # a sigmoid whose slope came out <= 0: the scores rank backwards, nothing to calibrate
    return calibration


def brier(y_true: np.ndarray, p: np.ndarray) -> float:
    return float(np.mean((np.asarray(p, dtype=np.float64) - np.asarray(y_true, dtype=np.float64)) ** 2))


@dataclass(frozen=True)
class CalibrationChoice:
    """What was tried, what it scored on the judging window, and what is kept (None: the raw probabilities)."""

    calibration: Calibration | None
    brier: dict[str, float]  # on the judging window: "none" (raw) and each method tried
    fitted_rows: int
    judged_rows: int
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "method": self.calibration.method if self.calibration else "none",
            "brier": self.brier,
            "fitted_rows": self.fitted_rows,
            "judged_rows": self.judged_rows,
            "reason": self.reason,
        }


def choose_calibration(
    *,
    fit_y: np.ndarray,
    fit_score: np.ndarray,
    judge_y: np.ndarray,
    judge_score: np.ndarray,
    methods: tuple[Method, ...] | list[Method],
    min_positives: int,
    min_gain: float,
) -> CalibrationChoice:
    """Fit each method on the older predictions, judge them on the newer ones by Brier score.

    The best is kept when it lowers the raw Brier score by at least ``min_gain`` (relative), and
    is then refitted on both windows. With fewer than ``min_positives`` positives to fit on, a map
    would learn noise: nothing is tried.
    """
    fit_y, judge_y = np.asarray(fit_y, dtype=np.int64), np.asarray(judge_y, dtype=np.int64)
    scores = {"none": brier(judge_y, judge_score)}
    rows = {"fitted_rows": len(fit_y), "judged_rows": len(judge_y)}
    positives = int(fit_y.sum())
    if positives < min_positives or positives == len(fit_y):
        return CalibrationChoice(
            None, scores, **rows, reason=f"raw probabilities: {positives} positives to fit on, fewer than needed"
        )
    maps: dict[str, Calibration] = {}
    for method in methods:
        try:
            maps[method] = fit_calibration(fit_y, fit_score, method)
        except ValueError:
            continue  # a sigmoid that would reverse the ranking: not a candidate
        scores[method] = brier(judge_y, maps[method].apply(judge_score))
    best = min(maps, key=scores.__getitem__, default=None)
    if best is None or scores[best] >= scores["none"] * (1 - min_gain):
        return CalibrationChoice(
            None, scores, **rows, reason=f"raw probabilities: no map lowered the Brier score by {min_gain:.0%}"
        )
    refitted = fit_calibration(np.r_[fit_y, judge_y], np.r_[fit_score, judge_score], best)  # type: ignore[arg-type]
    gain = 1 - scores[best] / scores["none"]
    return CalibrationChoice(
        refitted,
        scores,
        **rows,
        reason=f"{best}: Brier {scores['none']:.4f} -> {scores[best]:.4f} ({gain:.0%} lower) on the newer window",
    )


class CalibratedClassifier:
    """A fitted classifier whose positive-class probability passes through a calibration.

    The version as it answers, for code that scores a registered model in-process (the champion
    on a new window, monitoring, the demo): ``predict_proba`` as the classifier's, calibrated.
    """

    def __init__(self, classifier: Any, calibration: Calibration) -> None:
        self.classifier = classifier
        self.calibration = calibration

    def predict_proba(self, X: Any) -> np.ndarray:
        p = self.calibration.apply(np.asarray(self.classifier.predict_proba(X)[:, 1], dtype=np.float64))
        return np.column_stack([1 - p, p])


def with_calibration(classifier: Any, calibration: Calibration | None) -> Any:
    """The classifier as it answers: itself, or wrapped with its calibration."""
    return classifier if calibration is None else CalibratedClassifier(classifier, calibration)


def registered_calibration(decision: dict[str, Any]) -> Calibration | None:
    """The calibration in a version's registered ``decision.json``; None for one registered without."""
    data = decision.get("calibration")
    return None if data is None else Calibration.from_dict(data)
