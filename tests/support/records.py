"""Prediction records shared by the tests and the load generator."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the load generator imports this module in a process of its own: keep it light
    import pandas as pd

    from core.usecase import UseCase


BIKE_RECORD = {
    "hr": 8,
    "weekday": 2,
    "workingday": 1,
    "holiday": 0,
    "weathersit": "clear",
    "temp": 0.5,
    "atemp": 0.48,
    "hum": 0.6,
    "windspeed": 0.2,
}


def json_records(frame: pd.DataFrame, use_case: UseCase) -> list[dict[str, Any]]:
    """The frame's features as the service receives them: one dict per row, plain Python values."""
    return [
        {k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()}
        for row in frame[use_case.features].to_dict("records")
    ]
