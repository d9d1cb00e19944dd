"""From a fitted scikit-learn pipeline to its ``CompiledModel`` (``models.compiled``), or a refusal.

Two guards keep the compiled model from ever answering differently from the pipeline:
- anything not known exactly (another transformer, a sparse output, a dropped column, an
  encoder that raises on unknown categories, a loss without a known link) is refused with
  the reason;
- a compiled model is only returned after it gave the pipeline's own output on probe records
  drawn from the use case's schema, as a batch and as one record, on every path it has. The
  probes and the pipeline's answers travel with it, so it can be checked again where it is loaded.
The caller serves, or registers, the pipeline alone when compiling is refused.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from core.usecase import UseCase
from models.compiled import (
    Block,
    CompiledModel,
    Cyclical,
    InvalidCompiledModel,
    Linear,
    Link,
    Numeric,
    OneHot,
    Trees,
)
from models.frames import feature_frame
from models.metrics import model_output
from models.records import input_kinds

log = logging.getLogger(__name__)


class NotCompilable(ValueError):
    """The pipeline holds something the compiled model does not reproduce exactly; the message says what."""


def compile_model(model: Any, use_case: UseCase, *, probes: int = 64) -> CompiledModel:
    """The compiled form of a fitted pipeline, checked against the pipeline on ``probes`` records.

    The result's ``native`` is the pipeline's estimator when that is a tree ensemble (large batches).
    Raises NotCompilable when the pipeline holds anything not reproduced exactly, when the
    compiled form disagrees with it on any probe, or when anything else goes wrong on the way
    (a scikit-learn whose internals moved, say).
    """
    try:
        blocks, estimator, native = _parts(model, use_case)
        records = probe_records(use_case, n=probes)
        expected = model_output(model, feature_frame(records, use_case), use_case.task)
        compiled = CompiledModel(
            task=use_case.task,
            inputs=input_kinds(use_case),
            blocks=blocks,
            estimator=estimator,
            probes=records,
            expected=expected,
            native=native,
        )
        return compiled.verify()
    except NotCompilable:
        raise
    except InvalidCompiledModel as err:
        raise NotCompilable(f"not the pipeline's answers: {err}") from err
    except Exception as err:
        raise NotCompilable(f"compiling failed: {type(err).__name__}: {err}") from err


def compile_or_none(model: Any, use_case: UseCase) -> CompiledModel | None:
    """The compiled form, or None when compiling is refused (logged with the reason)."""
    try:
        return compile_model(model, use_case)
    except NotCompilable as err:
        log.warning("the '%s' model is not compiled, it is served through its pipeline: %s", use_case.name, err)
        return None


def _parts(model: Any, use_case: UseCase) -> tuple[tuple[Block, ...], Any, Any]:
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline

    if not isinstance(model, Pipeline) or len(model.steps) != 2:
        raise NotCompilable(f"expected Pipeline([column transformer, estimator]), got {type(model).__name__}")
    (_, features), (_, estimator) = model.steps
    if not isinstance(features, ColumnTransformer):
        raise NotCompilable(f"the first step is {type(features).__name__}, not a ColumnTransformer")
    if getattr(features, "sparse_output_", False):
        raise NotCompilable("the column transformer's output is sparse")
    if hasattr(estimator, "feature_names_in_"):
        raise NotCompilable("the estimator was fitted on named columns (pandas output), not an array")
    blocks: list[Block] = []
    for name, transformer, columns in features.transformers_:
        if isinstance(transformer, str):
            if transformer == "drop":
                continue
            raise NotCompilable(f"transformer '{name}' is '{transformer}'")
        if not (isinstance(columns, list) and columns and all(isinstance(c, str) for c in columns)):
            raise NotCompilable(f"transformer '{name}' selects columns by {columns!r}, not by feature names")
        unknown = [c for c in columns if c not in use_case.features]
        if unknown:
            raise NotCompilable(f"transformer '{name}' reads {unknown}, which are not features of '{use_case.name}'")
        blocks.append(_block(name, transformer, columns))
    compiled = _estimator(estimator, use_case)
    return tuple(blocks), compiled, estimator if isinstance(compiled, Trees) else None


def _estimator(estimator: Any, use_case: UseCase) -> Linear | Trees:
    from sklearn.ensemble import (
        HistGradientBoostingClassifier,
        HistGradientBoostingRegressor,
        RandomForestClassifier,
        RandomForestRegressor,
    )
    from sklearn.linear_model import LogisticRegression, Ridge

    classifier = use_case.task == "classification"
    if classifier and list(getattr(estimator, "classes_", [])) != [0, 1]:
        raise NotCompilable(f"the classifier's classes are {getattr(estimator, 'classes_', None)}, not [0, 1]")
    if isinstance(estimator, LogisticRegression if classifier else Ridge):
        coef = np.asarray(estimator.coef_, dtype=np.float64)
        if coef.shape != ((1, estimator.n_features_in_) if classifier else (estimator.n_features_in_,)):
            raise NotCompilable(f"the linear model's coefficients are {coef.shape}: several outputs")
        intercept = np.asarray(estimator.intercept_, dtype=np.float64)
        return Linear(coef=coef, intercept=intercept, link="logit" if classifier else "identity")
    if isinstance(estimator, HistGradientBoostingRegressor | HistGradientBoostingClassifier):
        return _boosting(estimator)
    if isinstance(estimator, RandomForestRegressor | RandomForestClassifier):
        return _forest(estimator, classifier=classifier)
    raise NotCompilable(f"the estimator is {type(estimator).__name__}, which is not compiled for {use_case.task}")


_LINKS: dict[str, Link] = {"IdentityLink": "identity", "LogitLink": "logit", "LogLink": "log"}


def _boosting(estimator: Any) -> Trees:
    if estimator.n_trees_per_iteration_ != 1:
        raise NotCompilable("the gradient boosting model has several trees per iteration (multiclass)")
    link = _LINKS.get(type(estimator._loss.link).__name__)
    if link is None:
        raise NotCompilable(f"the gradient boosting loss's link is {type(estimator._loss.link).__name__}")
    nodes = [predictor.nodes for (predictor,) in estimator._predictors]
    if any(n["is_categorical"].any() for n in nodes):
        raise NotCompilable("the gradient boosting model splits on categorical features")
    every = np.concatenate(nodes)
    leaf = every["is_leaf"].astype(bool)
    return _trees(
        sizes=[len(n) for n in nodes],
        leaf=leaf,
        feature=every["feature_idx"],
        threshold=every["num_threshold"],
        missing_left=every["missing_go_to_left"],
        left=every["left"],
        right=every["right"],
        value=every["value"],
        depth=int(every["depth"].max()),
        start=float(np.asarray(estimator._baseline_prediction).reshape(-1)[0]),
        divisor=1.0,
        float32_inputs=False,
        link=link,
    )


def _forest(estimator: Any, *, classifier: bool) -> Trees:
    if estimator.n_outputs_ != 1:
        raise NotCompilable("the forest has several outputs")
    trees = [e.tree_ for e in estimator.estimators_]
    every = {
        name: np.concatenate([getattr(t, name) for t in trees])
        for name in ("children_left", "children_right", "feature", "threshold", "missing_go_to_left")
    }
    values = np.concatenate([t.value for t in trees])  # fractions of each class for a classifier
    return _trees(
        sizes=[t.node_count for t in trees],
        leaf=every["children_left"] < 0,
        feature=every["feature"],
        threshold=every["threshold"],
        missing_left=every["missing_go_to_left"],
        left=every["children_left"],
        right=every["children_right"],
        value=values[:, 0, 1] if classifier else values[:, 0, 0],
        depth=max(t.max_depth for t in trees),
        start=0.0,
        divisor=float(len(trees)),
        float32_inputs=True,
        link="identity",
    )


def _trees(
    *, sizes: list[int], leaf: np.ndarray, feature: np.ndarray, left: np.ndarray, right: np.ndarray, **rest: Any
) -> Trees:
    """Trees laid end to end: child indices shifted to the whole, and leaves pointing to themselves."""
    roots = np.cumsum([0, *sizes[:-1]]).astype(np.intp)
    shift = np.repeat(roots, sizes)
    own = np.arange(len(leaf), dtype=np.intp)
    left = np.where(leaf, own, left.astype(np.intp) + shift)
    right = np.where(leaf, own, right.astype(np.intp) + shift)
    return Trees(
        roots=roots,
        feature=np.where(leaf, 0, feature).astype(np.intp),
        threshold=np.asarray(rest.pop("threshold"), dtype=np.float64),
        missing_left=np.asarray(rest.pop("missing_left")).astype(bool),
        children=np.concatenate([left, right]),
        value=np.asarray(rest.pop("value"), dtype=np.float64),
        **rest,
    )


def _block(name: str, transformer: Any, columns: list[str]) -> Block:
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    from models.features import CyclicalEncoder

    steps = [s for _, s in transformer.steps] if isinstance(transformer, Pipeline) else [transformer]
    kinds = [type(s) for s in steps]
    if kinds == [CyclicalEncoder]:
        return Cyclical(columns=columns, period=float(steps[0].period))
    imputer = steps.pop(0) if steps and isinstance(steps[0], SimpleImputer) else None
    fill = _imputer_fill(name, imputer) if imputer is not None else None
    if len(steps) == 1 and isinstance(steps[0], OneHotEncoder):
        categories = _categories(name, steps[0])
        if fill is not None and not all(isinstance(v, str) for v in fill.tolist()):
            raise NotCompilable(f"transformer '{name}': imputer fills categories with {fill.tolist()}, not strings")
        return OneHot(columns=columns, fill=None if fill is None else fill.tolist(), categories=categories)
    if len(steps) <= 1 and all(isinstance(s, StandardScaler) for s in steps):
        scaler = steps[0] if steps else None
        return Numeric(
            columns=columns,
            fill=None if fill is None else np.asarray(fill, dtype=np.float64),
            mean=None if scaler is None or not scaler.with_mean else np.asarray(scaler.mean_, dtype=np.float64),
            scale=None if scaler is None or not scaler.with_std else np.asarray(scaler.scale_, dtype=np.float64),
        )
    raise NotCompilable(f"transformer '{name}' is {[k.__name__ for k in kinds]}, which is not compiled")


def _imputer_fill(name: str, imputer: Any) -> np.ndarray:
    missing = imputer.missing_values
    if not (isinstance(missing, float) and np.isnan(missing)):
        raise NotCompilable(f"transformer '{name}': imputer's missing value is {missing!r}, not NaN")
    if imputer.add_indicator:
        raise NotCompilable(f"transformer '{name}': imputer adds missing-value indicators")
    fill = np.asarray(imputer.statistics_)
    if fill.dtype.kind == "f" and np.isnan(fill).any() and not imputer.keep_empty_features:
        raise NotCompilable(f"transformer '{name}': imputer drops a column that was empty in training")
    return fill


def _categories(name: str, encoder: Any) -> list[list[str]]:
    if encoder.handle_unknown != "ignore":
        raise NotCompilable(f"transformer '{name}': encoder's handle_unknown is '{encoder.handle_unknown}'")
    if encoder.drop_idx_ is not None or getattr(encoder, "_infrequent_enabled", False):
        raise NotCompilable(f"transformer '{name}': encoder drops or groups categories")
    if encoder.sparse_output or np.dtype(encoder.dtype) != np.float64:
        raise NotCompilable(f"transformer '{name}': encoder output is sparse or not float64")
    categories = [cats.tolist() for cats in encoder.categories_]
    if not all(isinstance(v, str) for cats in categories for v in cats):
        raise NotCompilable(f"transformer '{name}': encoder learnt categories that are not strings: {categories}")
    return categories


def probe_records(use_case: UseCase, *, n: int, seed: int = 0) -> list[dict[str, Any]]:
    """``n`` records across the schema's declared ranges and categories (every category appears)."""
    rng = np.random.default_rng(seed)
    records: list[dict[str, Any]] = [{} for _ in range(n)]
    for name in use_case.features:
        spec = use_case.schema_.columns[name]
        if spec.type == "category":
            cats = spec.categories or ["a", "b"]
            values: list[Any] = [cats[i % len(cats)] for i in rng.permutation(n)]
        elif spec.type == "bool":
            values = rng.integers(0, 2, size=n).tolist()
        elif spec.type in ("int", "float"):
            low = spec.min if spec.min is not None else (spec.max - 100 if spec.max is not None else 0.0)
            high = spec.max if spec.max is not None else low + 100
            if spec.type == "int":
                values = rng.integers(int(low), int(high) + 1, size=n).tolist()
            else:
                values = rng.uniform(low, high, size=n).tolist()
        else:
            raise NotCompilable(f"feature '{name}' is of type {spec.type}")
        for record, value in zip(records, values, strict=True):
            record[name] = value
    return records
