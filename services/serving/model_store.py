"""Model versions loaded from the registry, cached by version, loaded off the request path.

A registered version holds the scikit-learn pipeline (a skops file) and, when it compiled, the
same model as NumPy arrays (``extra_files/compiled_model.npz``, ``models.compiled``). The
service serves the compiled model, which it loads with NumPy alone: a process whose versions
all compiled starts without scikit-learn, SciPy, pandas or skops. A version without one (not
compilable, or registered before it existed) is served through its pipeline, compiled at load
when that reproduces it. With ``MLOPS_NATIVE_TREE_WALK``, a tree model's pipeline is loaded
too (in the background when the service has nothing to serve yet), so that large batches go
through scikit-learn's compiled tree walk, at the price of scikit-learn's memory (``ModelCache``).

Two ways to the registry's files, one port (``ModelSource``):
- ``RestModelSource`` talks to an MLflow tracking server over its REST API (the compose
  stack, production). The serving process then never imports MLflow, whose client costs
  more than a second of start-up.
- ``RegistryModelSource`` uses the MLflow client, for a tracking URI that is a database or a
  folder (the laptop demo), where there is no server to ask.

Both hand the files to the same readers (``models.registered``), which the pipelines' registry
uses too: one way to read a version, one trust rule (``models.serialization``).
``model_source_for`` picks a source.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import logging
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol, TypeVar
from urllib.parse import quote, unquote, urlencode, urlparse

import numpy as np

from core.startup import redact
from core.usecase import UseCase
from models.calibration import Calibration
from models.compiled import ARTIFACT_NAME, CompiledModel, InvalidCompiledModel
from models.metrics import model_output
from models.promotion import AliasRegistry
from models.registered import (
    DamagedVersion,
    extra_file,
    read_background,
    read_decision,
    read_pipeline,
    sklearn_flavor,
)

log = logging.getLogger(__name__)
T = TypeVar("T")


class ModelUnavailable(RuntimeError):
    """No model can be served; the message says why (no champion yet, load failure...)."""


@dataclass(frozen=True)
class LoadedModel:
    """A version as served: its compiled model, its pipeline, or both (a tree model, once complete)."""

    name: str
    version: str
    loaded_at: float
    compiled: CompiledModel | None = None
    pipeline: Any = None  # the scikit-learn model, when loaded
    threshold: float = 0.5  # a classifier's decision threshold, as registered with the version
    calibration: Calibration | None = None  # of a classifier's probabilities, as registered with the version
    background: tuple[dict[str, Any], ...] = ()  # training rows for explanations (none: registered without)

    def predict(self, records: Sequence[Mapping[str, Any]], use_case: UseCase) -> np.ndarray:
        if self.compiled is not None:
            output = self.compiled.output(records)
        else:
            from models.frames import feature_frame  # pandas: only for a version served through its pipeline

            output = model_output(self.pipeline, feature_frame(records, use_case), use_case.task)
        return output if self.calibration is None else self.calibration.apply(output)

    def compile(self, use_case: UseCase) -> LoadedModel:
        """This version with the compiled model, or as it is when compiling is refused (logged)."""
        from models.compiler import NotCompilable, compile_model

        try:
            compiled = compile_model(self.pipeline, use_case)
        except NotCompilable as err:
            log.warning("model '%s' v%s is served through its own pipeline: %s", self.name, self.version, err)
            return self
        log.info("model '%s' v%s is served through the compiled pipeline", self.name, self.version)
        return replace(self, compiled=compiled)


class ModelSource(Protocol):
    """The registry as the service needs it."""

    def alias_version(self, name: str, alias: str) -> str | None: ...
    def read_file(self, name: str, version: str, path: str) -> bytes:
        """A file of the version's model directory; ModelUnavailable when the version is not registered."""
        ...


class ServingRegistry(ModelSource, AliasRegistry, Protocol):
    """The registry as the control plane needs it: versions to load, aliases to move (models.promotion)."""


