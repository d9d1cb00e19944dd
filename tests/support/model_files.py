"""A model's registered files, as MLflow writes them, for an in-memory registry (``ModelSource``)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from models.compiled import CompiledModel
from models.registry import model_files


def registered_files(
    model: Any,
    *,
    compiled: CompiledModel | bytes | None = None,
    decision: dict[str, Any] | None = None,
    background: list[dict[str, Any]] | None = None,
) -> dict[str, bytes]:
    """Every file of the model's directory by relative path: MLmodel, the skops file, the compiled model,
    a classifier's decision threshold and calibration, background rows for explanations."""
    import mlflow.sklearn

    content = compiled.to_bytes() if isinstance(compiled, CompiledModel) else compiled
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "model"
        mlflow.sklearn.save_model(
            model,
            str(root),
            pip_requirements=["scikit-learn"],  # named: inferring them starts a process
            **model_files(model, compiled=content, workdir=Path(tmp), decision=decision, background=background),
        )
        return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}
