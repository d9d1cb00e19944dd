"""The compiled model answers what the fitted pipeline answers, from its file too, or is refused."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingRegressor, RandomForestRegressor
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import MinMaxScaler, OneHotEncoder, StandardScaler

from core.usecase import UseCase
from models.algorithms import CANDIDATES
from models.compiled import RTOL, TREE_WALK_CELLS, CompiledModel, InvalidCompiledModel
from models.compiler import NotCompilable, compile_model
from models.frames import coerce_features, feature_frame, target_vector
from models.metrics import model_output
from models.training import make_pipeline
from tests.conftest import DATA
from tests.support.records import json_records

SMALL = {"n_estimators": 20, "max_iter": 60}  # enough trees to branch on every feature, quick to fit


def fitted(use_case: UseCase, algorithm: str, frame: pd.DataFrame) -> Pipeline:
    model = make_pipeline(use_case, algorithm)
    model.set_params(**{f"model__{k}": v for k, v in SMALL.items() if k in model.named_steps["model"].get_params()})
    return model.fit(coerce_features(frame, use_case), target_vector(frame, use_case))


@pytest.fixture(scope="module")
def credit_frame() -> pd.DataFrame:
    return pd.read_csv(DATA / "Default.csv")


@pytest.mark.parametrize("algorithm", sorted(CANDIDATES["regression"]))
def test_every_bike_candidate_compiles_to_the_same_answers_and_so_does_its_file(bike, bike_frame, algorithm):
    model = fitted(bike, algorithm, bike_frame.iloc[:1500])
    compiled = compile_model(model, bike)
    from_file = CompiledModel.from_bytes(compiled.to_bytes())  # NumPy alone: no scikit-learn estimator
    assert from_file.native is None
    unseen = json_records(bike_frame.iloc[4000:4600], bike)  # later months: other weather, other hours
    for batch in (unseen, unseen[:7], unseen[:1]):
        want = model_output(model, feature_frame(batch, bike), "regression")
        np.testing.assert_allclose(compiled.output(batch), want, rtol=RTOL, atol=0)
        np.testing.assert_allclose(from_file.output(batch), want, rtol=RTOL, atol=0)


@pytest.mark.parametrize("algorithm", sorted(CANDIDATES["classification"]))
def test_every_credit_candidate_compiles_to_the_same_probabilities(credit, credit_frame, algorithm):
    model = fitted(credit, algorithm, credit_frame.iloc[:3000])
    from_file = CompiledModel.from_bytes(compile_model(model, credit).to_bytes())
    unseen = json_records(credit_frame.iloc[8000:8500], credit)
    want = model_output(model, feature_frame(unseen, credit), "classification")
    got = from_file.output(unseen)
    assert np.all((got >= 0) & (got <= 1))
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=1e-12)


@pytest.mark.parametrize("algorithm", ["hist_gradient_boosting", "random_forest"])
def test_trees_are_walked_to_the_same_bits_as_scikit_learn_walks_them(bike, bike_frame, algorithm):
    model = fitted(bike, algorithm, bike_frame.iloc[:1500])
    if algorithm == "random_forest":
        model.set_params(model__n_jobs=1)  # trees summed in one order, as the service predicts
    compiled = compile_model(model, bike)
    assert compiled.native is model.named_steps["model"]
    unseen = json_records(bike_frame.iloc[5000:5800], bike)
    X = compiled.features(unseen)
    assert len(X) * compiled.estimator.n_trees > TREE_WALK_CELLS  # the batch goes through scikit-learn's walk...
    own = model.predict(feature_frame(unseen, bike))
    assert np.array_equal(compiled.output(unseen), own)
    assert np.array_equal(compiled.estimator.output(X), own)  # ...and ours gives the same bits


def test_a_file_that_does_not_give_its_recorded_answers_is_refused(bike, bike_frame):
    compiled = compile_model(fitted(bike, "hist_gradient_boosting", bike_frame.iloc[:1500]), bike)
    shifted = dataclasses.replace(compiled, expected=compiled.expected + 1e-6 * np.abs(compiled.expected).max())
    with pytest.raises(InvalidCompiledModel, match="differs from the recorded one on 64 probe records"):
        CompiledModel.from_bytes(shifted.to_bytes())
    with pytest.raises(InvalidCompiledModel, match="unreadable compiled model"):
        CompiledModel.from_bytes(compiled.to_bytes()[:-100])


def test_a_compiled_model_serves_only_a_use_case_that_provides_its_inputs(bike, credit, bike_frame):
    compiled = compile_model(fitted(bike, "ridge", bike_frame.iloc[:1500]), bike)
    compiled.check_inputs(bike)
    with pytest.raises(InvalidCompiledModel, match="use case 'credit_default'"):
        compiled.check_inputs(credit)


@pytest.mark.parametrize("with_missing_in_training", [True, False])
@pytest.mark.parametrize(
    "estimator",
    [HistGradientBoostingRegressor(max_iter=40), RandomForestRegressor(n_estimators=20, max_depth=8, random_state=0)],
    ids=["boosting", "forest"],
)
def test_missing_values_take_the_branch_the_trees_learnt(bike, bike_frame, estimator, with_missing_in_training):
    # No imputer: NaN reaches the trees, which send it where training sent missing values, or
    # (none seen in training) where scikit-learn sends them: to the child that saw more samples.
    frame = coerce_features(bike_frame.iloc[:2000], bike)
    if with_missing_in_training:
        frame.loc[frame.index[::3], "temp"] = np.nan
    features = ColumnTransformer([("numeric", StandardScaler(), ["temp", "hum", "hr"])])
    model = Pipeline([("features", features), ("model", clone(estimator))])
    model.fit(frame, target_vector(bike_frame.iloc[:2000], bike))
    compiled = compile_model(model, bike)
    batch = json_records(bike_frame.iloc[3000:3010], bike)
    for record in batch[::2]:
        record["temp"] = None  # a missing value, as the service would pass a null
    X = compiled.features(batch)
    assert np.isnan(X[::2, 0]).all()
    assert np.array_equal(compiled.estimator.output(X), model.predict(feature_frame(batch, bike)))


def test_a_transformer_it_does_not_know_is_refused_by_name(bike, bike_frame):
    features = ColumnTransformer([("scaled", MinMaxScaler(), ["temp", "hum"])])
    model = Pipeline([("features", features), ("model", HistGradientBoostingRegressor(max_iter=5))])
    model.fit(coerce_features(bike_frame.iloc[:300], bike), target_vector(bike_frame.iloc[:300], bike))
    with pytest.raises(NotCompilable, match=r"'scaled' is \['MinMaxScaler'\]"):
        compile_model(model, bike)


def test_an_encoder_that_raises_on_unknown_categories_is_refused(bike, bike_frame):
    features = ColumnTransformer([("onehot", OneHotEncoder(sparse_output=False), ["weathersit"])])
    model = Pipeline([("features", features), ("model", HistGradientBoostingRegressor(max_iter=5))])
    model.fit(coerce_features(bike_frame.iloc[:300], bike), target_vector(bike_frame.iloc[:300], bike))
    with pytest.raises(NotCompilable, match="handle_unknown is 'error'"):
        compile_model(model, bike)


class ShiftedScaler(StandardScaler):
    """Looks like a StandardScaler, transforms differently: what only the probe check can catch."""

    def transform(self, X, copy=None):
        return super().transform(X, copy=copy) + 0.5


def test_a_compiled_form_that_answers_differently_is_refused(bike, bike_frame):
    features = ColumnTransformer([("numeric", ShiftedScaler(), ["temp", "hum", "hr"])])
    model = Pipeline([("features", features), ("model", HistGradientBoostingRegressor(max_iter=40))])
    model.fit(coerce_features(bike_frame.iloc[:2000], bike), target_vector(bike_frame.iloc[:2000], bike))
    with pytest.raises(NotCompilable, match="not the pipeline's answers: the compiled output differs"):
        compile_model(model, bike)


class Unpredictable(HistGradientBoostingRegressor):
    """Fits, then fails to predict: whatever goes wrong while compiling comes out as NotCompilable."""

    def predict(self, X):
        raise RuntimeError("no prediction today")


def test_anything_that_goes_wrong_while_compiling_is_a_refusal_with_the_reason(bike, bike_frame):
    features = ColumnTransformer([("numeric", StandardScaler(), ["temp", "hum"])])
    model = Pipeline([("features", features), ("model", Unpredictable(max_iter=5))])
    model.fit(coerce_features(bike_frame.iloc[:300], bike), target_vector(bike_frame.iloc[:300], bike))
    with pytest.raises(NotCompilable, match="compiling failed: RuntimeError: no prediction today"):
        compile_model(model, bike)