def load_version(source: ModelSource, name: str, version: str, *, compiled: bool = True) -> LoadedModel:
    """The version as registered: its compiled model (with ``compiled``, when it has a valid one), else its pipeline."""

    def load() -> LoadedModel:
        flavor = sklearn_flavor(source, name, version)
        threshold, calibration = read_decision(source, name, version, flavor)
        extras = {
            "threshold": threshold,
            "calibration": calibration,
            "background": read_background(source, name, version, flavor),
        }
        path = extra_file(flavor, ARTIFACT_NAME) if compiled else None
        if path is not None:
            try:
                model = CompiledModel.from_bytes(source.read_file(name, version, path))
                return LoadedModel(name, version, time.time(), compiled=model, **extras)
            except InvalidCompiledModel as err:
                log.warning("model '%s' v%s: its compiled model is not used: %s", name, version, err)
        pipeline = read_pipeline(source, name, version, flavor)
        return LoadedModel(name, version, time.time(), pipeline=pipeline, **extras)

    return _loading(name, version, load)


def load_pipeline(source: ModelSource, name: str, version: str) -> Any:
    """The version's scikit-learn pipeline."""
    return _loading(name, version, lambda: read_pipeline(source, name, version, sklearn_flavor(source, name, version)))


def _loading(name: str, version: str, load: Callable[[], T]) -> T:
    """``load()``; any failure is a ModelUnavailable, and the old model keeps serving."""
    try:
        return load()
    except ModelUnavailable:
        raise
    except DamagedVersion as err:  # its message names the version already
        raise ModelUnavailable(str(err)) from err
    except Exception as err:
        raise ModelUnavailable(f"model '{name}' v{version} failed to load: {type(err).__name__}: {err}") from err


class RegistryModelSource:
    """The MLflow registry through its client. Aliases are resolved to versions; versions are what the service loads."""

    def __init__(self, *, tracking_uri: str) -> None:
        self._tracking_uri = tracking_uri
        self._client: Any = None

    def _registry(self) -> Any:
        """One client for the source's life: each new one connects to the database and checks its schema."""
        if self._client is None:
            from models.registry import MlflowRegistry

            self._client = MlflowRegistry(tracking_uri=self._tracking_uri)
        return self._client

    def alias_version(self, name: str, alias: str) -> str | None:
        return self._registry().alias_version(name, alias)

    def read_file(self, name: str, version: str, path: str) -> bytes:
        return self._registry().model_file(name, version, path)

    def set_alias(self, name: str, alias: str, version: str) -> None:
        self._registry().set_alias(name, alias, version)

    def delete_alias(self, name: str, alias: str) -> None:
        self._registry().delete_alias(name, alias)

    def tag(self, name: str, version: str, tags: dict[str, str]) -> None:
        self._registry().tag(name, version, tags)


class RestModelSource:
    """The MLflow registry over its REST API: aliases, versions and artifacts, without the MLflow client."""

    def __init__(self, *, tracking_uri: str, timeout_s: float = 30.0) -> None:
        self._base = tracking_uri.rstrip("/")
        self._timeout_s = timeout_s
        self._roots: dict[tuple[str, str], str] = {}

    def _call(self, method: str, path: str, *, query: dict[str, str] | None = None, body: Any = None) -> _Answer:
        """One call to the tracking server. The standard library's client, not httpx: the service makes
        a handful of these per model load, and the import it spares is a tenth of a second of start-up."""
        url = f"{self._base}{path}" + (f"?{urlencode(query)}" if query else "")
        data = None if body is None else json.dumps(body).encode()
        headers = {} if data is None else {"Content-Type": "application/json"}
        request = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=self._timeout_s) as response:
                return _Answer(response.status, response.read())
        except urllib.error.HTTPError as err:
            return _Answer(err.code, err.read())
        except (urllib.error.URLError, OSError) as err:
            reason = getattr(err, "reason", err)
            raise RegistryError(f"tracking server {self._base} did not answer {method} {path}: {reason}") from err

    def _get(self, path: str, *, absent: tuple[str, ...] = ("RESOURCE_DOES_NOT_EXIST",), **query: str) -> Any:
        """The JSON answer, or None when MLflow says the thing asked for does not exist."""
        answer = self._call("GET", path, query=query)
        if answer.status in (400, 404) and answer.error_code() in absent:
            return None
        return answer.ok(path).json()

    def alias_version(self, name: str, alias: str) -> str | None:
        # An unknown alias of a known model is an "invalid parameter" to MLflow, not a missing resource.
        absent = ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE")
        body = self._get("/api/2.0/mlflow/registered-models/alias", absent=absent, name=name, alias=alias)
        return None if body is None else str(body["model_version"]["version"])

    def read_file(self, name: str, version: str, path: str) -> bytes:
        return self._artifact(f"{self._root(name, version)}/{path}")

    def _root(self, name: str, version: str) -> str:
        """Where the version's files lie; asked once per version (a version's files never move)."""
        if (name, version) not in self._roots:
            body = self._get("/api/2.0/mlflow/model-versions/get-download-uri", name=name, version=version)
            if body is None:
                raise ModelUnavailable(f"model '{name}' v{version} is not in the registry")
            self._roots[name, version] = body["artifact_uri"].rstrip("/")
        return self._roots[name, version]

    def _artifact(self, uri: str) -> bytes:
        """One artifact's bytes: proxied by the tracking server, or a local file."""
        parsed = urlparse(uri)
        if parsed.scheme == "mlflow-artifacts":
            path = f"/api/2.0/mlflow-artifacts/artifacts/{quote(parsed.path.lstrip('/'))}"
            return self._call("GET", path).ok(path).content
        if parsed.scheme in ("", "file"):
            return Path(unquote(parsed.path)).read_bytes()
        raise ModelUnavailable(
            f"artifact store '{parsed.scheme}://' is not readable here: serve artifacts through the tracking "
            "server (mlflow server --artifacts-destination ...)"
        )

    def set_alias(self, name: str, alias: str, version: str) -> None:
        path = "/api/2.0/mlflow/registered-models/alias"
        self._call("POST", path, body={"name": name, "alias": alias, "version": version}).ok(path)

    def delete_alias(self, name: str, alias: str) -> None:
        path = "/api/2.0/mlflow/registered-models/alias"
        answer = self._call("DELETE", path, body={"name": name, "alias": alias})
        if not (answer.status in (400, 404) and answer.error_code() in ("RESOURCE_DOES_NOT_EXIST",)):
            answer.ok(path)  # an alias that is not there is deleted already

    def tag(self, name: str, version: str, tags: dict[str, str]) -> None:
        path = "/api/2.0/mlflow/model-versions/set-tag"
        for key, value in tags.items():
            self._call("POST", path, body={"name": name, "version": version, "key": key, "value": value}).ok(path)


