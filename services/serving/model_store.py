"""Model versions loaded from the registry, cached by version, loaded off the request path.

Two ways to the registry, one port (``ModelSource``):
- ``RestModelSource`` talks to an MLflow tracking server over its REST API (the compose
  stack, production). The serving process then never imports MLflow, whose client costs
  more than a second of start-up, and reads only the two files a model needs.
- ``RegistryModelSource`` uses the MLflow client, for a tracking URI that is a database or a
  folder (the laptop demo), where there is no server to ask.

Both load the model file with the same loader and trust rule (``models.serialization``).
``model_source_for`` picks one from the tracking URI.
"""

from __future__ import annotations

import asyncio
import json
import logging
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote, unquote, urlencode, urlparse

import numpy as np

from core.usecase import UseCase
from models.compiled import CompiledModel, NotCompilable, compile_model
from models.frames import feature_frame
from models.metrics import model_output
from models.registry import CHAMPION, PREVIOUS
from models.serialization import load_skops

log = logging.getLogger(__name__)


class ModelUnavailable(RuntimeError):
    """No model can be served; the message says why (no champion yet, load failure...)."""


@dataclass(frozen=True)
class LoadedModel:
    name: str
    version: str
    model: Any
    loaded_at: float
    compiled: CompiledModel | None = None  # the fast path, when it reproduces the pipeline (models.compiled)

    def predict(self, records: Sequence[Mapping[str, Any]], use_case: UseCase) -> np.ndarray:
        if self.compiled is not None:
            return self.compiled.output(records)
        return model_output(self.model, feature_frame(records, use_case), use_case.task)

    def compile(self, use_case: UseCase) -> LoadedModel:
        """This version with the compiled fast path, or as it is when compiling is refused (logged)."""
        try:
            compiled = compile_model(self.model, use_case)
        except NotCompilable as err:
            log.warning("model '%s' v%s is served through its own pipeline: %s", self.name, self.version, err)
            return self
        log.info("model '%s' v%s is served through the compiled pipeline", self.name, self.version)
        return replace(self, compiled=compiled)


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
        return _loaded(name, version, lambda: self._load(name, version))

    def _load(self, name: str, version: str) -> Any:
        # The files through the MLflow client, the model through the same loader and trust rule as
        # over REST (not mlflow.sklearn, which trusts whatever the model's MLmodel lists).
        with tempfile.TemporaryDirectory() as tmp:
            files = self._registry().download_model(name, version, Path(tmp))
            return _skops_model(name, version, lambda path: (files / path).read_bytes())

    def record_promotion(self, name: str, *, new: str, old: str | None) -> None:
        _promote(self._registry().set_alias, name, new=new, old=old)


def _loaded(name: str, version: str, load: Callable[[], Any]) -> LoadedModel:
    """``load()`` as a served version; any failure is a ModelUnavailable, and the old model keeps serving."""
    try:
        model = load()
    except ModelUnavailable:
        raise
    except Exception as err:
        raise ModelUnavailable(f"model '{name}' v{version} failed to load: {type(err).__name__}: {err}") from err
    return LoadedModel(name=name, version=version, model=model, loaded_at=time.time())


def _skops_model(name: str, version: str, read: Callable[[str], bytes]) -> Any:
    """A scikit-learn model saved with skops, from its MLmodel file; ``read`` gives a file of the version."""
    import yaml

    flavor = (yaml.safe_load(read("MLmodel")).get("flavors") or {}).get("sklearn")
    if flavor is None or flavor.get("serialization_format") != "skops":
        raise ModelUnavailable(f"model '{name}' v{version} is not a scikit-learn model saved with skops")
    return load_skops(read(flavor["pickled_model"]))


def _promote(set_alias: Callable[[str, str, str], None], name: str, *, new: str, old: str | None) -> None:
    """``champion`` moves to ``new``; the version it leaves becomes ``previous`` (the rollback target)."""
    if old is not None and old != new:
        set_alias(name, PREVIOUS, old)
    set_alias(name, CHAMPION, new)


class RestModelSource:
    """The MLflow registry over its REST API: aliases, versions and artifacts, without the MLflow client."""

    def __init__(self, *, tracking_uri: str, timeout_s: float = 30.0) -> None:
        self._base = tracking_uri.rstrip("/")
        self._timeout_s = timeout_s

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

    def load_version(self, name: str, version: str) -> LoadedModel:
        return _loaded(name, version, lambda: self._load(name, version))

    def _load(self, name: str, version: str) -> Any:
        body = self._get("/api/2.0/mlflow/model-versions/get-download-uri", name=name, version=version)
        if body is None:
            raise ModelUnavailable(f"model '{name}' v{version} is not in the registry")
        root = body["artifact_uri"].rstrip("/")
        return _skops_model(name, version, lambda path: self._artifact(f"{root}/{path}"))

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

    def record_promotion(self, name: str, *, new: str, old: str | None) -> None:
        _promote(self._set_alias, name, new=new, old=old)

    def _set_alias(self, name: str, alias: str, version: str) -> None:
        path = "/api/2.0/mlflow/registered-models/alias"
        self._call("POST", path, body={"name": name, "alias": alias, "version": version}).ok(path)


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


def model_source_for(tracking_uri: str) -> ModelSource:
    """REST for a tracking server; the MLflow client for a database or folder URI."""
    if urlparse(tracking_uri).scheme in ("http", "https"):
        return RestModelSource(tracking_uri=tracking_uri)
    return RegistryModelSource(tracking_uri=tracking_uri)


class ModelCache:
    """Loaded versions by number. Loading happens in a worker thread; a version loads once.

    With ``compile_for`` a use case, each version is compiled for it as it loads (off the request
    path), and served through the compiled pipeline when that reproduces the model's own output.
    With ``predict_jobs``, steps that predict on joblib workers use that many (``set_predict_jobs``).
    """

    def __init__(
        self, source: ModelSource, *, name: str, compile_for: UseCase | None = None, predict_jobs: int | None = None
    ) -> None:
        self._source = source
        self._name = name
        self._compile_for = compile_for
        self._predict_jobs = predict_jobs
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
                model = await asyncio.to_thread(self._load, version)
            except ModelUnavailable as err:
                self._failed[version] = str(err)
                raise
            self._failed.pop(version, None)
            self._models[version] = model
            return model

    def _load(self, version: str) -> LoadedModel:
        model = self._source.load_version(self._name, version)
        if self._predict_jobs is not None:
            set_predict_jobs(model.model, self._predict_jobs)
        return model if self._compile_for is None else model.compile(self._compile_for)

    def retain(self, versions: set[str]) -> None:
        """Release every version not in ``versions`` (a dict swap: readers holding a model keep it)."""
        self._models = {v: m for v, m in self._models.items() if v in versions}

    @property
    def loaded(self) -> list[str]:
        return sorted(self._models, key=lambda v: int(v) if v.isdigit() else 0)
