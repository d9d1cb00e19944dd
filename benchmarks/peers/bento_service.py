"""BentoML serving the benchmark's model: one worker, adaptive batching, the pipeline's own ``predict``.

Started by ``benchmarks.serving`` with ``bentoml serve`` from BentoML's own virtual environment
(``benchmarks/peers/bentoml.txt``); ``MLOPS_PEER_MODEL`` names the pipeline, dumped with joblib
from the registered version. Requests: ``{"records": [record, ...]}``; answers: the values.
"""

from __future__ import annotations

import os
from typing import Any

import bentoml
import joblib
import pandas as pd


@bentoml.service(workers=1)
class BikeDemand:
    def __init__(self) -> None:
        self.model = joblib.load(os.environ["MLOPS_PEER_MODEL"])

    # Requests that arrive together are concatenated into one list and predicted in one call.
    @bentoml.api(batchable=True, max_batch_size=32, max_latency_ms=10_000)
    def predict(self, records: list[dict[str, Any]]) -> list[float]:
        return self.model.predict(pd.DataFrame.from_records(records)).tolist()