class RegistryError(RuntimeError):
    """The tracking server did not answer, or answered with an error."""


@dataclass(frozen=True)
class _Answer:
    status: int
    content: bytes

    def json(self) -> Any:
        return json.loads(self.content)

    def error_code(self) -> str | None:
        """MLflow's ``error_code`` from an error answer, if the answer is MLflow's JSON."""
        try:
            body = self.json()
        except ValueError:
            return None
        return body.get("error_code") if isinstance(body, dict) else None

    def ok(self, path: str) -> _Answer:
        if self.status >= 400:
            detail = self.content[:300].decode(errors="replace")
            raise RegistryError(f"tracking server answered {self.status} to {path}: {detail}")
        return self


def set_predict_jobs(model: Any, jobs: int) -> None:
    """Steps that predict on joblib workers (a random forest's ``n_jobs``) use ``jobs`` of them.

    Training sets ``n_jobs`` for its own speed; a served request is a few rows, for which handing
    trees to workers costs more than it gains: a one-row forest prediction took 32 ms with the
    training's two workers and 12 ms with one. Only the order in which trees are summed changes.
    """
    for _, step in getattr(model, "steps", [(None, model)]):
        if "n_jobs" in step.get_params(deep=False):
            step.set_params(n_jobs=jobs)


def model_source_for(tracking_uri: str) -> ServingRegistry:
    """REST for a tracking server; the MLflow client for a database or folder URI."""
    if urlparse(tracking_uri).scheme in ("http", "https"):
        return RestModelSource(tracking_uri=tracking_uri)
    if importlib.util.find_spec("mlflow") is None:  # the serving image has no MLflow client
        raise ModelUnavailable(
            f"the tracking URI '{redact(tracking_uri)}' is a database or folder, which only the MLflow client "
            "reads, and it is not installed: point MLOPS_TRACKING_URI at a tracking server (http://...), "
            "or install the pipelines extra (pip install 'mlops-loop[pipelines]')"
        )
    return RegistryModelSource(tracking_uri=tracking_uri)


