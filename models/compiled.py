"""A fitted model pipeline as plain NumPy operations on records: the serving fast path.

Training saves one scikit-learn ``Pipeline``: a ``ColumnTransformer`` (imputers, scalers,
one-hot encoders, ``CyclicalEncoder``) and an estimator. Its ``transform`` validates and
indexes pandas at every step, ~10 ms per call whatever the row count, while the arithmetic
takes microseconds. A served request pays that fixed cost on every ``predict`` call.

``compile_model`` reads the fitted parameters out of the pipeline and applies them to column
arrays built straight from the request's records, in the order and with the operations
scikit-learn uses, then calls the fitted estimator's own ``predict`` (a histogram gradient
boosting model's trees are walked with NumPy for small batches, see ``_Trees``). Training and
serving keep one model and one set of parameters; only the way the pipeline runs changes.

Two guards keep it from ever answering differently from the pipeline:
- anything it does not know exactly (another transformer, a sparse output, a dropped column,
  an encoder that raises on unknown categories) is refused with the reason;
- a compiled model is only returned after it gave the pipeline's own output on probe records
  drawn from the use case's schema (to the last bits; see ``RTOL``).
The caller serves through the pipeline when compiling is refused.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from core.usecase import UseCase
from models.frames import feature_columns, feature_frame
from models.metrics import model_output

# Rows x trees up to which the trees are walked with NumPy (see _Trees); measured crossover.
TREE_WALK_CELLS = 10_000


class NotCompilable(ValueError):
    """The pipeline holds something the compiled path does not reproduce exactly; the message says what."""


class _Block(Protocol):
    """One transformer of the column transformer: its input columns in, its output columns out."""

    columns: list[str]

    def apply(self, columns: Mapping[str, np.ndarray]) -> np.ndarray: ...


def _floats(columns: Mapping[str, np.ndarray], names: list[str]) -> np.ndarray:
    """The named columns side by side as a new float64 array (safe to change in place)."""
    return np.column_stack([columns[c] for c in names]).astype(np.float64, copy=False)


@dataclass(frozen=True)
class _Numeric:
    """SimpleImputer and/or StandardScaler on float columns."""

    columns: list[str]
    fill: np.ndarray | None
    mean: np.ndarray | None
    scale: np.ndarray | None

    def apply(self, columns: Mapping[str, np.ndarray]) -> np.ndarray:
        X = _floats(columns, self.columns)
        if self.fill is not None:
            np.copyto(X, self.fill, where=np.isnan(X))
        # In place and in this order, as StandardScaler.transform does: the same bits.
        if self.mean is not None:
            X -= self.mean
        if self.scale is not None:
            X /= self.scale
        return X


@dataclass(frozen=True)
class _OneHot:
    """SimpleImputer (optional) and a dense OneHotEncoder that maps unknown categories to zeros."""

    columns: list[str]
    fill: list[Any] | None
    categories: list[dict[Any, int]]

    def apply(self, columns: Mapping[str, np.ndarray]) -> np.ndarray:
        n = len(columns[self.columns[0]])
        blocks = []
        for j, name in enumerate(self.columns):
            index = self.categories[j]
            block = np.zeros((n, len(index)), dtype=np.float64)
            for row, value in enumerate(columns[name]):
                if self.fill is not None and value != value:  # SimpleImputer's missing value: NaN only
                    value = self.fill[j]
                position = index.get(value)
                if position is not None:
                    block[row, position] = 1.0
            blocks.append(block)
        return np.hstack(blocks)


@dataclass(frozen=True)
class _Cyclical:
    """models.features.CyclicalEncoder."""

    columns: list[str]
    period: float

    def apply(self, columns: Mapping[str, np.ndarray]) -> np.ndarray:
        values = _floats(columns, self.columns)
        if np.isnan(values).any():  # the encoder's input validation refuses NaN; so do we
            raise ValueError(f"Input X contains NaN: {self.columns} must be present")
        angle = 2.0 * np.pi * values / self.period
        return np.hstack([np.sin(angle), np.cos(angle)])


@dataclass(frozen=True)
class _Trees:
    """A HistGradientBoosting model's trees, walked for every row and tree at once with NumPy.

    scikit-learn walks them in compiled code but calls it once per tree: 200 trees cost ~4 ms
    for a single row, nearly all of it the calls. Walking all trees together is one NumPy step
    per tree level. Each step takes the same branch scikit-learn takes (NaN goes where the
    split sent missing values, else ``x <= threshold`` goes left), and the leaves are added up
    one tree after another from the baseline, as scikit-learn adds them: the same bits. Leaves
    point to themselves, so every walk may run to the deepest leaf.
    """

    estimator: Any
    roots: np.ndarray
    feature: np.ndarray
    threshold: np.ndarray
    missing_left: np.ndarray
    left: np.ndarray
    right: np.ndarray
    value: np.ndarray
    depth: int

    @classmethod
    def of(cls, estimator: Any) -> _Trees:
        if estimator.n_trees_per_iteration_ != 1:
            raise NotCompilable("the gradient boosting model has several trees per iteration (multiclass)")
        nodes = [predictor.nodes for (predictor,) in estimator._predictors]
        if any(n["is_categorical"].any() for n in nodes):
            raise NotCompilable("the gradient boosting model splits on categorical features")
        offsets = np.cumsum([0] + [len(n) for n in nodes[:-1]])
        every = np.concatenate(nodes)
        own = np.arange(len(every))
        shift = np.repeat(offsets, [len(n) for n in nodes])
        leaf = every["is_leaf"].astype(bool)
        return cls(
            estimator=estimator,
            roots=offsets.astype(np.intp),
            feature=every["feature_idx"].astype(np.intp),
            threshold=every["num_threshold"].astype(np.float64),
            missing_left=every["missing_go_to_left"].astype(bool),
            left=np.where(leaf, own, every["left"].astype(np.intp) + shift),
            right=np.where(leaf, own, every["right"].astype(np.intp) + shift),
            value=every["value"].astype(np.float64),
            depth=int(every["depth"].max()),
        )

    @property
    def n_trees(self) -> int:
        return len(self.roots)

    def output(self, X: np.ndarray, task: str) -> np.ndarray:
        rows = np.arange(len(X))[:, None]
        node = np.repeat(self.roots[None, :], len(X), axis=0)
        for _ in range(self.depth):
            x = X[rows, self.feature[node]]
            go_left = np.where(np.isnan(x), self.missing_left[node], x <= self.threshold[node])
            node = np.where(go_left, self.left[node], self.right[node])
        baseline = np.broadcast_to(self.estimator._baseline_prediction, (len(X), 1))
        # cumsum adds left to right, one term at a time: baseline + tree 1 + tree 2 + ...
        raw = np.cumsum(np.hstack([baseline, self.value[node]]), axis=1)[:, -1:]
        if task == "classification":
            return np.asarray(self.estimator._loss.predict_proba(raw)[:, 1], dtype=np.float64)
        return np.asarray(self.estimator._loss.link.inverse(raw.ravel()), dtype=np.float64)


@dataclass(frozen=True)
class CompiledModel:
    """``output(records)`` equals ``model_output(pipeline, feature_frame(records))``, without pandas."""

    use_case: UseCase
    blocks: tuple[_Block, ...]
    estimator: Any
    trees: _Trees | None = None

    def features(self, records: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """What the column transformer would hand the estimator."""
        columns = feature_columns(records, self.use_case)
        return np.hstack([block.apply(columns) for block in self.blocks])

    def output(self, records: Sequence[Mapping[str, Any]]) -> np.ndarray:
        X = self.features(records)
        # The tree walk's work grows with rows x trees, scikit-learn's calls only with trees:
        # past a few dozen rows its own walk is the faster one.
        if self.trees is not None and len(X) * self.trees.n_trees <= TREE_WALK_CELLS:
            return self.trees.output(X, self.use_case.task)
        return model_output(self.estimator, X, self.use_case.task)


def compile_model(model: Any, use_case: UseCase, *, probes: int = 64) -> CompiledModel:
    """The compiled form of a fitted pipeline, checked against the pipeline on ``probes`` records.

    Raises NotCompilable when the pipeline holds anything not reproduced exactly, when the
    compiled form disagrees with it on any probe, or when anything else goes wrong on the way
    (a scikit-learn whose internals moved, say): the caller then serves the pipeline itself.
    """
    try:
        compiled = _compiled(model, use_case)
        _check(compiled, model, use_case, probe_records(use_case, n=probes))
    except NotCompilable:
        raise
    except Exception as err:
        raise NotCompilable(f"compiling failed: {type(err).__name__}: {err}") from err
    return compiled


def _compiled(model: Any, use_case: UseCase) -> CompiledModel:
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
    blocks: list[_Block] = []
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
    return CompiledModel(use_case=use_case, blocks=tuple(blocks), estimator=estimator, trees=_trees(estimator))


def _trees(estimator: Any) -> _Trees | None:
    """The tree walk for a HistGradientBoosting model; None (its own predict) for anything else."""
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    if not isinstance(estimator, HistGradientBoostingRegressor | HistGradientBoostingClassifier):
        return None
    return _Trees.of(estimator)


def _block(name: str, transformer: Any, columns: list[str]) -> _Block:
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    from models.features import CyclicalEncoder

    steps = [s for _, s in transformer.steps] if isinstance(transformer, Pipeline) else [transformer]
    kinds = [type(s) for s in steps]
    if kinds == [CyclicalEncoder]:
        return _Cyclical(columns=columns, period=float(steps[0].period))
    imputer = steps.pop(0) if steps and isinstance(steps[0], SimpleImputer) else None
    fill = _imputer_fill(name, imputer) if imputer is not None else None
    if len(steps) == 1 and isinstance(steps[0], OneHotEncoder):
        categories = _categories(name, steps[0])
        return _OneHot(columns=columns, fill=None if fill is None else list(fill), categories=categories)
    if len(steps) <= 1 and all(isinstance(s, StandardScaler) for s in steps):
        scaler = steps[0] if steps else None
        return _Numeric(
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


def _categories(name: str, encoder: Any) -> list[dict[Any, int]]:
    if encoder.handle_unknown != "ignore":
        raise NotCompilable(f"transformer '{name}': encoder's handle_unknown is '{encoder.handle_unknown}'")
    if encoder.drop_idx_ is not None or getattr(encoder, "_infrequent_enabled", False):
        raise NotCompilable(f"transformer '{name}': encoder drops or groups categories")
    if encoder.sparse_output or np.dtype(encoder.dtype) != np.float64:
        raise NotCompilable(f"transformer '{name}': encoder output is sparse or not float64")
    return [{value: i for i, value in enumerate(cats.tolist())} for cats in encoder.categories_]


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


# A forest predicting on several threads adds its trees up in whatever order the threads finish,
# so the pipeline differs from itself in the last bits (seen: 6e-14 on a prediction of ~200). The
# compiled transform gives the same bits; a mistake in it would move a value across a split and
# change the answer by far more than this.
RTOL, ATOL = 1e-9, 1e-12


def _check(compiled: CompiledModel, model: Any, use_case: UseCase, probes: list[dict[str, Any]]) -> None:
    """The compiled output must equal the pipeline's on the probes: every batch size, both tree paths."""
    task = use_case.task
    for batch in (probes, probes[:1]):
        want = model_output(model, feature_frame(batch, use_case), task)
        outputs = [compiled.output(batch)]
        if compiled.trees is not None:  # the tree walk and scikit-learn's own, whichever ``output`` chose
            X = compiled.features(batch)
            outputs += [compiled.trees.output(X, task), model_output(compiled.estimator, X, task)]
        for got in outputs:
            if got.shape != want.shape or not np.allclose(got, want, rtol=RTOL, atol=ATOL):
                worst = float(np.max(np.abs(got - want))) if got.shape == want.shape else float("nan")
                raise NotCompilable(
                    f"compiled output differs from the pipeline's on {len(batch)} probe records (max |diff| {worst:g})"
                )
