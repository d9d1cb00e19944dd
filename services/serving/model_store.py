"""Loading the served model from the registry, and swapping it atomically on reload."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import pandas as pd

from core.usecase import UseCase
from models.metrics import model_output
from models.registry import CHAMPION


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
    def load(self, name: str, alias: str) -> LoadedModel: ...


class RegistryModelSource:
    """Resolves an alias to a version first, then loads that exact version (no race with a moving alias)."""

    def __init__(self, *, tracking_uri: str) -> None:
        self._tracking_uri = tracking_uri

    def load(self, name: str, alias: str) -> LoadedModel:
        from models.registry import MlflowRegistry

        registry = MlflowRegistry(tracking_uri=self._tracking_uri)
        ref = registry.by_alias(name, alias)
        if ref is None:
            raise ModelUnavailable(f"registry has no '{alias}' for model '{name}' yet: train one (mlops train)")
        try:
            model = registry.load(name, ref.version)
        except Exception as err:  # any load failure keeps the old model serving
            raise ModelUnavailable(
                f"model '{name}' v{ref.version} failed to load: {type(err).__name__}: {err}"
            ) from err
        return LoadedModel(name=name, version=ref.version, model=model, loaded_at=time.time())


class ModelStore:
    """Holds the current model. Readers take a reference; reload swaps it in one assignment."""

    def __init__(self, source: ModelSource, *, name: str) -> None:
        self._source = source
        self._name = name
        self._current: LoadedModel | None = None
        self.last_error: str | None = "not loaded yet"
        self._lock = asyncio.Lock()

    @property
    def current(self) -> LoadedModel:
        model = self._current
        if model is None:
            raise ModelUnavailable(self.last_error or "no model loaded")
        return model

    @property
    def ready(self) -> bool:
        return self._current is not None

    async def reload(self, alias: str = CHAMPION) -> LoadedModel:
        """Load in a worker thread (the event loop keeps serving), then swap. A failure keeps the old model."""
        async with self._lock:
            try:
                loaded = await asyncio.to_thread(self._source.load, self._name, alias)
            except ModelUnavailable as err:
                self.last_error = str(err)
                raise
            self._current = loaded
            self.last_error = None
            return loaded
