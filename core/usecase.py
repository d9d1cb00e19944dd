"""Declarative use cases: one YAML file describes a dataset and how to learn from it.

Everything dataset-specific lives in the YAML, so adding a tabular dataset needs
one new file and no code. A malformed file fails with a message that names the
offending field (``schema.columns.temp.min: Input should be a valid number``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

Task = Literal["regression", "classification"]

# Name of the event-time column every curated dataset carries, however it was derived.
EVENT_TIME_COLUMN = "event_time"

# Direction of every metric the loop knows; promotion needs to know which way is better.
METRIC_DIRECTION: dict[str, Literal["lower", "higher"]] = {
    "rmse": "lower",
    "mae": "lower",
    "r2": "higher",
    "precision": "higher",
    "recall": "higher",
    "f1": "higher",
    "roc_auc": "higher",
    "log_loss": "lower",
    "accuracy": "higher",
    "pr_auc": "higher",
    "brier": "lower",
}
TASK_METRICS: dict[str, set[str]] = {
    "regression": {"rmse", "mae", "r2"},
    "classification": {"precision", "recall", "f1", "roc_auc", "pr_auc", "brier", "log_loss", "accuracy"},
}
ALGORITHMS: dict[str, set[str]] = {
    "regression": {"ridge", "random_forest", "hist_gradient_boosting"},
    "classification": {"logistic_regression", "random_forest", "hist_gradient_boosting"},
}


class UseCaseError(ValueError):
    """A use case could not be found or is malformed; the message names the field."""


DURATION_UNITS = {"W": 604_800.0, "D": 86_400.0, "h": 3_600.0, "min": 60.0, "s": 1.0, "ms": 0.001}


def duration_seconds(value: str) -> float:
    """A duration as the YAML writes it (``7D``, ``1h``, ``5min``, ``0.5s``) in seconds.

    Parsed without pandas: the serving process reads use cases too, and must not import it.
    """
    match = re.fullmatch(r"((?:[1-9]\d*|\d*\.\d*[1-9]\d*))(W|D|h|min|s|ms)", value)
    if match is None:
        raise ValueError(f"'{value}' is not a positive duration: a number and W, D, h, min, s or ms (7D, 1h)")
    return float(match.group(1)) * DURATION_UNITS[match.group(2)]


def _duration(value: str) -> str:
    duration_seconds(value)
    return value


Duration = Annotated[str, AfterValidator(_duration)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ColumnSpec(_Strict):
    type: Literal["int", "float", "category", "bool", "datetime"]
    nullable: bool = False
    min: float | None = None
    max: float | None = None
    categories: list[str] | None = None
    description: str = ""

    @model_validator(mode="after")
    def _consistent(self) -> ColumnSpec:
        if self.type == "category" and not self.categories:
            raise ValueError("a category column needs 'categories'")
        if self.type != "category" and self.categories:
            raise ValueError("'categories' is only allowed on category columns")
        if (self.min is not None or self.max is not None) and self.type not in ("int", "float"):
            raise ValueError("'min'/'max' are only allowed on int and float columns")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min}) is greater than max ({self.max})")
        return self


class Schema(_Strict):
    columns: dict[str, ColumnSpec] = Field(min_length=1)


class Source(_Strict):
    uri: str = Field(description="Local path (relative to the YAML), http(s):// URL or s3:// URI.")
    format: Literal["csv"] = "csv"
    delimiter: str = Field(
        default=",", min_length=1, max_length=1, description="The field separator of the batch files."
    )


class EventTimeFromColumn(_Strict):
    """A column holds the time: a datetime, or text or a number read with ``format``.

    ``format`` (strftime codes) reads a year held as a number (``"%Y"``), a date in a fixed layout
    (``"%d/%m/%Y"``), ...; without it, only a datetime column, or text in ISO 8601, is read.
    ``step`` spreads rows that share a value in file order (weekly rows of one year, say: ``7D``
    puts the n-th row of a year n weeks after its start), so that time-aware splits can tell them
    apart; it assumes a file holds each period whole.
    """

    kind: Literal["column"]
    column: str
    format: str | None = Field(default=None, min_length=2, description="strftime layout of the column's values.")
    step: str | None = Field(
        default=None, description="Time between rows that share a value, in file order (a pandas offset: 7D, 1h)."
    )

    @property
    def source_columns(self) -> list[str]:
        """The columns the event time is derived from."""
        return [self.column]

    @field_validator("step")
    @classmethod
    def _a_duration(cls, value: str | None) -> str | None:
        if value is not None:
            duration_seconds(value)
        return value


class EventTimeFromDayOfYear(_Strict):
    """Hourly data that carries only day-of-year and hour (e.g. the bike-sharing set)."""

    kind: Literal["day_of_year_hour"]
    year: int
    day_column: str
    hour_column: str

    @property
    def source_columns(self) -> list[str]:
        return [self.day_column, self.hour_column]


class EventTimeFromArrival(_Strict):
    """No time in the data: a row's event time is its batch's arrival time."""

    kind: Literal["arrival"]

    @property
    def source_columns(self) -> list[str]:
        return []


EventTime = Annotated[EventTimeFromColumn | EventTimeFromDayOfYear | EventTimeFromArrival, Field(discriminator="kind")]


class Expectation(_Strict):
    """An extra Great Expectations expectation, in GX's own suite-file form."""

    type: str
    kwargs: dict[str, Any] = Field(default_factory=dict)