class ModelCache:
    """Loaded versions by number. Loading happens in a worker thread; a version loads once.

    With ``compile_for`` a use case, a version is served through its compiled model: the one
    registered with it, or one compiled from its pipeline at load, when either reproduces the
    pipeline (otherwise through the pipeline itself). With ``native_tree_walk``, a tree model's
    pipeline is loaded beside its compiled model, so that large batches go through
    scikit-learn's tree walk; with ``complete=False`` that happens in the background, after the
    version serves (a service with nothing to serve yet starts sooner). With ``predict_jobs``,
    steps that predict on joblib workers use that many (``set_predict_jobs``). ``on_load`` is
    called, on the event loop, after each version is loaded or completed.
    """

    def __init__(
        self,
        source: ModelSource,
        *,
        name: str,
        compile_for: UseCase | None = None,
        native_tree_walk: bool = False,
        predict_jobs: int | None = None,
        on_load: Callable[[str], None] | None = None,
    ) -> None:
        self._source = source
        self._name = name
        self._compile_for = compile_for
        self._native_tree_walk = native_tree_walk
        self._predict_jobs = predict_jobs
        self._on_load = on_load
        self._models: dict[str, LoadedModel] = {}
        self._failed: dict[str, str] = {}
        self._completing: set[asyncio.Task[None]] = set()
        self._lock = asyncio.Lock()

    def get(self, version: str) -> LoadedModel | None:
        return self._models.get(version)

    async def ensure(self, version: str, *, retry_failed: bool = False, complete: bool = True) -> LoadedModel:
        if (model := self._models.get(version)) is not None:
            return model
        if version in self._failed and not retry_failed:
            raise ModelUnavailable(self._failed[version])
        async with self._lock:
            if (model := self._models.get(version)) is not None:
                return model
            try:
                model = await asyncio.to_thread(self._load, version, complete)
            except ModelUnavailable as err:
                self._failed[version] = str(err)
                raise
            self._failed.pop(version, None)
            self._models[version] = model
            self._loaded(f"loading v{version}")
            if not complete and self._incomplete(model):
                task = asyncio.create_task(self._complete_later(model))
                self._completing.add(task)
                task.add_done_callback(self._completing.discard)
            return model

    def _load(self, version: str, complete: bool) -> LoadedModel:
        use_case = self._compile_for
        model = load_version(self._source, self._name, version, compiled=use_case is not None)
        if model.pipeline is not None:
            self._set_jobs(model.pipeline)
            return model if use_case is None else model.compile(use_case)
        try:
            model.compiled.check_inputs(use_case)
        except InvalidCompiledModel as err:
            raise ModelUnavailable(f"model '{self._name}' v{version} cannot serve here: {err}") from err
        return self._completed(model) if complete and self._incomplete(model) else model

    def _incomplete(self, model: LoadedModel) -> bool:
        """A tree model served from its compiled model alone, whose large batches are to walk in scikit-learn."""
        return (
            self._native_tree_walk
            and model.pipeline is None
            and model.compiled is not None
            and model.compiled.estimator.n_trees > 0
        )

    def _set_jobs(self, pipeline: Any) -> None:
        if self._predict_jobs is not None:
            set_predict_jobs(pipeline, self._predict_jobs)

    def _completed(self, model: LoadedModel) -> LoadedModel:
        """A tree model with its pipeline, for scikit-learn's tree walk on large batches; as it was if that fails."""
        try:
            pipeline = load_pipeline(self._source, self._name, model.version)
            self._set_jobs(pipeline)
            compiled = model.compiled.with_native(pipeline.steps[-1][1])
        except (ModelUnavailable, InvalidCompiledModel, AttributeError) as err:
            log.warning("model '%s' v%s: large batches stay on the NumPy tree walk: %s", self._name, model.version, err)
            return model
        log.info("model '%s' v%s: large batches go through scikit-learn's tree walk", self._name, model.version)
        return replace(model, pipeline=pipeline, compiled=compiled)

    async def _complete_later(self, served: LoadedModel) -> None:
        completed = await asyncio.to_thread(self._completed, served)
        if self._models.get(served.version) is served:  # not released or replaced meanwhile
            self._models = {**self._models, served.version: completed}
            self._loaded(f"completing v{served.version}")  # scikit-learn's modules and the pipeline

    def _loaded(self, what: str) -> None:
        if self._on_load is not None:
            self._on_load(what)

    async def completed(self) -> None:
        """Wait for the versions being completed in the background (tests)."""
        while self._completing:
            await asyncio.gather(*self._completing, return_exceptions=True)

    def retain(self, versions: set[str]) -> None:
        """Release every version not in ``versions`` (a dict swap: readers holding a model keep it)."""
        self._models = {v: m for v, m in self._models.items() if v in versions}

    @property
    def loaded(self) -> list[str]:
        return sorted(self._models, key=lambda v: int(v) if v.isdigit() else 0)
