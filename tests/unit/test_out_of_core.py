"""The pure parts of out-of-core training: the lake's index, the split by whole days, the chunks,
and the ensemble of chunk models (scikit-learn's estimator contract)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LinearRegression

from models.ensemble import PartitionEnsemble
from pipelines.outofcore import Day, chunks, index_lake, split_days


def day(n: int, rows: int = 100) -> Day:
    start = pd.Timestamp("2011-01-01") + pd.Timedelta(days=n)
    return Day(files=(f"d{n}.parquet",), rows=rows, first=start, last=start + pd.Timedelta(hours=23))


def test_the_newest_whole_days_test_and_the_rest_train():
    days = [day(n) for n in range(10)]
    train, test = split_days(list(reversed(days)), test_fraction=0.25)
    assert [d.first for d in train] == [d.first for d in days[:7]]  # ordered by time, whatever came in
    assert [d.first for d in test] == [d.first for d in days[7:]]  # 300 rows: the first count >= 25 %


def test_overlapping_days_or_too_few_are_refused():
    with pytest.raises(ValueError, match="overlap in time"):
        split_days([day(0), Day(("x",), 10, day(0).first + pd.Timedelta(hours=3), day(1).first)], test_fraction=0.2)
    with pytest.raises(ValueError, match="cannot be split"):
        split_days([day(0)], test_fraction=0.2)


def test_chunks_are_consecutive_days_of_at_least_the_rows_asked():
    days = [day(n, rows) for n, rows in enumerate([300, 300, 300, 50, 400, 10])]
    grouped = chunks(days, rows=500)
    assert [[d.files[0] for d in c] for c in grouped] == [
        ["d0.parquet", "d1.parquet"], ["d2.parquet", "d3.parquet", "d4.parquet"], ["d5.parquet"],
    ]  # fmt: skip
    assert [d for c in grouped for d in c] == days


def test_the_index_reads_rows_and_times_from_the_footers(tmp_path):
    for date, hours in (("2011-01-02", [0, 5]), ("2011-01-01", [3, 23])):
        folder = tmp_path / f"event_date={date}"
        folder.mkdir()
        for i, hour in enumerate(hours):
            frame = pd.DataFrame({"event_time": [pd.Timestamp(date) + pd.Timedelta(hours=hour)] * (i + 1)})
            frame.to_parquet(folder / f"b{i}.parquet")
    (tmp_path / "event_date=2011-01-03").mkdir()  # empty: skipped
    days = index_lake(tmp_path)
    assert [(d.rows, d.first.hour, d.last.hour, len(d.files)) for d in days] == [(3, 3, 23, 2), (3, 0, 5, 2)]
    pd.DataFrame({"x": [1]}).to_parquet(tmp_path / "event_date=2011-01-03" / "bad.parquet")
    with pytest.raises(ValueError, match="no event_time column"):
        index_lake(tmp_path)


def test_the_ensemble_averages_members_fitted_each_on_its_own_chunk():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 3))
    y = X @ np.array([1.0, -2.0, 0.5]) + 3
    ensemble = PartitionEnsemble(members=[LinearRegression(), LinearRegression()]).fit(X, y)
    first, second = (LinearRegression().fit(X[:200], y[:200]), LinearRegression().fit(X[200:], y[200:]))
    expected = (first.predict(X) + second.predict(X)) / 2
    np.testing.assert_allclose(ensemble.predict(X), expected)
    joined = PartitionEnsemble.from_fitted([first, second])
    np.testing.assert_allclose(joined.predict(X), expected)
    assert joined.score(X, y) == pytest.approx(1.0)


def test_the_ensemble_passes_scikit_learns_estimator_checks():
    from sklearn.utils.estimator_checks import check_estimator

    check_estimator(PartitionEnsemble(members=[LinearRegression(), LinearRegression()]))


def test_the_ensemble_keeps_the_estimator_contract():
    ensemble = PartitionEnsemble(members=[LinearRegression()])
    assert clone(ensemble).get_params()["members"][0].get_params() == LinearRegression().get_params()
    with pytest.raises(NotFittedError):
        ensemble.predict(np.zeros((1, 3)))
    with pytest.raises(ValueError, match="at least one member"):
        PartitionEnsemble().fit(np.zeros((3, 1)), np.zeros(3))
    with pytest.raises(NotFittedError):
        PartitionEnsemble.from_fitted([LinearRegression()])  # members must be fitted to be joined
    frame = pd.DataFrame({"a": np.arange(10.0)})
    assert PartitionEnsemble(members=[LinearRegression()] * 2).fit(frame, np.arange(10.0)).predict(frame).shape == (10,)


def test_the_lake_profile_merged_from_chunks_is_the_profile_of_all_rows():
    from analysis.lakestats import chunk_sums, summarize
    from core.settings import default_usecases_dir
    from core.usecase import load_use_case

    use_case = load_use_case("bike_demand", usecases_dir=default_usecases_dir())
    rng = np.random.default_rng(1)
    n = 3000
    frame = pd.DataFrame(
        {
            "hr": rng.integers(0, 24, n), "weekday": rng.integers(0, 7, n), "workingday": rng.integers(0, 2, n),
            "holiday": rng.integers(0, 2, n), "temp": rng.uniform(0, 1, n), "atemp": rng.uniform(0, 1, n),
            "hum": rng.uniform(0, 1, n), "windspeed": rng.uniform(0, 1, n),
            "weathersit": rng.choice(["clear", "cloudy/misty", "light rain/snow"], n),
        }
    )  # fmt: skip
    frame["bikers"] = (100 * frame["temp"] + 5 * frame["hr"] + rng.normal(0, 10, n)).round()
    frame.loc[[3, 40], "temp"] = np.nan  # missing values count, and stay out of the sums
    sums = [chunk_sums(frame.iloc[i : i + 700], use_case) for i in range(0, n, 700)]
    merged = summarize(sum(sums[1:], sums[0]), use_case)
    whole = summarize(chunk_sums(frame, use_case), use_case)
    temp = merged["columns"]["temp"]
    assert merged["rows"] == n and temp["count"] == n - 2 and temp["missing"] == 2
    assert temp["mean"] == pytest.approx(frame["temp"].mean()) and temp["std"] == pytest.approx(frame["temp"].std())
    assert temp["pearson_with_target"] == pytest.approx(frame["temp"].corr(frame["bikers"]))
    assert sum(temp["histogram"]["counts"]) == n - 2 and temp["histogram"]["edges"][0] == 0.0
    from analysis.eda import correlation_ratio

    eta = merged["columns"]["weathersit"]["correlation_ratio_with_target"]
    assert eta == pytest.approx(correlation_ratio(frame["weathersit"], frame["bikers"]))
    assert merged["columns"]["weathersit"]["values"] == frame["weathersit"].value_counts().to_dict()
    for name, column in whole["columns"].items():  # chunked or whole, the same numbers
        for key in ("count", "mean", "std", "pearson_with_target", "correlation_ratio_with_target"):
            assert merged["columns"][name].get(key) == pytest.approx(column.get(key)), (name, key)
    json.dumps(merged, allow_nan=False)  # plain numbers, ready for the report's JSON


def test_only_candidates_of_bounded_size_are_trained_out_of_core():
    from core.settings import default_usecases_dir
    from core.usecase import load_use_case
    from pipelines.outofcore import bounded_candidates

    bike = load_use_case("bike_demand", usecases_dir=default_usecases_dir())
    assert set(bounded_candidates(bike).training.candidates) == {"ridge", "hist_gradient_boosting"}
    assert "random_forest" in bike.training.candidates  # the use case itself is left as it is
    forest_only = bike.model_copy(
        update={"training": bike.training.model_copy(update={"candidates": {"random_forest": {"max_depth": [4]}}})}
    )
    with pytest.raises(ValueError, match="size does not grow with the rows"):
        bounded_candidates(forest_only)