class Validation(_Strict):
    suite_name: str
    expectations: list[Expectation] = Field(default_factory=list)


class Promotion(_Strict):
    metric: str
    margin: float = Field(ge=0, lt=1, description="Relative improvement over the champion required.")


class Split(_Strict):
    validation_fraction: float = Field(default=0.15, gt=0, lt=0.5)
    test_fraction: float = Field(default=0.15, gt=0, lt=0.5)
    cv_folds: int = Field(default=3, ge=2, le=10)


class FeatureSelection(_Strict):
    """Which feature sets the training flow compares (models.selection), with the winner's algorithm and
    the same time-series CV: all features, all but each group, and the top-k by permutation importance."""

    compare: bool = Field(
        default=False, description="Compare at every training run (`mlops train --compare-feature-sets` asks once)."
    )
    top_k: int | None = Field(default=None, ge=1, description="Also try the k most important features.")


class Training(_Strict):
    split: Split = Split()
    feature_groups: dict[str, list[str]] = Field(
        default_factory=dict, description="name -> features that belong together (weather, calendar, ...)."
    )
    feature_selection: FeatureSelection = FeatureSelection()
    class_weight: Literal["balanced"] | None = Field(
        default=None,
        description="Classification: 'balanced' weighs each class by the inverse of its share in the fit.",
    )
    candidates: dict[str, dict[str, list[Any]]] = Field(min_length=1)
    cyclical: dict[str, float] = Field(default_factory=dict, description="feature -> period (sin/cos encoding)")
    random_state: int = 42
    tuning_rows: int | None = Field(
        default=100_000,
        ge=1_000,
        description="Model selection (time-series CV of every candidate) uses at most the newest N training "
        "rows; the winner is then refitted on the whole window. None: tune on everything.",
    )


DriftMethod = Literal["wasserstein", "ks", "psi", "kl_div", "jensenshannon", "chisquare", "z", "hellinger"]


class Monitoring(_Strict):
    drift_share: float = Field(gt=0, le=1, description="Share of drifted features that means 'drift'.")
    num_method: DriftMethod | None = Field(default=None, description="Drift test for numeric features.")
    num_threshold: float | None = Field(default=None, gt=0, description="Its threshold (distance, or p-value).")
    cat_method: DriftMethod | None = Field(default=None, description="Drift test for categorical features.")
    cat_threshold: float | None = Field(default=None, gt=0)
    min_rows: int = Field(default=50, ge=1)
    reference_rows: int = Field(default=5000, ge=100)


class Deployment(_Strict):
    """How a challenger reaches production. ``config`` is the service's rollout configuration
    (steps, checks, intervals); the service validates it and answers 422 naming a bad field."""

    strategy: Literal["canary", "blue-green", "shadow", "ab"] = "canary"
    config: dict[str, Any] = Field(default_factory=dict)
    demo_config: dict[str, Any] = Field(default_factory=dict, description="Overrides for `mlops demo` (faster).")


