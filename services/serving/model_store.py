"""Model versions loaded from the registry, cached by version, loaded off the request path."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import pandas as pd

from core.usecase import UseCase
from models.metrics import model_output
from models.registry import CHAMPION, PREVIOUS


class ModelUnavailable(RuntimeError):
    """No model can be served; the message says why (no champion yet, load failure...)."""


@dataclass(frozen=True)
class LoadedModel:
    name: str
    version: str
    model: Any
    loaded_at: float

    def predict(self, frame: pd.DataFrame, use_case: UseCase) -> np.ndarray:
        return model_output(self.model, frame, use_case.task)


class ModelSource(Protocol):
    """The registry as the service needs it."""

    def alias_version(self, name: str, alias: str) -> str | None: ...
    def load_version(self, name: str, version: str) -> LoadedModel: ...
    def record_promotion(self, name: str, *, new: str, old: str | None) -> None: ...


class RegistryModelSource:
    """The MLflow registry. Aliases are resolved to versions; versions are what the service loads."""

    def __init__(self, *, tracking_uri: str) -> None:
        self._tracking_uri = tracking_uri

    def _registry(self) -> Any:
        from models.registry import MlflowRegistry

        return MlflowRegistry(tracking_uri=self._tracking_uri)

    def alias_version(self, name: str, alias: str) -> str | None:
        ref = self._registry().by_alias(name, alias)
        return ref.version if ref else None

    def load_version(self, name: str, version: str) -> LoadedModel:
        try:
            model = self._registry().load(name, version)
        except Exception as err:  # any load failure keeps the old model serving
            raise ModelUnavailable(f"model '{name}' v{version} failed to load: {type(err).__name__}: {err}") from err
        return LoadedModel(name=name, version=version, model=model, loaded_at=time.time())

    def record_promotion(self, name: str, *, new: str, old: str | None) -> None:
        registry = self._registry()
        if old is not None and old != new:
            registry.set_alias(name, PREVIOUS, old)
        registry.set_alias(name, CHAMPION, new)


class ModelCache:
    """Loaded versions by number. Loading happens in a worker thread; a version loads once."""

    def __init__(self, source: ModelSource, *, name: str) -> None:
        self._source = source
        self._name = name
        self._models: dict[str, LoadedModel] = {}
        self._failed: dict[str, str] = {}
        self._lock = asyncio.Lock()

    def get(self, version: str) -> LoadedModel | None:
        return self._models.get(version)

    async def ensure(self, version: str, *, retry_failed: bool = False) -> LoadedModel:
        if (model := self._models.get(version)) is not None:
            return model
        if version in self._failed and not retry_failed:
            raise ModelUnavailable(self._failed[version])
        async with self._lock:
            if (model := self._models.get(version)) is not None:
                return model
            try:
                model = await asyncio.to_thread(self._source.load_version, self._name, version)
            except ModelUnavailable as err:
                self._failed[version] = str(err)
                raise
            self._failed.pop(version, None)
            self._models[version] = model
            return model

    def retain(self, versions: set[str]) -> None:
        """Release every version not in ``versions`` (a dict swap: readers holding a model keep it)."""
        self._models = {v: m for v, m in self._models.items() if v in versions}

    @property
    def loaded(self) -> list[str]:
        return sorted(self._models, key=lambda v: int(v) if v.isdigit() else 0)
