"""Composition root of a pipeline process: builds the adapters the flows use, once."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from core.layout import StateLayout
from core.telemetry import disable_telemetry
from core.usecase import UseCase, load_use_case
from models.registry import MlflowRegistry
from pipelines.settings import PipelineSettings
from pipelines.storage import DataLake


@dataclass
class Runtime:
    settings: PipelineSettings

    @classmethod
    def from_env(cls, *, state_dir: str | Path | None = None) -> Runtime:
        disable_telemetry()
        overrides = {"state_dir": Path(state_dir)} if state_dir else {}
        return cls(PipelineSettings(**overrides))

    @property
    def layout(self) -> StateLayout:
        return self.settings.layout.ensure()

    def use_case(self, name: str) -> UseCase:
        return load_use_case(name, usecases_dir=self.settings.usecases_dir)

    @cached_property
    def lake(self) -> DataLake:
        return DataLake(self.layout)

    @cached_property
    def registry(self) -> MlflowRegistry:
        uri = self.settings.resolved_tracking_uri
        # A tracking server stores artifacts itself (proxied, `mlflow-artifacts:`), where every
        # process can read them; only a local store needs a folder of ours.
        remote = uri.startswith(("http://", "https://"))
        return MlflowRegistry(tracking_uri=uri, artifact_root=None if remote else self.layout.mlflow_artifacts)

    @cached_property
    def validator(self):
        from pipelines.validation import GxValidator

        return GxValidator(context_root=self.layout.gx, docs_dir=self.layout.data_docs)


_RUNTIMES: dict[str, Runtime] = {}


def get_runtime(state_dir: str | None = None) -> Runtime:
    """One runtime per state directory and process: adapters are built once, then reused by every flow run."""
    key = str(Path(state_dir).resolve()) if state_dir else ""
    if key not in _RUNTIMES:
        _RUNTIMES[key] = Runtime.from_env(state_dir=state_dir)
    return _RUNTIMES[key]
