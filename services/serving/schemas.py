"""Request and response models; the record model is generated from the use case's schema."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal, NotRequired

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    StrictFloat,
    StrictInt,
    WithJsonSchema,
    create_model,
)
from pydantic_core import CoreSchema, core_schema
from typing_extensions import TypedDict

from core.usecase import ColumnSpec, UseCase


def _whole(value: float) -> int:
    if not value.is_integer():
        raise ValueError("not a whole number")
    return int(value)


@dataclass(frozen=True)
class _WholeNumber:
    """An integer field: a JSON integer, or a number with no fractional part (``21.0``), within bounds.

    JSON does not tell 21 from 21.0, and clients built on data frames or on the registered
    model's input example send integers as floats. Strings and booleans stay wrong types. A
    JSON integer matches the first branch without a Python call: the common case costs nothing.
    The bounds are checked by a second integer schema after the union, in pydantic's core: as
    ``Field(ge=..., le=...)`` on the union they ran as Python functions, two calls per value
    (on a 1,000-record request, more time than predicting it).
    """

    ge: int | None = None
    le: int | None = None

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        number = core_schema.union_schema(
            [
                core_schema.int_schema(strict=True),
                core_schema.no_info_after_validator_function(_whole, core_schema.float_schema(strict=True)),
            ],
            mode="left_to_right",  # an integer takes the first branch and stops: "smart" mode tries both
            custom_error_type="whole_number",
            custom_error_message="Input should be a whole number (21 or 21.0)",
        )
        if self.ge is None and self.le is None:
            return number
        return core_schema.chain_schema([number, core_schema.int_schema(ge=self.ge, le=self.le)])


def _field_type(spec: ColumnSpec) -> Any:
    """One feature's type and constraints; a nullable feature also accepts null."""
    # Bounds as Field(ge=..., le=...), except an integer's: checked inside its own schema (_WholeNumber).
    bounds = {k: v for k, v in (("ge", spec.min), ("le", spec.max)) if v is not None and spec.type != "int"}
    if spec.type == "int":
        # JSON Schema's "integer" admits 21.0 too, so the documented type is exactly what is accepted.
        limits = {k: int(v) for k, v in (("minimum", spec.min), ("maximum", spec.max)) if v is not None}
        whole = _WholeNumber(ge=limits.get("minimum"), le=limits.get("maximum"))
        annotation: Any = Annotated[int, whole, WithJsonSchema({"type": "integer", **limits})]
    elif spec.type == "bool":
        annotation = Literal[0, 1]
    elif spec.type == "float":
        # Strict: "0.5" (a string) or true is a wrong type, not a number; ints are fine as floats.
        annotation = StrictFloat
    elif spec.type == "category":
        annotation = Literal[tuple(spec.categories or ())]
    else:
        annotation = str
    if spec.nullable:
        annotation = annotation | None
    return Annotated[annotation, Field(description=spec.description or None, **bounds)]


_RECORD_CONFIG = ConfigDict(extra="forbid", allow_inf_nan=False)


def _record_name(use_case: UseCase) -> str:
    return "".join(part.title() for part in use_case.name.split("_")) + "Record"


def record_model(use_case: UseCase) -> type[BaseModel]:
    """A pydantic model of one prediction request record: the use case's features, nothing else."""
    columns = use_case.schema_.columns
    fields: dict[str, Any] = {
        name: (_field_type(columns[name]), None if columns[name].nullable else ...) for name in use_case.features
    }
    return create_model(
        _record_name(use_case),
        __config__=_RECORD_CONFIG,
        **fields,
    )


def record_dict(use_case: UseCase) -> type[dict[str, Any]]:
    """The same record as ``record_model``, validated into a plain dict (no model object per record).

    A nullable field may be left out, as with the model's ``None`` default; readers use ``.get``.
    """
    columns = use_case.schema_.columns
    fields = {
        name: NotRequired[_field_type(columns[name])] if columns[name].nullable else _field_type(columns[name])
        for name in use_case.features
    }
    record = TypedDict(_record_name(use_case) + "Dict", fields)  # type: ignore[misc]
    record.__pydantic_config__ = _RECORD_CONFIG  # type: ignore[attr-defined]
    return record


class Prediction(BaseModel):
    id: str = Field(description="Use it to send the ground truth to /feedback.")
    value: float = Field(description="Regression: the prediction. Classification: probability of the positive class.")
    label: str | None = Field(
        default=None,
        description="Classification: the positive class when the probability reaches the version's threshold.",
    )


class PredictResponse(BaseModel):
    request_id: str
    model_name: str
    model_version: str
    variant: str = Field(description="stable or candidate: which side of a rollout answered.")
    threshold: float | None = Field(
        default=None,
        description="Classification: the answering version's decision threshold, chosen on its validation "
        "window by the use case's rule (0.5 when it declares none). Regression: null.",
    )
    predictions: list[Prediction]


class Label(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(min_length=1, max_length=128, description="A prediction id returned by /predict.")
    label: StrictInt | StrictFloat | str


class FeedbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    labels: list[Label] = Field(min_length=1, max_length=100_000)


class LabelResult(BaseModel):
    id: str
    status: Literal["stored", "unknown", "invalid"] = Field(
        description="stored; unknown: no prediction has this id; invalid: the label does not fit the target."
    )
    problem: str | None = Field(default=None, description="Why an invalid label does not fit.")


class FeedbackResponse(BaseModel):
    accepted: int = Field(description="Labels stored.")
    unknown: int = Field(default=0, description="Ids no prediction has: nothing stored for them.")
    invalid: int = Field(default=0, description="Labels that do not fit the target: not stored.")
    results: list[LabelResult] = Field(
        default_factory=list, description="One answer per distinct id, in the order the ids first appear."
    )


class Explanation(BaseModel):
    prediction: float = Field(description="The model's output for the record (a classifier's probability).")
    contributions: dict[str, float] = Field(
        description="Per feature: its exact Shapley value; they add up to prediction minus base_value."
    )


class ExplainResponse(BaseModel):
    model_name: str
    model_version: str
    base_value: float = Field(description="The model's average output over its training background rows.")
    explanations: list[Explanation]


class Readiness(BaseModel):
    ready: bool
    use_case: str
    model_name: str
    model_version: str | None = None
    reason: str | None = None
    registry: Literal["ok", "unreachable"] = Field(
        default="ok", description="Whether the model registry answered at the last look (every few seconds)."
    )
    registry_error: str | None = Field(
        default=None, description="Why not, while it does not: loaded versions keep serving, new ones cannot load."
    )