class Decision(_Strict):
    """How a classifier's decision threshold is chosen on the validation window (models.threshold).

    One rule: the two costs (the threshold that costs least), a target recall (the highest
    threshold that reaches it), or the best F1.
    """

    cost_false_negative: float | None = Field(default=None, ge=0, description="Cost of a missed positive.")
    cost_false_positive: float | None = Field(default=None, ge=0, description="Cost of a false alarm.")
    target_recall: float | None = Field(default=None, gt=0, le=1, description="Share of positives to catch.")
    best_f1: bool = Field(default=False, description="The threshold with the best F1.")

    @model_validator(mode="after")
    def _one_rule(self) -> Decision:
        costs = (self.cost_false_negative, self.cost_false_positive)
        if (costs[0] is None) != (costs[1] is None):
            raise ValueError("give both cost_false_negative and cost_false_positive, or neither")
        if costs[0] is not None and costs[0] == costs[1] == 0:
            raise ValueError("the two costs cannot both be 0")
        rules = [costs[0] is not None, self.target_recall is not None, self.best_f1]
        if sum(rules) != 1:
            raise ValueError("give exactly one rule: the two costs, target_recall, or best_f1: true")
        return self

    def describe(self) -> str:
        if self.cost_false_negative is not None:
            return (
                f"least cost: {self.cost_false_negative:g} per missed positive, "
                f"{self.cost_false_positive:g} per false alarm"
            )
        if self.target_recall is not None:
            return f"highest threshold with recall >= {self.target_recall:g}"
        return "best F1"


class Deduplication(_Strict):
    """What makes two rows the same fact, and what ingestion does with a row whose fact is already curated."""

    key: list[str] = Field(
        min_length=1, description="Columns that identify a row (schema columns, or event_time once derived)."
    )
    on_duplicate: Literal["quarantine"] = Field(
        default="quarantine",
        description="quarantine: a row whose key is curated already, or came earlier in its batch, is "
        "quarantined with a pointer to the batch that holds it.",
    )


class Calibration(_Strict):
    """Whether a classifier's probabilities are recalibrated over time (models.calibration), and how."""

    methods: list[Literal["sigmoid", "isotonic"]] = Field(
        default_factory=lambda: ["sigmoid", "isotonic"], min_length=1, description="Maps to try."
    )
    min_positives: int = Field(
        default=30, ge=2, description="Fewer positives than this among the out-of-time predictions: no map."
    )
    min_gain: float = Field(
        default=0.01, ge=0, lt=1, description="Relative Brier score improvement a map must bring to be kept."
    )


class Fairness(_Strict):
    """Groups the model must treat alike (models.fairness): per version, a promotion gate, monitored live."""

    groups: list[str] = Field(
        min_length=1, description="Columns that split rows into groups: sensitive attributes or slices."
    )
    max_gap: float = Field(
        gt=0,
        description="Largest gap allowed between groups: the equalized-odds difference (classification) "
        "or the RMSE spread relative to the overall RMSE (regression).",
    )
    margin: float | None = Field(
        default=0.02,
        ge=0,
        description="How much a challenger may widen the champion's gap; null: only max_gap is checked.",
    )


class Card(_Strict):
    """What every model card of the use case says about its purpose (models.card)."""

    intended_use: str = Field(default="", description="Who uses the predictions, and for what.")
    out_of_scope: str = Field(default="", description="What the model must not be used for.")


class Eda(_Strict):
    """How the exploratory analysis (analysis.eda) judges a dataset version; the defaults fit most tables."""

    key: list[str] = Field(default_factory=list, description="Columns that identify a row: repeats are duplicates.")
    iqr_factor: float = Field(default=1.5, gt=0, description="Outliers: beyond this many IQRs outside the quartiles.")
    leakage_threshold: float = Field(
        default=0.95, gt=0, le=1, description="Association with the target (0-1) at which a column leaks it."
    )
    redundancy_threshold: float = Field(
        default=0.95, gt=0, le=1, description="|Pearson| between two features at which one restates the other."
    )
    skew_threshold: float = Field(default=2.0, gt=0, description="|skewness| from which a column is heavily skewed.")
    imbalance_threshold: float = Field(
        default=0.1, gt=0, lt=0.5, description="Minority class share under which the classes are imbalanced."
    )
    sparse_threshold: float = Field(
        default=0.95, gt=0, le=1, description="Missing share from which a column is almost empty."
    )


