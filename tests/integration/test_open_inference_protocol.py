"""The Open Inference Protocol (v2 REST) spoken by Triton's own client against the real service process."""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx
import numpy as np
import pytest

from pipelines.traffic import running_service
from tests.support.records import BIKE_RECORD

MODEL = "bike-demand"


def _inputs(oip, metadata: dict, records: list[dict]) -> list:
    """One tensor per feature, shaped [n, 1], typed as the model's metadata says."""
    numpy_types = {"INT64": np.int64, "FP64": np.float64, "BYTES": object}
    tensors = []
    for spec in metadata["inputs"]:
        values = np.array([[r[spec["name"]]] for r in records], dtype=numpy_types[spec["datatype"]])
        tensor = oip.InferInput(spec["name"], list(values.shape), spec["datatype"])
        tensor.set_data_from_numpy(values, binary_data=False)
        tensors.append(tensor)
    return tensors


def test_a_triton_client_infers_with_the_answers_of_predict(trained_state: Path, tmp_path: Path, bike):
    import tritonclient.http as oip
    from tritonclient.utils import InferenceServerException

    state = tmp_path / "state"
    shutil.copytree(trained_state, state, ignore=shutil.ignore_patterns("predictions.db*"))
    records = [BIKE_RECORD, {**BIKE_RECORD, "hr": 3}, {**BIKE_RECORD, "weathersit": "light rain/snow"}]
    with running_service(use_case="bike_demand", state_dir=state, log_path=tmp_path / "serve.log") as url:
        expected = [p["value"] for p in httpx.post(f"{url}/predict", json=records).json()["predictions"]]
        client = oip.InferenceServerClient(url=url.removeprefix("http://"))
        assert client.is_server_live() and client.is_server_ready() and client.is_model_ready(MODEL)
        metadata = client.get_model_metadata(MODEL)
        assert [i["name"] for i in metadata["inputs"]] == list(bike.features) and metadata["versions"] == ["1"]
        assert {i["name"]: i["datatype"] for i in metadata["inputs"]}["hr"] == "INT64"
        outputs = [oip.InferRequestedOutput("predictions", binary_data=False)]

        answer = client.infer(MODEL, _inputs(oip, metadata, records), outputs=outputs, request_id="oip-1")
        assert answer.as_numpy("predictions").tolist() == expected
        assert answer.get_response()["model_version"] == "1" and answer.get_response()["id"] == "oip-1"
        pinned = client.infer(MODEL, _inputs(oip, metadata, records), model_version="1", outputs=outputs)
        assert pinned.as_numpy("predictions").tolist() == expected
        logged = httpx.post(f"{url}/feedback", json={"labels": [{"id": "oip-1/0", "label": 40}]}).json()
        assert logged["accepted"] == 1  # logged like any prediction, under its request id

        with pytest.raises(InferenceServerException, match="version 99 is not served"):
            client.infer(MODEL, _inputs(oip, metadata, records), model_version="99")
        with pytest.raises(InferenceServerException, match="no model 'other'"):
            client.get_model_metadata("other")
        out_of_range = [{**BIKE_RECORD, "hr": 24}]
        with pytest.raises(InferenceServerException, match="hr: Input should be less than or equal to 23"):
            client.infer(MODEL, _inputs(oip, metadata, out_of_range))
        client.close()
