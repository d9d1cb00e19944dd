"""Settings of a pipeline process (CLI, Prefect worker, demo)."""

from __future__ import annotations

from pydantic import Field

from core.settings import CommonSettings


class PipelineSettings(CommonSettings):
    serving_url: str | None = Field(
        default=None, description="Base URL of the serving service to tell about a new champion."
    )
    admin_token: str = Field(default="dev-admin-token", description="Token for the service's admin endpoints.")
    auto_retrain: bool = Field(default=True, description="Start the retraining flow when monitoring finds drift.")