class _Threshold(_Strict):
    above: float | None = Field(default=None, description="Fires while the signal is above this.")
    below: float | None = Field(default=None, description="Fires while the signal is below this.")
    description: str = ""

    @model_validator(mode="after")
    def _a_bound(self) -> _Threshold:
        if self.above is None and self.below is None:
            raise ValueError("give 'above', 'below' or both")
        if self.above is not None and self.below is not None and self.below > self.above:
            raise ValueError(f"below ({self.below}) is greater than above ({self.above}): the alert would always fire")
        return self


class ValueAlert(_Threshold):
    """An accepted event's value beyond a bound, per source: fires on the first such event and
    resolves on the source's next event within the bound."""

    kind: Literal["value"]
    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    column: str


class WindowAlert(_Threshold):
    """An aggregate of a column over the accepted events of the last ``window`` (arrival time)."""

    kind: Literal["window"]
    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    column: str
    aggregate: Literal["mean", "sum", "min", "max", "count"]
    window: Duration = Field(description="How far back the aggregate looks (a duration: 5min, 1h).")
    min_events: int = Field(default=1, ge=1, description="Fewer events in the window: no verdict.")


class QuarantineAlert(_Threshold):
    """The share of received events quarantined (malformed, wrong types, out of range, duplicates)
    over the last ``window``."""

    kind: Literal["quarantined_share"]
    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    window: Duration
    min_events: int = Field(default=20, ge=1, description="Fewer events in the window: no verdict.")

    @model_validator(mode="after")
    def _a_share(self) -> QuarantineAlert:
        for bound in (self.above, self.below):
            if bound is not None and not 0 <= bound <= 1:
                raise ValueError(f"a share is between 0 and 1, not {bound}")
        return self


class SilenceAlert(_Strict):
    """No event from a source for ``after``: fires once per silent source, resolves when it speaks."""

    kind: Literal["silence"]
    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    after: Duration
    sources: list[str] = Field(
        default_factory=list, description="Sources watched from the start; any source is watched once it spoke."
    )
    description: str = ""


StreamAlert = Annotated[ValueAlert | WindowAlert | QuarantineAlert | SilenceAlert, Field(discriminator="kind")]


class Stream(_Strict):
    """Events that arrive one by one (``mlops stream``): the same checks as a batch, plus alerts."""

    window_rows: int = Field(
        default=1_000,
        ge=1,
        description="Accepted events per monitoring window: each full window is checked for drift like a batch.",
    )
    alerts: list[StreamAlert] = Field(default_factory=list, description="Thresholds checked as events arrive.")

    @model_validator(mode="after")
    def _unique_names(self) -> Stream:
        names = [a.name for a in self.alerts]
        if repeated := sorted({n for n in names if names.count(n) > 1}):
            raise ValueError(f"alert names must be unique: {repeated} repeat")
        return self


Period = Literal["day", "week", "month", "quarter", "year"]


class Demo(_Strict):
    bootstrap_until: str = Field(description="Rows before this date bootstrap the first model.")
    period: Period = Field(
        default="month", description="What one batch drop of the demo holds: a day, week, month, quarter or year."
    )
    corrupt_batch: str | None = Field(
        default=None, description="The drop that arrives corrupted, by its label (a month: YYYY-MM)."
    )


