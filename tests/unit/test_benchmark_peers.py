"""The serving benchmark's peers: each is asked in its own protocol and its answer read back."""

from __future__ import annotations

import json

from benchmarks.peers import Peer

RECORD = {"hr": 17, "weathersit": "clear", "temp": 0.4}


def _peer(name: str) -> Peer:
    return Peer(name=name, command=[], env={}, probe="", url="")


def test_mlserver_gets_one_typed_tensor_per_column_decoded_as_a_data_frame():
    body = json.loads(_peer("mlserver").body(RECORD))
    assert body["parameters"] == {"content_type": "pd"}
    assert body["inputs"] == [
        {"name": "hr", "shape": [1], "datatype": "INT64", "data": [17]},
        {"name": "weathersit", "shape": [1], "datatype": "BYTES", "data": ["clear"]},
        {"name": "temp", "shape": [1], "datatype": "FP64", "data": [0.4]},
    ]
    assert _peer("mlserver").values({"outputs": [{"name": "predict", "data": [212.5]}]}) == [212.5]


def test_bentoml_gets_the_records_of_its_batchable_api_and_answers_a_list():
    assert json.loads(_peer("bentoml").body(RECORD)) == {"records": [RECORD]}
    assert _peer("bentoml").values([212.5]) == [212.5]
