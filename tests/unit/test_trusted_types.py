"""A model file may only hold types of the project, scikit-learn and NumPy beyond skops's defaults."""

from __future__ import annotations

import pytest

from models.serialization import UntrustedModelError, trusted_types


def test_the_project_and_scikit_learn_types_are_trusted():
    listed = ["models.features.CyclicalEncoder", "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor"]
    assert trusted_types([*listed, "numpy.dtype"]) == [*listed, "numpy.dtype"]


@pytest.mark.parametrize("smuggled", ["builtins.eval", "os.system", "subprocess.Popen", "sklearnx.Evil"])
def test_a_model_holding_any_other_type_is_refused(smuggled):
    with pytest.raises(UntrustedModelError, match="outside"):
        trusted_types(["numpy.dtype", smuggled])
