"""One way to read a registered version: the pipelines and the service refuse the same untrusted model.

A model file can list any type as trusted in its MLmodel (MLflow's own loader trusts that list);
the project decides from its own rule (models.serialization) wherever a version is read.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.linear_model import LinearRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from models.registry import MlflowRegistry
from models.serialization import UntrustedModelError
from services.serving.model_store import ModelUnavailable, RegistryModelSource, load_pipeline


def test_a_version_holding_a_type_outside_the_rule_is_refused_by_every_loader(tmp_path):
    import mlflow.sklearn
    from skops.io import dumps, get_untrusted_types

    X, y = np.arange(20.0).reshape(-1, 1), np.arange(20.0)
    smuggled = Pipeline([("f", FunctionTransformer(np.vectorize(math.sqrt))), ("m", LinearRegression())]).fit(X, y)
    listed = get_untrusted_types(data=dumps(smuggled))
    assert listed and not all(t.startswith(("sklearn.", "numpy.", "models.")) for t in listed)

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    registry = MlflowRegistry(tracking_uri=uri, artifact_root=tmp_path / "artifacts")
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)  # process-wide: an earlier test may have pointed it elsewhere
    experiment = mlflow.create_experiment("trust", artifact_location=(tmp_path / "artifacts").as_uri())
    with mlflow.start_run(experiment_id=experiment):
        # the file lists its own types as trusted, as anyone's model file can
        mlflow.sklearn.log_model(
            smuggled,
            name="model",
            registered_model_name="smuggler",
            serialization_format="skops",
            skops_trusted_types=listed,
        )

    with pytest.raises(UntrustedModelError, match="outside"):
        registry.load("smuggler", "1")  # the pipelines' loader
    with pytest.raises(ModelUnavailable, match="UntrustedModelError"):
        load_pipeline(RegistryModelSource(tracking_uri=uri), "smuggler", "1")  # the service's
