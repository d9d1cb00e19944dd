"""Settings shared by every process; each process extends them with its own."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from core.layout import StateLayout

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def default_usecases_dir() -> Path:
    """``./usecases`` when run from a project folder, else the source checkout's (editable installs)."""
    here = Path.cwd() / "usecases"
    return here if here.is_dir() else PROJECT_ROOT / "usecases"


class CommonSettings(BaseSettings):
    """Read from ``MLOPS_*`` environment variables (and ``.env`` when present)."""

    model_config = SettingsConfigDict(env_prefix="MLOPS_", env_file=".env", extra="ignore")

    state_dir: Path = Field(default=Path(".mlops"), description="Root of everything the loop writes.")
    usecases_dir: Path = Field(default_factory=default_usecases_dir, description="Folder of use-case YAML files.")
    tracking_uri: str | None = Field(
        default=None, description="MLflow tracking URI; defaults to SQLite inside the state directory."
    )

    prediction_log_url: str | None = Field(
        default=None, description="SQLAlchemy URL of the prediction log; defaults to SQLite in the state directory."
    )

    startup_timeout_seconds: float = Field(
        default=120, gt=0, description="How long a process waits for MLflow and its databases at start-up."
    )

    @property
    def layout(self) -> StateLayout:
        return StateLayout(self.state_dir.resolve())

    @property
    def resolved_tracking_uri(self) -> str:
        return self.tracking_uri or self.layout.tracking_uri

    @property
    def resolved_prediction_log_url(self) -> str:
        return self.prediction_log_url or self.layout.prediction_log_url