class UseCase(_Strict):
    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    description: str = ""
    task: Task
    model_name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    source: Source
    schema_: Schema = Field(alias="schema")
    target: str
    positive_class: str | None = None
    features: list[str] = Field(min_length=1)
    event_time: EventTime
    metrics: list[str] = Field(min_length=1)
    promotion: Promotion
    validation: Validation
    training: Training
    monitoring: Monitoring
    deployment: Deployment = Deployment()
    eda: Eda = Eda()
    fairness: Fairness | None = None
    card: Card = Card()
    decision: Decision | None = Field(
        default=None, description="Classification: how the decision threshold is chosen (default: 0.5)."
    )
    deduplication: Deduplication | None = Field(
        default=None, description="Rows re-sent in another batch are quarantined, not curated twice."
    )
    calibration: Calibration | None = Field(
        default=None, description="Classification: recalibrate probabilities where it helps (default: never)."
    )
    demo: Demo | None = None
    stream: Stream = Stream()
    base_dir: Path = Field(default=Path(), exclude=True)

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="after")
    def _cross_checks(self) -> UseCase:
        columns = self.schema_.columns
        unknown = [f for f in self.features if f not in columns]
        if unknown:
            raise ValueError(f"features {unknown} are not in schema.columns")
        if self.target not in columns:
            raise ValueError(f"target '{self.target}' is not in schema.columns")
        if self.target in self.features:
            raise ValueError(f"target '{self.target}' must not be a feature")
        for metric in [*self.metrics, self.promotion.metric]:
            if metric not in TASK_METRICS[self.task]:
                raise ValueError(
                    f"metric '{metric}' does not fit task '{self.task}' ({sorted(TASK_METRICS[self.task])})"
                )
        if self.promotion.metric not in self.metrics:
            raise ValueError(f"promotion.metric '{self.promotion.metric}' must be one of metrics")
        bad_algos = set(self.training.candidates) - ALGORITHMS[self.task]
        if bad_algos:
            raise ValueError(
                f"unknown algorithms {sorted(bad_algos)} for {self.task} ({sorted(ALGORITHMS[self.task])})"
            )
        for group, members in self.training.feature_groups.items():
            strangers = [m for m in members if m not in self.features]
            if strangers or not members:
                raise ValueError(f"training.feature_groups.{group}: {strangers or 'no members'} are not features")
        if self.decision is not None and self.task != "classification":
            raise ValueError("decision (a threshold rule) applies to classification only")
        if self.calibration is not None and self.task != "classification":
            raise ValueError("calibration (of probabilities) applies to classification only")
        if self.training.class_weight is not None and self.task != "classification":
            raise ValueError("training.class_weight applies to classification only")
        top_k = self.training.feature_selection.top_k
        if top_k is not None and top_k >= len(self.features):
            raise ValueError(f"training.feature_selection.top_k must be below the {len(self.features)} features")
        if self.fairness is not None:
            unknown_groups = [g for g in self.fairness.groups if g not in columns]
            if unknown_groups:
                raise ValueError(f"fairness.groups {unknown_groups} are not in schema.columns")
        if self.deduplication is not None:
            strangers = [c for c in self.deduplication.key if c not in columns and c != EVENT_TIME_COLUMN]
            if strangers:
                raise ValueError(f"deduplication.key {strangers} are not in schema.columns (nor {EVENT_TIME_COLUMN})")
        for i, alert in enumerate(self.stream.alerts):
            column = getattr(alert, "column", None)
            if column is None:
                continue
            if column not in columns:
                raise ValueError(f"stream.alerts.{i} ({alert.name}): column '{column}' is not in schema.columns")
            if columns[column].type not in ("int", "float", "bool") and getattr(alert, "aggregate", None) != "count":
                raise ValueError(
                    f"stream.alerts.{i} ({alert.name}): '{column}' is a {columns[column].type} column; "
                    "thresholds need a number (or aggregate: count)"
                )
        unknown_key = [c for c in self.eda.key if c not in columns]
        if unknown_key:
            raise ValueError(f"eda.key {unknown_key} are not in schema.columns")
        for feature in self.training.cyclical:
            if feature not in self.features:
                raise ValueError(f"training.cyclical feature '{feature}' is not a feature")
        if self.task == "classification":
            spec = columns[self.target]
            if spec.type != "category" or not spec.categories or len(spec.categories) != 2:
                raise ValueError("a classification target must be a category column with exactly two categories")
            if self.positive_class not in spec.categories:
                raise ValueError(f"positive_class must be one of {spec.categories}")
        et = self.event_time
        fields = {"column": ["column"], "day_of_year_hour": ["day_column", "hour_column"], "arrival": []}[et.kind]
        for attr, column in zip(fields, et.source_columns, strict=True):
            if column not in columns:
                raise ValueError(f"event_time.{attr} '{column}' is not in schema.columns")
        numeric = isinstance(et, EventTimeFromColumn) and columns[et.column].type in ("int", "float", "bool")
        if numeric and et.format is None:
            raise ValueError(
                f"event_time.format is needed: '{et.column}' is a {columns[et.column].type} column, and a "
                "number read as a time counts nanoseconds from 1970 (a year: format: '%Y')"
            )
        # What the model cannot take is refused here, not dropped from the model later.
        unusable = [f for f in self.features if columns[f].type == "datetime"]
        if unusable:
            raise ValueError(
                f"features {unusable} are datetime columns, which no model here takes: derive numbers or "
                "categories from them (hour, weekday) as columns of their own, or make one the event_time"
            )
        return self

    # -- derived views ---------------------------------------------------
    @property
    def columns(self) -> list[str]:
        return list(self.schema_.columns)

    @property
    def higher_is_better(self) -> bool:
        return METRIC_DIRECTION[self.promotion.metric] == "higher"

    @property
    def unbounded_integers(self) -> list[str]:
        """Integer columns without a declared min or max: any integer a float64 holds exactly passes."""
        return [n for n, c in self.schema_.columns.items() if c.type == "int" and (c.min is None or c.max is None)]

    @property
    def numeric_features(self) -> list[str]:
        return [f for f in self.features if self.schema_.columns[f].type in ("int", "float", "bool")]

    @property
    def categorical_features(self) -> list[str]:
        return [f for f in self.features if self.schema_.columns[f].type == "category"]

    def resolve_source(self) -> str:
        """The source URI, with a relative local path taken relative to the YAML file."""
        uri = self.source.uri
        if "://" in uri or Path(uri).is_absolute():
            return uri
        return str((self.base_dir / uri).resolve())


