"""The training flow against a real MLflow registry (SQLite): tracking, registration, promotion rule."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from mlflow import MlflowClient

from core.layout import StateLayout
from models.compiled import ARTIFACT_NAME, ATOL, RTOL, CompiledModel
from models.frames import feature_frame
from models.registry import CHALLENGER, CHAMPION, MlflowRegistry
from pipelines.train import train_flow
from tests.support.records import json_records


def _client(root: Path) -> MlflowClient:
    return MlflowClient(tracking_uri=StateLayout(root).tracking_uri, registry_uri=StateLayout(root).tracking_uri)


def test_first_model_is_champion_with_everything_logged(trained_state: Path):
    client = _client(trained_state)
    mv = client.get_model_version_by_alias("bike-demand", CHAMPION)
    assert str(mv.version) == "1"
    assert mv.tags["promotion_verdict"] == "champion" and "first model" in mv.tags["promotion_reason"]
    run = client.get_run(mv.run_id)
    assert {"test_rmse", "test_mae", "test_r2"} <= set(run.data.metrics)
    assert {"cv_ridge", "cv_random_forest", "cv_hist_gradient_boosting"} <= set(run.data.metrics)
    assert len(run.data.tags["data_version"]) == 16 and run.data.params["algorithm"]
    # time-ordered windows, recorded on the run
    assert run.data.tags["split_train_end"] < run.data.tags["split_validation_start"]
    assert run.data.tags["split_validation_end"] < run.data.tags["split_test_start"]
    artifacts = {a.path for a in client.list_artifacts(mv.run_id, "plots")}
    assert artifacts == {"plots/predicted_vs_actual.png", "plots/feature_importance.png", "plots/shapley_summary.png"}
    # the exploratory analysis of the data version it trained on, in the state directory and on the run
    version = run.data.tags["data_version"]
    assert {a.path for a in client.list_artifacts(mv.run_id, "eda")} == {f"eda/{version}.html", f"eda/{version}.json"}
    summary = json.loads((StateLayout(trained_state).reports / "bike_demand" / "eda" / f"{version}.json").read_text())
    assert summary["data_version"] == version and summary["rows"] > 1000
    assert any(w["kind"] == "redundant" and w["columns"] == ["temp", "atemp"] for w in summary["warnings"])
    # artifacts live inside the state directory, never in the working directory
    assert str(trained_state.resolve()) in client.get_experiment(run.info.experiment_id).artifact_location


def test_the_registered_model_carries_its_features_and_signature(trained_state: Path, bike, bike_frame):
    registry = MlflowRegistry(tracking_uri=StateLayout(trained_state).tracking_uri)
    model = registry.load("bike-demand", "1")
    july = bike_frame[bike_frame.mnth == "July"].head(5)
    predictions = model.predict(july[bike.features])  # raw columns in: preprocessing is inside the model
    assert predictions.shape == (5,)
    reference = registry.reference(registry.get("bike-demand", "1"))
    assert {"prediction", "target", *bike.features} <= set(reference.columns) and len(reference) > 1000


def test_a_model_that_does_not_beat_the_champion_gets_no_alias(trained_state: Path):
    """Same data, same seed: the new candidate ties the champion, which is not enough."""
    result = train_flow(use_case="bike_demand", state_dir=str(trained_state))
    assert result["decision"]["verdict"] == "rejected"
    assert "does not beat champion" in result["decision"]["reason"]
    client = _client(trained_state)
    assert str(client.get_model_version_by_alias("bike-demand", CHAMPION).version) == "1"
    assert CHALLENGER not in client.get_registered_model("bike-demand").aliases
    assert client.get_model_version("bike-demand", result["version"]).tags["compared_with_champion"] == "1"


def test_the_registered_model_carries_its_compiled_form_which_answers_as_it_does(trained_state: Path, bike, bike_frame):
    registry = MlflowRegistry(tracking_uri=StateLayout(trained_state).tracking_uri)
    compiled = CompiledModel.from_bytes(registry.model_file("bike-demand", "1", f"extra_files/{ARTIFACT_NAME}"))
    july = json_records(bike_frame[bike_frame.mnth == "July"].head(50), bike)
    want = registry.load("bike-demand", "1").predict(feature_frame(july, bike))
    np.testing.assert_allclose(compiled.output(july), want, rtol=RTOL, atol=ATOL)


@pytest.mark.slow
def test_feature_sets_are_compared_as_child_runs_of_the_training_run(bootstrap_file: Path, tmp_path: Path):
    from pipelines.ingest import ingest_flow

    state = tmp_path / "state"
    ingest_flow(source=str(bootstrap_file), use_case="bike_demand", state_dir=str(state))
    result = train_flow(use_case="bike_demand", state_dir=str(state), compare_feature_sets=True)
    table = {row["set"]: row for row in result["feature_sets"]}
    assert list(table) == ["all", "without clock", "without day_type", "without weather", "top 4"]
    assert table["without clock"]["change_vs_all"] > 0  # demand follows the hour: without it, RMSE grows

    client = _client(state)
    children = client.search_runs(
        [client.get_run(result["run_id"]).info.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{result['run_id']}'",
    )
    assert {c.data.params["feature_set"] for c in children} == set(table)
    assert {round(c.data.metrics["cv_rmse"], 6) for c in children} == {round(r["cv_mean"], 6) for r in table.values()}
    artifacts = {a.path for a in client.list_artifacts(result["run_id"], "feature_selection")}
    assert artifacts == {"feature_selection/feature_sets.md", "feature_selection/feature_sets.json"}


def test_every_version_has_a_model_card_on_its_run_and_in_the_state_directory(trained_state: Path):
    from pipelines.train import card_paths, fetch_card

    markdown, page = fetch_card("bike_demand", state_dir=str(trained_state))  # the champion's
    assert (markdown, page) == card_paths(StateLayout(trained_state), "bike_demand", "1")
    card = markdown.read_text()
    assert card.startswith("# Model card: bike-demand v1")
    for section in (
        "## Intended use",
        "## Data",
        "## Metrics on the test window (95 % bootstrap intervals",
        "## Fairness: per group",
        "## Most important features",
        "## Limitations",
        "## Promotion",
    ):
        assert section in card, section  # fmt: skip
    assert "| rmse |" in card and "Verdict: champion." in card
    assert "redundant: 'temp' and 'atemp' restate each other" in card  # a limitation from the EDA
    assert "<h2>Fairness: per group</h2>" in page.read_text()

    # on a machine that did not train it, the card comes from the run in MLflow
    client = _client(trained_state)
    run_id = client.get_model_version("bike-demand", "1").run_id
    assert {a.path for a in client.list_artifacts(run_id, "card")} == {"card/v1.md", "card/v1.html"}
    markdown.unlink()
    page.unlink()
    assert fetch_card("bike_demand", "1", state_dir=str(trained_state))[0].read_text() == card


def test_a_version_registered_with_a_calibration_loads_answering_calibrated(credit, tmp_path: Path):
    import pandas as pd

    from models.calibration import Calibration
    from models.frames import coerce_features, target_vector
    from models.metrics import model_output
    from models.registry import TrainingRecord
    from models.training import make_pipeline
    from tests.conftest import DATA

    data = pd.read_csv(DATA / "Default.csv").head(2000)
    X, y = coerce_features(data, credit), target_vector(data, credit)
    model = make_pipeline(credit, "logistic_regression").fit(X, y)
    calibration = Calibration("isotonic", knots_x=(0.0, 0.05, 1.0), knots_y=(0.0, 0.2, 0.9))
    layout = StateLayout(tmp_path)
    registry = MlflowRegistry(tracking_uri=layout.tracking_uri, artifact_root=layout.mlflow_artifacts)
    record = TrainingRecord(
        experiment="calibrated",
        model_name="calibrated-credit",
        model=model,
        params={},
        metrics={},
        tags={},
        input_example=X.head(3),
        reference=X.head(3).assign(prediction=0.1, target=0),
        artifacts=[],
        pip_requirements=["scikit-learn"],
        decision={"threshold": 0.2, "rule": "test", "calibration": calibration.as_dict()},
    )
    ref = registry.log_and_register(record)
    # what scores the version in-process (the champion on a new window, monitoring) sees what the service serves
    loaded = registry.load("calibrated-credit", ref.version)
    np.testing.assert_allclose(
        model_output(loaded, X, "classification"), calibration.apply(model.predict_proba(X)[:, 1]), rtol=1e-12
    )
