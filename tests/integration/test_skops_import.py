"""skops imported the serving way (no estimator walk) still loads our models, and refuses foreign types."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
from skops.io import dumps

from models.frames import coerce_features
from models.training import make_pipeline
from tests.conftest import ROOT

# A fresh interpreter, as `mlops serve` starts: skops imported through import_skops, then a model loaded.
LOAD = """
import json, sys
import pandas as pd
from models.serialization import UntrustedModelError, import_skops, load_skops
import sklearn.utils
original = sklearn.utils.all_estimators
import_skops()
model = load_skops(open(sys.argv[1], "rb").read())
try:
    load_skops(open(sys.argv[2], "rb").read())
    foreign = "loaded"
except UntrustedModelError as err:
    foreign = str(err)
frame = pd.read_json(sys.argv[3], orient="split")
print(json.dumps({
    "predictions": model.predict(frame).tolist(),
    # scikit-learn modules no model of ours needs, which the walk imports
    "walked": [m for m in ("sklearn.datasets", "sklearn.gaussian_process") if m in sys.modules],
    "restored": sklearn.utils.all_estimators is original,
    "foreign": foreign,
}))
"""


class Foreign:
    """A type outside the trusted prefixes (this test module)."""


def test_a_model_loads_without_the_estimator_walk_and_foreign_types_are_refused(bike, bike_frame, tmp_path):
    frame = bike_frame.head(2000)
    X = coerce_features(frame, bike)
    model = make_pipeline(bike, "hist_gradient_boosting").set_params(model__max_iter=10).fit(X, frame[bike.target])
    (tmp_path / "model.skops").write_bytes(dumps(model))
    (tmp_path / "foreign.skops").write_bytes(dumps({"model": model, "extra": Foreign()}))
    sample = X.head(50)
    sample.to_json(tmp_path / "sample.json", orient="split")

    out = subprocess.run(
        [sys.executable, "-c", LOAD, *(str(tmp_path / f) for f in ("model.skops", "foreign.skops", "sample.json"))],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert out.returncode == 0, out.stderr[-2000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert np.array_equal(np.asarray(got["predictions"]), model.predict(sample))
    assert got["walked"] == []
    assert got["restored"] is True
    assert "outside" in got["foreign"] and "test_skops_import.Foreign" in got["foreign"]
