"""A model file may only ask skops to trust types of the project, scikit-learn and NumPy."""

from __future__ import annotations

import pytest

from services.serving.model_store import ModelUnavailable, trusted_types


def test_the_project_and_scikit_learn_types_are_trusted():
    listed = ["models.features.CyclicalEncoder", "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor"]
    assert trusted_types([*listed, "numpy.dtype"]) == [*listed, "numpy.dtype"]


@pytest.mark.parametrize("smuggled", ["builtins.eval", "os.system", "subprocess.Popen", "sklearnx.Evil"])
def test_a_model_cannot_widen_the_trust_by_listing_a_type(smuggled):
    with pytest.raises(ModelUnavailable, match="outside"):
        trusted_types(["numpy.dtype", smuggled])