def _format_errors(err: ValidationError) -> str:
    lines = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"] if p not in ("function-after",)) or "(top level)"
        lines.append(f"  {loc}: {e['msg']}")
    return "\n".join(lines)


def parse_use_case(data: Any, *, origin: str, base_dir: Path) -> UseCase:
    if not isinstance(data, dict):
        raise UseCaseError(f"{origin}: expected a mapping at the top level, got {type(data).__name__}")
    try:
        return UseCase.model_validate({**data, "base_dir": base_dir})
    except ValidationError as err:
        raise UseCaseError(f"{origin} is malformed:\n{_format_errors(err)}") from None


def yaml_schema() -> dict[str, Any]:
    """The JSON Schema of a use-case YAML, generated from the model that loads it.

    Shipped as ``usecases/usecase.schema.json`` (``mlops usecase schema``), so that editors
    validate a YAML as it is typed. Cross-field rules (a feature must be a column, say) are the
    loader's: a schema-valid file may still be refused, with a message naming the field.
    """
    schema = UseCase.model_json_schema(by_alias=True)
    schema["properties"].pop("base_dir", None)  # where the file was found: set by the loader, never written
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        **schema,
        "title": "mlops-loop use case",
    }


def load_use_case(name_or_path: str | Path, *, usecases_dir: Path) -> UseCase:
    """Load a use case by name (``bike_demand``) from ``usecases_dir``, or from a YAML path."""
    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml"):
        path = usecases_dir / f"{name_or_path}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in usecases_dir.glob("*.yaml")) if usecases_dir.is_dir() else []
        raise UseCaseError(
            f"unknown use case '{name_or_path}' (no {path}); known use cases: {known}. "
            "Set MLOPS_USECASES_DIR to the folder of use-case YAML files."
        )
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise UseCaseError(f"{path} is not valid YAML: {err}") from None
    return parse_use_case(data, origin=str(path), base_dir=path.parent)
