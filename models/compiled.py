"""A fitted model pipeline as plain NumPy: the serving fast path, and the file it is registered as.

Training saves one scikit-learn ``Pipeline``: a ``ColumnTransformer`` (imputers, scalers,
one-hot encoders, ``CyclicalEncoder``) and an estimator. Its ``transform`` validates and
indexes pandas at every step, ~10 ms per call whatever the row count, while the arithmetic
takes microseconds; the trees of a forest or a boosting model are walked one call per tree.
A served request pays those fixed costs on every ``predict`` call.

A ``CompiledModel`` holds the same fitted parameters as arrays (``models.compiler`` reads
them out of the pipeline) and applies them to column arrays built straight from the
request's records, with the operations scikit-learn uses, in its order:
- the column transformer's blocks (``Numeric``, ``OneHot``, ``Cyclical``);
- the estimator: a linear model (``Linear``) or a tree ensemble (``Trees``), whose trees
  are walked for every row and tree at once, one NumPy step per tree level.

It is data, and needs NumPy alone: ``to_bytes`` writes it as an ``.npz`` file (arrays, plus
one JSON header; read back without pickle), registered beside the scikit-learn model. The
serving process starts from that file without scikit-learn, SciPy, pandas or skops, which
cost 2.4-3.1 s of start-up on the CI machine. The file carries probe records and the
pipeline's own answers to them, and ``from_bytes`` refuses a file that does not reproduce
them (``verify``).

Large batches of a tree model walk faster in scikit-learn's compiled code (past a few dozen
rows): once the version's scikit-learn estimator is loaded too, ``with_native`` hands them
to it, after checking it gives the recorded answers.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from functools import cached_property
from typing import Any, ClassVar, Literal, Protocol

import numpy as np

from core.usecase import Task, UseCase
from models.metrics import model_output
from models.records import Kind, input_kinds, record_columns

FORMAT = "mlops-compiled-model/1"
ARTIFACT_NAME = "compiled_model.npz"  # the file's name in the registered model's directory

# Rows x trees above which scikit-learn's own walk is the faster one (measured crossover).
TREE_WALK_CELLS = 10_000

# A forest predicting on several threads adds its trees up in whatever order the threads finish,
# so the pipeline differs from itself in the last bits (seen: 6e-14 on a prediction of ~200); the
# logistic function differs by an ulp between SciPy and NumPy. A mistake in the compiled model
# would move a value across a split or a weight, and change the answer by far more than this.
RTOL, ATOL = 1e-9, 1e-12

Link = Literal["identity", "logit", "log"]


class InvalidCompiledModel(ValueError):
    """A compiled model that cannot be read, or that does not give the answers it records."""


def inverse_link(link: Link, raw: np.ndarray) -> np.ndarray:
    """The model's output from its raw score: scikit-learn's ``link.inverse`` (logit: SciPy's expit)."""
    if link == "identity":
        return raw
    if link == "log":
        return np.exp(raw)
    with np.errstate(over="ignore"):  # exp(-x) overflows to inf for x < -709: the answer is 0, as expit's
        return 1.0 / (1.0 + np.exp(-raw))


def _floats(columns: Mapping[str, np.ndarray], names: list[str]) -> np.ndarray:
    """The named columns side by side as a new float64 array (safe to change in place)."""
    return np.column_stack([columns[c] for c in names]).astype(np.float64, copy=False)


class Block(Protocol):
    """One transformer of the column transformer: its input columns in, its output columns out."""

    KIND: ClassVar[str]
    columns: list[str]

    def apply(self, columns: Mapping[str, np.ndarray]) -> np.ndarray: ...


@dataclass(frozen=True)
class Numeric:
    """SimpleImputer and/or StandardScaler on float columns."""

    KIND: ClassVar[str] = "numeric"
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
class OneHot:
    """SimpleImputer (optional) and a dense OneHotEncoder that maps unknown categories to zeros."""

    KIND: ClassVar[str] = "one_hot"
    columns: list[str]
    fill: list[str] | None
    categories: list[list[str]]
    _index: list[dict[str, int]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_index", [{v: i for i, v in enumerate(cats)} for cats in self.categories])

    def apply(self, columns: Mapping[str, np.ndarray]) -> np.ndarray:
        n = len(columns[self.columns[0]])
        blocks = []
        for j, name in enumerate(self.columns):
            index = self._index[j]
            block = np.zeros((n, len(index)), dtype=np.float64)
            for row, value in enumerate(columns[name]):
                if self.fill is not None and value != value:  # SimpleImputer's missing value: NaN only
                    value = self.fill[j]
                position = index.get(value)
                if position is not None:
                    block[row, position] = 1.0
            blocks.append(block)
        return np.hstack(blocks)


CYCLICAL_DECIMALS = 12


def on_the_circle(values: np.ndarray, period: float) -> np.ndarray:
    """Sine and cosine of each value's angle on a circle of ``period``, side by side, rounded.

    Rounded to 12 decimals because points that are equal in exact arithmetic come out of the libm
    a few ulps apart (cos(2 pi 8/24) = -0.4999999999999998, cos(2 pi 16/24) = -0.5000000000000004),
    and a tree would learn to split on those last bits, which a float32 runtime or another libm
    rounds differently. The encoder (models.features) and the compiled model share this function.
    """
    angle = 2.0 * np.pi * np.asarray(values, dtype=np.float64) / period
    return np.round(np.hstack([np.sin(angle), np.cos(angle)]), CYCLICAL_DECIMALS) + 0.0  # + 0.0: no -0.0


@dataclass(frozen=True)
class Cyclical:
    """models.features.CyclicalEncoder."""

    KIND: ClassVar[str] = "cyclical"
    columns: list[str]
    period: float

    def apply(self, columns: Mapping[str, np.ndarray]) -> np.ndarray:
        values = _floats(columns, self.columns)
        if np.isnan(values).any():  # the encoder's input validation refuses NaN; so do we
            raise ValueError(f"Input X contains NaN: {self.columns} must be present")
        return on_the_circle(values, self.period)


class Estimator(Protocol):
    KIND: ClassVar[str]

    @property
    def n_trees(self) -> int: ...

    def output(self, X: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class Linear:
    """Ridge, or a binary LogisticRegression's positive-class probability: ``link(X @ coef + intercept)``."""

    KIND: ClassVar[str] = "linear"
    coef: np.ndarray  # as fitted: (n_features,), or (1, n_features) for a classifier
    intercept: np.ndarray
    link: Link
    n_trees: ClassVar[int] = 0

    def output(self, X: np.ndarray) -> np.ndarray:
        # scikit-learn's decision function, operation for operation.
        raw = X @ self.coef.T + self.intercept
        return inverse_link(self.link, raw.reshape(-1))


@dataclass(frozen=True)
class Trees:
    """A tree ensemble walked for every row and tree at once: ``link((start + sum of leaves) / divisor)``.

    scikit-learn walks its trees in compiled code but calls it once per tree: 200 trees cost
    ~4 ms for a single row, nearly all of it the calls. Here each step moves every (row, tree)
    pair one level down, taking the branch scikit-learn takes: NaN goes where the split sent
    missing values, else ``x <= threshold`` goes left. Leaves point to themselves, so every walk
    may run to the deepest leaf. The leaves are added up one tree after another from ``start``,
    in scikit-learn's order, so the sum has the same bits.

    - HistGradientBoosting: ``start`` is the baseline, ``divisor`` 1, inputs in float64.
    - RandomForest: ``start`` 0, ``divisor`` the number of trees (the forest's mean), inputs
      cast to float32 first as the forest does; leaves hold the value, or the positive class's
      share for a classifier.
    """

    KIND: ClassVar[str] = "trees"
    roots: np.ndarray
    feature: np.ndarray
    threshold: np.ndarray
    missing_left: np.ndarray
    children: np.ndarray  # left children, then right children: node + n_nodes * went_right
    value: np.ndarray
    depth: int
    start: float
    divisor: float
    float32_inputs: bool
    link: Link

    @property
    def n_trees(self) -> int:
        return len(self.roots)

    @cached_property
    def _walk(self) -> _Walk:
        """The arrays the walk reads, laid out for it once per model (see ``_Walk``)."""
        n_nodes = len(self.feature)
        left, right = self.children[:n_nodes], self.children[n_nodes:]
        depths = np.zeros(self.n_trees, dtype=np.intp)
        for tree, root in enumerate(self.roots):
            level = np.array([root])
            while (inner := level[left[level] != level]).size:  # leaves point to themselves
                level = np.concatenate([left[inner], right[inner]])
                depths[tree] += 1
        order = np.argsort(-depths, kind="stable")
        children = np.empty(2 * n_nodes, dtype=np.intp)
        children[0::2], children[1::2] = 2 * left, 2 * right
        return _Walk(
            roots=2 * self.roots[order],
            place=np.argsort(order),
            branching=[int((depths > level).sum()) for level in range(int(depths.max(initial=0)))],
            feature=np.repeat(self.feature, 2),
            threshold=np.repeat(self.threshold, 2),
            missing_left=np.repeat(self.missing_left, 2),
            children=children,
            value=np.repeat(self.value, 2),
        )

    def output(self, X: np.ndarray) -> np.ndarray:
        if self.float32_inputs:
            X = X.astype(np.float32)  # compared with float64 thresholds, as scikit-learn's C does
        nan = bool(np.isnan(X).any())
        n, width = X.shape
        flat = np.ascontiguousarray(X).reshape(-1)
        walk = self._walk
        node = np.repeat(walk.roots[:, None], n, axis=1)  # a line per tree, deepest first
        row = (np.arange(n, dtype=np.intp) * width)[None, :] if n > 1 else None
        for m in walk.branching:
            moving = node[:m]
            at = walk.feature[moving]
            if row is not None:
                at += row
            x = flat[at]
            if nan:  # NaN compares False: it goes right, unless training sent missing values left
                went_right = np.where(np.isnan(x), ~walk.missing_left[moving], ~(x <= walk.threshold[moving]))
            else:
                went_right = x > walk.threshold[moving]
            node[:m] = walk.children[moving + went_right]
        # cumsum adds one term at a time, in the trees' own order: start + tree 1 + tree 2 + ...
        terms = np.vstack([np.full((1, n), self.start), walk.value[node[walk.place]]])
        total = np.cumsum(terms, axis=0)[-1]
        return inverse_link(self.link, total / self.divisor)


@dataclass(frozen=True)
class _Walk:
    """A tree ensemble laid out for walking every (tree, row) pair at once, with few NumPy calls.

    - **Deepest tree first.** A walk runs to the deepest tree's depth, though a tree's rows stop
      at its leaves: the bike model's 100 trees are 11 levels deep on average and 19 at most.
      Level L moves only the first ``branching[L]`` trees; ``place`` puts the trees back in their
      own order before their leaves are added up, so the sum has scikit-learn's bits.
    - **Doubled node numbers.** Node k is 2k, and 2k + 1 is where its right child is found: the
      step to a child is one addition of the comparison's outcome and one lookup, and the
      per-node arrays are repeated to be read with either number.

    Measured on the bike model: a single row in 46 µs instead of 75, 16 rows in 126 instead of
    144, 1,000 rows in 6 ms instead of 10.
    """

    roots: np.ndarray
    place: np.ndarray
    branching: list[int]
    feature: np.ndarray
    threshold: np.ndarray
    missing_left: np.ndarray
    children: np.ndarray
    value: np.ndarray


_BLOCKS: dict[str, type] = {cls.KIND: cls for cls in (Numeric, OneHot, Cyclical)}
_ESTIMATORS: dict[str, type] = {cls.KIND: cls for cls in (Linear, Trees)}


@dataclass(frozen=True)
class CompiledModel:
    """``output(records)`` equals the pipeline's ``model_output`` on ``feature_frame(records)``, without pandas.

    ``probes`` and ``expected``: records and the pipeline's answers to them, recorded when it was
    compiled; ``verify`` checks the model still gives them. ``native``: the fitted scikit-learn
    estimator, when loaded, for large batches of trees (not part of the file).
    """

    task: Task
    inputs: dict[str, Kind]
    blocks: tuple[Block, ...]
    estimator: Estimator
    probes: list[dict[str, Any]]
    expected: np.ndarray
    native: Any = None

    def features(self, records: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """What the column transformer would hand the estimator."""
        columns = record_columns(records, self.inputs)
        return np.hstack([block.apply(columns) for block in self.blocks])

    def output(self, records: Sequence[Mapping[str, Any]]) -> np.ndarray:
        X = self.features(records)
        # The NumPy walk's work grows with rows x trees, scikit-learn's calls only with trees.
        if self.native is not None and len(X) * self.estimator.n_trees > TREE_WALK_CELLS:
            return model_output(self.native, X, self.task)
        return self.estimator.output(X)

    def verify(self) -> CompiledModel:
        """This model, if it gives the recorded answers: as a batch and one record, on every path it has."""
        for batch in (self.probes, self.probes[:1]):
            want = self.expected[: len(batch)]
            X = self.features(batch)
            outputs = {"compiled": self.estimator.output(X)}
            if self.native is not None:
                outputs["scikit-learn's"] = model_output(self.native, X, self.task)
            for path, got in outputs.items():
                if got.shape != want.shape or not np.allclose(got, want, rtol=RTOL, atol=ATOL):
                    worst = float(np.max(np.abs(got - want))) if got.shape == want.shape else float("nan")
                    raise InvalidCompiledModel(
                        f"the {path} output differs from the recorded one on {len(batch)} probe records "
                        f"(max |diff| {worst:g})"
                    )
        return self

    def with_native(self, estimator: Any) -> CompiledModel:
        """This model with scikit-learn's own estimator for large batches, checked on the probes."""
        return replace(self, native=estimator).verify()

    def check_inputs(self, use_case: UseCase) -> None:
        """Every column the model reads is a feature of ``use_case``, of the same kind."""
        kinds = input_kinds(use_case)
        wrong = {name: kind for name, kind in self.inputs.items() if kinds.get(name) != kind}
        if wrong or self.task != use_case.task:
            raise InvalidCompiledModel(
                f"the model ({self.task}) reads {wrong or self.inputs}, which use case '{use_case.name}' "
                f"({use_case.task}) does not provide as such: features {kinds}"
            )

    def to_bytes(self) -> bytes:
        arrays: dict[str, np.ndarray] = {"expected": self.expected}
        header = {
            "format": FORMAT,
            "task": self.task,
            "inputs": self.inputs,
            "blocks": [_parts(block, f"blocks.{i}", arrays) for i, block in enumerate(self.blocks)],
            "estimator": _parts(self.estimator, "estimator", arrays),
            "probes": self.probes,
        }
        arrays["header"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
        buffer = io.BytesIO()
        np.savez(buffer, allow_pickle=False, **arrays)
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> CompiledModel:
        """The model in a file written by ``to_bytes``, verified on its probes; InvalidCompiledModel if not."""
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as npz:
                arrays = {name: npz[name] for name in npz.files}
            header = json.loads(arrays.pop("header").tobytes())
            if header.get("format") != FORMAT:
                raise InvalidCompiledModel(f"format {header.get('format')!r}, expected {FORMAT!r}")
            model = cls(
                task=header["task"],
                inputs=header["inputs"],
                blocks=tuple(_built(_BLOCKS, part, arrays) for part in header["blocks"]),
                estimator=_built(_ESTIMATORS, header["estimator"], arrays),
                probes=header["probes"],
                expected=arrays["expected"],
            )
        except InvalidCompiledModel:
            raise
        except Exception as err:
            raise InvalidCompiledModel(f"unreadable compiled model: {type(err).__name__}: {err}") from err
        return model.verify()


def _parts(part: Any, prefix: str, arrays: dict[str, np.ndarray]) -> dict[str, Any]:
    """A block or estimator as JSON, its array fields moved into ``arrays`` under ``prefix``."""
    out: dict[str, Any] = {"kind": part.KIND, "arrays": []}
    for f in fields(part):
        if not f.init:
            continue
        value = getattr(part, f.name)
        if isinstance(value, np.ndarray):
            arrays[f"{prefix}.{f.name}"] = value
            out["arrays"].append(f.name)
        else:
            out[f.name] = value
    out["prefix"] = prefix
    return out


def _built(kinds: dict[str, type], part: dict[str, Any], arrays: Mapping[str, np.ndarray]) -> Any:
    """The block or estimator that ``_parts`` wrote."""
    if part["kind"] not in kinds:
        raise InvalidCompiledModel(f"unknown part '{part['kind']}'; known: {sorted(kinds)}")
    cls = kinds[part["kind"]]
    values = {k: v for k, v in part.items() if k not in ("kind", "arrays", "prefix")}
    values |= {name: arrays[f"{part['prefix']}.{name}"] for name in part["arrays"]}
    return cls(**values)
