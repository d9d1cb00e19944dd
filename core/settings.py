"""Settings shared by every process; each process extends them with its own."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import Field
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from core.layout import StateLayout

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def default_usecases_dir() -> Path:
    """``./usecases`` when run from a project folder, else the source checkout's (editable installs)."""
    here = Path.cwd() / "usecases"
    return here if here.is_dir() else PROJECT_ROOT / "usecases"


def read_secret_file(path: str) -> str:
    """A secret's value from its file. A trailing newline is an artefact of `echo` and of editors,
    never part of a secret. OSError when the file cannot be read."""
    return Path(path).read_text().rstrip("\r\n")


class SecretFileError(ValueError):
    """A ``*_FILE`` variable that cannot be used: both forms set, or a file that cannot be read."""


class SecretFiles(PydanticBaseSettingsSource):
    """``MLOPS_<SETTING>_FILE=/path``: the setting's value read from that file.

    Docker and Kubernetes hand secrets to a container as files (``/run/secrets/...``), which keeps
    them out of ``docker inspect`` and of the process environment. Any setting may come this way;
    setting both forms is an error rather than a silent precedence.
    """

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:  # pragma: no cover
        return None, field_name, False  # unused: __call__ reads every field at once

    def __call__(self) -> dict[str, Any]:
        prefix = self.config.get("env_prefix", "")
        values: dict[str, Any] = {}
        for name in self.settings_cls.model_fields:
            variable = f"{prefix}{name}".upper()
            path = os.environ.get(f"{variable}_FILE")
            if path is None:
                continue
            if variable in os.environ:
                raise SecretFileError(f"both {variable} and {variable}_FILE are set: keep one")
            try:
                values[name] = read_secret_file(path)
            except OSError as err:
                raise SecretFileError(f"{variable}_FILE={path} cannot be read: {err.strerror}") from None
        return values


class CommonSettings(BaseSettings):
    """Read from ``MLOPS_*`` environment variables, ``MLOPS_*_FILE`` files (secrets) and ``.env``."""

    model_config = SettingsConfigDict(env_prefix="MLOPS_", env_file=".env", extra="ignore")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, env_settings, SecretFiles(settings_cls), dotenv_settings, file_secret_settings

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
