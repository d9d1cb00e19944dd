"""Use-case YAML: the declarative contract of a dataset, and its error messages."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from core.usecase import UseCaseError, load_use_case, parse_use_case
from tests.conftest import USECASES


def _bike_dict() -> dict:
    return yaml.safe_load((USECASES / "bike_demand.yaml").read_text())


def _parse(data: dict):
    return parse_use_case(data, origin="test.yaml", base_dir=USECASES)


def test_shipped_use_cases_load(bike, credit):
    assert bike.task == "regression" and bike.target == "bikers"
    assert "casual" not in bike.features and "registered" not in bike.features
    assert credit.task == "classification" and credit.positive_class == "Yes"
    assert Path(bike.resolve_source()).is_file() and Path(credit.resolve_source()).is_file()


def test_unknown_use_case_lists_known_ones(tmp_path):
    with pytest.raises(UseCaseError, match=r"unknown use case 'nope'.*bike_demand"):
        load_use_case("nope", usecases_dir=USECASES)


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda d: d["schema"]["columns"]["temp"].update(min="cold"), "schema.columns.temp.min"),
        (lambda d: d["schema"]["columns"]["hr"].update(type="integer"), "schema.columns.hr.type"),
        (lambda d: d.pop("target"), "target"),
        (lambda d: d["promotion"].update(margin=2), "promotion.margin"),
        (lambda d: d.update(colour="blue"), "colour"),
        (lambda d: d["event_time"].update(kind="sundial"), "event_time"),
        (lambda d: d["monitoring"].update(drift_share=0), "monitoring.drift_share"),
    ],
)
def test_malformed_yaml_names_the_field(mutate, field):
    data = _bike_dict()
    mutate(data)
    with pytest.raises(UseCaseError) as err:
        _parse(data)
    assert field in str(err.value)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d["features"].append("ghost"), "features ['ghost'] are not in schema.columns"),
        (lambda d: d["features"].append("bikers"), "must not be a feature"),
        (lambda d: d.update(metrics=["roc_auc"]), "does not fit task"),
        (lambda d: d["training"]["candidates"].update(svm={}), "unknown algorithms ['svm']"),
        (lambda d: d["schema"]["columns"]["temp"].update(min=2, max=1), "greater than max"),
        (lambda d: d["event_time"].update(day_column="dayz"), "event_time.day_column 'dayz'"),
    ],
)
def test_inconsistent_use_case_is_explained(mutate, message):
    data = _bike_dict()
    mutate(data)
    with pytest.raises(UseCaseError, match="malformed") as err:
        _parse(data)
    assert message in str(err.value)


def test_invalid_yaml_syntax(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("name: [unclosed\n")
    with pytest.raises(UseCaseError, match="not valid YAML"):
        load_use_case(path, usecases_dir=tmp_path)


def test_new_dataset_needs_only_a_yaml(tmp_path):
    """A third dataset: one YAML, no code. It loads and derives its features."""
    (tmp_path / "data.csv").write_text("ts,x,colour,y\n2024-01-01,1.0,red,2.0\n")
    (tmp_path / "toy.yaml").write_text(
        yaml.safe_dump(
            {
                "name": "toy",
                "task": "regression",
                "model_name": "toy-model",
                "source": {"uri": "data.csv"},
                "schema": {
                    "columns": {
                        "ts": {"type": "datetime"},
                        "x": {"type": "float"},
                        "colour": {"type": "category", "categories": ["red", "blue"]},
                        "y": {"type": "float"},
                    }
                },
                "target": "y",
                "features": ["x", "colour"],
                "event_time": {"kind": "column", "column": "ts"},
                "metrics": ["rmse"],
                "promotion": {"metric": "rmse", "margin": 0.01},
                "validation": {"suite_name": "toy"},
                "training": {"candidates": {"ridge": {"alpha": [1.0]}}},
                "monitoring": {"drift_share": 0.5},
            }
        )
    )
    uc = load_use_case("toy", usecases_dir=tmp_path)
    assert uc.numeric_features == ["x"] and uc.categorical_features == ["colour"]
    assert uc.resolve_source() == str(tmp_path / "data.csv")


def _weekly(**event_time) -> dict:
    """A weekly dataset in the shape of ISLR's `Weekly`: a year column, lags, a direction."""
    return {
        "name": "weekly",
        "task": "classification",
        "model_name": "weekly",
        "source": {"uri": "weekly.csv"},
        "schema": {
            "columns": {
                "Year": {"type": "int", "min": 1990, "max": 2010},
                "Lag1": {"type": "float"},
                "Stamp": {"type": "datetime", "nullable": True},
                "Direction": {"type": "category", "categories": ["Down", "Up"]},
            }
        },
        "target": "Direction",
        "positive_class": "Up",
        "features": ["Lag1"],
        "event_time": {"kind": "column", "column": "Year", **event_time},
        "metrics": ["roc_auc"],
        "promotion": {"metric": "roc_auc", "margin": 0.01},
        "validation": {"suite_name": "weekly"},
        "training": {"candidates": {"logistic_regression": {"C": [1.0]}}},
        "monitoring": {"drift_share": 0.5},
    }


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (_weekly(), "event_time.format is needed: 'Year' is a int column"),
        (_weekly(format="%Y") | {"features": ["Lag1", "Stamp"]}, "features ['Stamp'] are datetime columns"),
        (_weekly(format="%Y", step="-7D"), "is not a positive duration"),
        (_weekly(format="%Y") | {"deduplication": {"key": ["Week"]}}, "deduplication.key ['Week'] are not in"),
    ],
)
def test_what_the_loop_cannot_use_is_refused_at_load_naming_the_field(data, message):
    with pytest.raises(UseCaseError) as err:
        _parse(data)
    assert message in str(err.value)


def test_a_year_with_a_format_and_a_weekly_step_is_an_event_time():
    uc = _parse(_weekly(format="%Y", step="7D") | {"deduplication": {"key": ["event_time"]}})
    assert uc.event_time.format == "%Y" and uc.event_time.step == "7D" and uc.deduplication.key == ["event_time"]


def test_the_shipped_yaml_schema_is_the_generated_one_and_every_shipped_use_case_fits_it():
    """usecases/usecase.schema.json is what editors validate YAML with: never stale, never too strict."""
    import json

    import jsonschema
    import yaml

    from core.usecase import yaml_schema

    shipped = json.loads((USECASES / "usecase.schema.json").read_text())
    assert shipped == yaml_schema(), "run `mlops usecase schema --out usecases/usecase.schema.json`"
    validator = jsonschema.Draft202012Validator(shipped)
    for path in USECASES.glob("*.yaml"):
        assert path.read_text().startswith("# yaml-language-server: $schema=./usecase.schema.json")
        assert list(validator.iter_errors(yaml.safe_load(path.read_text()))) == [], path.name
    broken = yaml.safe_load((USECASES / "bike_demand.yaml").read_text())
    broken["task"] = "clustering"
    broken["training"]["colour"] = "red"
    problems = {e.json_path for e in validator.iter_errors(broken)}
    assert problems == {"$.task", "$.training"}
