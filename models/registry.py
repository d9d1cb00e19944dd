"""The model registry port and its MLflow adapter.

Pipelines depend on the ``ModelRegistry`` protocol; the composition root hands
them ``MlflowRegistry``. Aliases carry the deployment state: ``champion`` is
served, ``challenger`` has beaten it, ``previous`` is the last champion.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from models.compiled import ARTIFACT_NAME

if TYPE_CHECKING:
    import pandas as pd
    from sklearn.pipeline import Pipeline

    from models.compiled import CompiledModel

CHAMPION, CHALLENGER, PREVIOUS = "champion", "challenger", "previous"
REFERENCE_ARTIFACT = "reference/reference.parquet"
DECISION_FILE = "decision.json"  # a classifier's threshold and calibration, among the model's extra files
BACKGROUND_FILE = "explain_background.json"  # training rows that explanations compare a record with


@dataclass(frozen=True)
class ModelVersionRef:
    name: str
    version: str
    run_id: str
    tags: dict[str, str]


@dataclass(frozen=True)
class ChildRun:
    """A run nested under the training run: one experiment of it (a feature set compared, say)."""

    name: str
    params: dict[str, Any]
    metrics: dict[str, float]


@dataclass(frozen=True)
class TrainingRecord:
    """Everything a training run logs, in plain values."""

    experiment: str
    model_name: str
    model: Pipeline
    params: dict[str, Any]
    metrics: dict[str, float]
    tags: dict[str, str]
    input_example: pd.DataFrame
    reference: pd.DataFrame
    artifacts: list[Path]
    pip_requirements: list[str]
    # The model as NumPy arrays (models.compiled), registered beside it for the serving process.
    compiled: CompiledModel | None = None
    # Reports about the run's data or model: artifact folder -> files (the EDA report and summary, say).
    reports: dict[str, list[Path]] = field(default_factory=dict)
    child_runs: list[ChildRun] = field(default_factory=list)
    # Classification: the decision threshold and its rule (models.threshold), and the calibration of
    # the probabilities it applies to (models.calibration), registered with the model.
    decision: dict[str, Any] | None = None
    # Training rows as records, the background of the service's explanations (models.explain).
    background: list[dict[str, Any]] | None = None
    # The signature's input as (name, MLflow type, required) (models.frames.signature_columns);
    # None: inferred from the input example.
    input_columns: list[tuple[str, str, bool]] | None = None


def model_files(
    model: Any,
    *,
    compiled: bytes | None,
    workdir: Path,
    decision: dict[str, Any] | None = None,
    background: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """How a model's MLflow directory is written (``mlflow.sklearn.save_model``/``log_model`` options).

    The model as a skops file, which is what the service loads (``models.serialization``), the
    compiled model, listed in the sklearn flavor as ``extra_files/compiled_model.npz``, a
    classifier's decision threshold and calibration (``extra_files/decision.json``: the service
    calibrates and labels with them), and the explanations' background rows.
    ``workdir`` holds those files until MLflow has copied them.
    """
    from skops.io import dumps, get_untrusted_types

    extra_files = []
    if compiled is not None:
        (workdir / ARTIFACT_NAME).write_bytes(compiled)
        extra_files.append(str(workdir / ARTIFACT_NAME))
    if decision is not None:
        (workdir / DECISION_FILE).write_text(json.dumps(decision))
        extra_files.append(str(workdir / DECISION_FILE))
    if background is not None:
        (workdir / BACKGROUND_FILE).write_text(json.dumps(background))
        extra_files.append(str(workdir / BACKGROUND_FILE))
    return {
        "serialization_format": "skops",
        # skops refuses types it does not know; this model was produced by us a
        # moment ago, so its own types are exactly the ones to trust.
        "skops_trusted_types": get_untrusted_types(data=dumps(model)),
        "extra_files": extra_files or None,
    }


class ModelRegistry(Protocol):
    def log_and_register(self, record: TrainingRecord) -> ModelVersionRef: ...
    def by_alias(self, name: str, alias: str) -> ModelVersionRef | None: ...
    def alias_version(self, name: str, alias: str) -> str | None: ...
    def get(self, name: str, version: str) -> ModelVersionRef: ...
    def set_alias(self, name: str, alias: str, version: str) -> None: ...
    def delete_alias(self, name: str, alias: str) -> None: ...
    def attach(self, run_id: str, folder: str, paths: list[Path]) -> None: ...
    def run_artifact(self, run_id: str, path: str) -> bytes: ...
    def tag(self, name: str, version: str, tags: dict[str, str]) -> None: ...
    def load(self, name: str, version: str) -> Any: ...
    def reference(self, ref: ModelVersionRef) -> pd.DataFrame: ...


class MlflowRegistry:
    """MLflow tracking + registry. Works on SQLite files and on a tracking server alike."""

    def __init__(self, *, tracking_uri: str, artifact_root: Path | None = None) -> None:
        import mlflow
        from mlflow import MlflowClient

        self._mlflow = mlflow
        self._tracking_uri = tracking_uri
        self._client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
        self._artifact_root = artifact_root

    @property
    def tracking_uri(self) -> str:
        return self._tracking_uri

    def _activate(self) -> None:
        # MLflow's fluent API (start_run, load_model) reads a process-wide URI; set it on every
        # use so two registries in one process (tests, several state directories) never cross.
        self._mlflow.set_tracking_uri(self._tracking_uri)
        self._mlflow.set_registry_uri(self._tracking_uri)

    def _experiment_id(self, name: str) -> str:
        exp = self._client.get_experiment_by_name(name)
        if exp is not None:
            return exp.experiment_id
        # Without an explicit location MLflow writes artifacts under the *current
        # directory*; keep them inside the state directory instead.
        location = (self._artifact_root / name).resolve().as_uri() if self._artifact_root else None
        return self._client.create_experiment(name, artifact_location=location)

    def log_and_register(self, record: TrainingRecord) -> ModelVersionRef:
        import mlflow.sklearn
        from mlflow.models import infer_signature

        mlflow = self._mlflow
        self._activate()
        experiment_id = self._experiment_id(record.experiment)
        example = record.input_example
        signature = infer_signature(example, record.model.predict(example))
        if record.input_columns is not None:
            from mlflow.types.schema import ColSpec, Schema

            signature.inputs = Schema([ColSpec(kind, name, required) for name, kind, required in record.input_columns])
        with mlflow.start_run(experiment_id=experiment_id) as run, tempfile.TemporaryDirectory() as tmp:
            mlflow.log_params(record.params)
            mlflow.log_metrics(record.metrics)
            mlflow.set_tags(record.tags)
            for path in record.artifacts:
                mlflow.log_artifact(str(path), artifact_path="plots")
            for folder, paths in record.reports.items():
                for path in paths:
                    mlflow.log_artifact(str(path), artifact_path=folder)
            for child in record.child_runs:
                with mlflow.start_run(experiment_id=experiment_id, run_name=child.name, nested=True):
                    mlflow.log_params(child.params)
                    mlflow.log_metrics(child.metrics)
            ref_path = Path(tmp) / Path(REFERENCE_ARTIFACT).name
            record.reference.to_parquet(ref_path, index=False)
            mlflow.log_artifact(str(ref_path), artifact_path=str(Path(REFERENCE_ARTIFACT).parent))
            compiled = None if record.compiled is None else record.compiled.to_bytes()
            info = mlflow.sklearn.log_model(
                record.model,
                name="model",
                signature=signature,
                input_example=example,
                registered_model_name=record.model_name,
                # Explicit requirements skip MLflow's slow inference in a subprocess.
                pip_requirements=record.pip_requirements,
                **model_files(
                    record.model,
                    compiled=compiled,
                    workdir=Path(tmp),
                    decision=record.decision,
                    background=record.background,
                ),
            )
        version = str(info.registered_model_version)
        self.tag(record.model_name, version, record.tags)
        return ModelVersionRef(record.model_name, version, run.info.run_id, dict(record.tags))

    def by_alias(self, name: str, alias: str) -> ModelVersionRef | None:
        from mlflow.exceptions import MlflowException

        try:
            mv = self._client.get_model_version_by_alias(name, alias)
        except MlflowException:
            return None
        return ModelVersionRef(name, str(mv.version), mv.run_id, dict(mv.tags))

    def alias_version(self, name: str, alias: str) -> str | None:
        ref = self.by_alias(name, alias)
        return ref.version if ref else None

    def get(self, name: str, version: str) -> ModelVersionRef:
        mv = self._client.get_model_version(name, version)
        return ModelVersionRef(name, str(mv.version), mv.run_id, dict(mv.tags))

    def set_alias(self, name: str, alias: str, version: str) -> None:
        self._client.set_registered_model_alias(name, alias, version)

    def delete_alias(self, name: str, alias: str) -> None:
        from mlflow.exceptions import MlflowException

        try:
            self._client.delete_registered_model_alias(name, alias)
        except MlflowException:
            pass  # already absent: deleting is idempotent

    def attach(self, run_id: str, folder: str, paths: list[Path]) -> None:
        """Add files to a finished run (what is written once the version number is known)."""
        for path in paths:
            self._client.log_artifact(run_id, str(path), artifact_path=folder)

    def run_artifact(self, run_id: str, path: str) -> bytes:
        """One artifact file of a run."""
        self._activate()
        with tempfile.TemporaryDirectory() as tmp:
            local = self._mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=path, dst_path=tmp)
            return Path(local).read_bytes()

    def tag(self, name: str, version: str, tags: dict[str, str]) -> None:
        for key, value in tags.items():
            self._client.set_model_version_tag(name, version, key, value)

    def model_file(self, name: str, version: str, path: str) -> bytes:
        """One file of a registered version's model directory (``MLmodel``, the model file, ...)."""
        uri = self._client.get_model_version_download_uri(name, version)
        with tempfile.TemporaryDirectory() as tmp:
            local = self._mlflow.artifacts.download_artifacts(
                artifact_uri=f"{uri.rstrip('/')}/{path}", dst_path=tmp, tracking_uri=self._tracking_uri
            )
            return Path(local).read_bytes()

    def read_file(self, name: str, version: str, path: str) -> bytes:
        return self.model_file(name, version, path)

    def load(self, name: str, version: str) -> Any:
        """The version as it answers: its pipeline, and its registered calibration if it has one.

        Read as the service reads it (models.registered): one trust rule for every loader."""
        from models.registered import answering_model

        return answering_model(self, name, version)

    def reference(self, ref: ModelVersionRef) -> pd.DataFrame:
        import pandas as pd

        with tempfile.TemporaryDirectory() as tmp:
            path = self._mlflow.artifacts.download_artifacts(
                run_id=ref.run_id, artifact_path=REFERENCE_ARTIFACT, dst_path=tmp, tracking_uri=self._tracking_uri
            )
            return pd.read_parquet(path)
