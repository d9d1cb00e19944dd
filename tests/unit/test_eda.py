"""The exploratory analysis on small frames whose answers are known by hand."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
import yaml

from analysis.eda import correlation_ratio, cramers_v, describe_column, profile, separation
from core.usecase import UseCase, UseCaseError, parse_use_case
from tests.conftest import USECASES


def credit_like(**eda) -> UseCase:
    data = yaml.safe_load((USECASES / "credit_default.yaml").read_text())
    data["schema"]["columns"]["region"] = {"type": "category", "categories": ["n", "s"]}
    data["schema"]["columns"]["score"] = {"type": "float", "nullable": True}
    data["features"] = ["student", "balance", "income", "score"]
    data["eda"] = eda
    return parse_use_case(data, origin="test.yaml", base_dir=USECASES)


def frame(n: int = 200, positives: int = 10, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    default = np.array(["Yes"] * positives + ["No"] * (n - positives))
    return pd.DataFrame(
        {
            "default": default,
            "student": rng.choice(["No", "Yes"], n),
            "balance": rng.normal(800, 200, n),
            "income": rng.normal(40_000, 5_000, n),
            "region": "n",  # constant
            "score": np.where(np.arange(n) < 4, 1.0, np.nan),  # 98 % missing
        }
    )


def test_quartiles_and_iqr_outliers_by_hand():
    stats = describe_column(pd.Series([1.0, 2.0, 3.0, 4.0, 5.0, 100.0]), "numeric", iqr_factor=1.5)
    # pandas' linear quartiles: 2.25 and 4.75, IQR 2.5, fences -1.5 and 8.5: only 100 is outside
    assert stats["quantiles"]["p25"] == 2.25 and stats["quantiles"]["p75"] == 4.75
    assert (stats["outliers"]["low"], stats["outliers"]["high"], stats["outliers"]["count"]) == (-1.5, 8.5, 1)
    assert stats["distinct"] == 6 and stats["missing_share"] == 0.0 and stats["skew"] > 2


def test_categorical_shares_and_missing_values():
    stats = describe_column(pd.Series(["a", "a", "b", None]), "categorical", iqr_factor=1.5)
    assert stats["missing_share"] == 0.25 and stats["distinct"] == 2
    assert stats["shares"] == pytest.approx({"a": 2 / 3, "b": 1 / 3})


def test_cramers_v_is_one_for_a_category_that_determines_another_and_near_zero_for_independent_ones():
    a = pd.Series(["x", "y"] * 50)
    assert cramers_v(a, a.map({"x": "p", "y": "q"})) == pytest.approx(1.0)
    assert cramers_v(a, pd.Series(["p", "p", "q", "q"] * 25)) == pytest.approx(0.0)  # 25 of each pair
    assert cramers_v(a, pd.Series(["p"] * 100)) is None  # a constant has no association


def test_separation_and_the_correlation_ratio_by_hand():
    classes = pd.Series([0, 0, 1, 1])
    assert separation(pd.Series([1.0, 2.0, 3.0, 4.0]), classes) == 1.0  # a threshold splits them
    assert separation(pd.Series([1.0, 3.0, 2.0, 4.0]), classes) == 0.5  # AUC 3/4
    # eta: the categories explain all of the variance, then none of it
    assert correlation_ratio(pd.Series(["a", "a", "b", "b"]), pd.Series([1.0, 1.0, 3.0, 3.0])) == 1.0
    assert correlation_ratio(pd.Series(["a", "b", "a", "b"]), pd.Series([1.0, 1.0, 3.0, 3.0])) == 0.0


def test_the_warnings_a_careful_analyst_raises():
    data = frame()
    data["income"] = data["balance"] * 3 + 1  # restates balance
    data["score"] = np.where(np.arange(len(data)) < 4, 1.0, np.nan)
    summary = profile(pd.concat([data, data.head(3)], ignore_index=True), credit_like(), data_version="v1")
    found = {(w["kind"], tuple(w["columns"])): w for w in summary["warnings"]}
    assert ("redundant", ("balance", "income")) in found
    assert ("constant", ("region",)) in found
    assert ("almost_empty", ("score",)) in found and found[("almost_empty", ("score",))]["severity"] == "warning"
    # 10 positives and 3 repeated ones among 203 rows
    assert found[("imbalance", ("default",))]["message"].startswith("the minority class is 6.4% of rows")
    assert "3 exact duplicate rows" in found[("duplicates", ())]["message"]


def test_a_feature_that_nearly_equals_the_target_is_an_error_and_one_kept_out_is_a_note():
    uc = credit_like()
    data = frame()
    data["balance"] = (data["default"] == "Yes").astype(float) * 1000 + np.linspace(0, 1, len(data))
    summary = profile(data, uc, data_version="v1")
    leak = next(w for w in summary["warnings"] if w["kind"] == "leakage")
    assert leak["columns"] == ["balance"] and leak["severity"] == "error"
    assert summary["warnings"][0] == leak  # errors first

    kept_out = credit_like()
    kept_out = kept_out.model_copy(update={"features": ["student", "income", "score"]})
    note = next(w for w in profile(data, kept_out, data_version="v1")["warnings"] if w["kind"] == "leakage")
    assert note["severity"] == "info" and "rightly not a feature" in note["message"]


def test_key_duplicates_and_the_time_view_of_the_bike_data(bike, bike_frame):
    data = pd.concat([bike_frame.head(48), bike_frame.head(2).assign(temp=0.9)], ignore_index=True)
    summary = profile(data, bike, data_version="v1")
    assert summary["duplicates"] == {"exact_rows": 0, "key": ["day", "hr"], "key_rows": 2}
    hours = summary["time"]["by_hour"]
    assert len(hours) == 24 and hours["0"]["rows"] == (data.hr == 0).sum()
    assert hours["0"]["mean"] == pytest.approx(data.loc[data.hr == 0, "bikers"].mean())
    assert set(summary["time"]) >= {"by_hour", "by_weekday", "by_month", "measure"}


def test_an_arrival_time_is_no_clock_time():
    summary = profile(frame().assign(event_time=pd.Timestamp("2026-03-01 10:00")), credit_like(), data_version="v")
    assert "by_hour" not in summary["time"] and summary["time"]["by_month"] == {"2026-03": {"mean": 0.05, "rows": 200}}


def test_nothing_to_analyse_or_a_missing_column_is_a_clear_error():
    with pytest.raises(ValueError, match="no rows to analyse for 'credit_default'"):
        profile(frame().head(0), credit_like(), data_version="v")
    with pytest.raises(ValueError, match=r"lacks columns the use case needs: \['income'\]"):
        profile(frame().drop(columns="income"), credit_like(), data_version="v")


def test_an_eda_key_outside_the_schema_is_refused_at_load():
    data = yaml.safe_load((USECASES / "bike_demand.yaml").read_text())
    broken = copy.deepcopy(data)
    broken["eda"]["key"] = ["day", "minute"]
    with pytest.raises(UseCaseError, match=r"eda.key \['minute'\] are not in schema.columns"):
        parse_use_case(broken, origin="test.yaml", base_dir=USECASES)
    broken = copy.deepcopy(data)
    broken["eda"]["iqr_factor"] = -1
    with pytest.raises(UseCaseError, match=r"eda\.iqr_factor"):
        parse_use_case(broken, origin="test.yaml", base_dir=USECASES)
