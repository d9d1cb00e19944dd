"""Switch off the usage reporting of every dependency before it can phone home."""

from __future__ import annotations

import os

# Each switch was verified against the pinned stack (see README, "Telemetry").
# MLflow only honours DO_NOT_TRACK when it is exactly "true".
TELEMETRY_OFF: dict[str, str] = {
    "DO_NOT_TRACK": "true",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "GX_ANALYTICS_ENABLED": "false",
}


def disable_telemetry() -> None:
    """Set the off switches unless the operator has set them explicitly."""
    for key, value in TELEMETRY_OFF.items():
        os.environ.setdefault(key, value)
