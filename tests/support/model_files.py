"""A model's registered files, as MLflow writes them, for an in-memory registry (``ModelSource``)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from models.compiled import ARTIFACT_NAME, CompiledModel


def registered_files(model: Any, *, compiled: CompiledModel | bytes | None = None) -> dict[str, bytes]:
    """Every file of the model's directory by relative path: MLmodel, the skops file, the compiled model."""
    import mlflow.sklearn
    from skops.io import dumps, get_untrusted_types

    with tempfile.TemporaryDirectory() as tmp:
        extra = []
        if compiled is not None:
            extra.append(Path(tmp) / ARTIFACT_NAME)
            extra[0].write_bytes(compiled if isinstance(compiled, bytes) else compiled.to_bytes())
        root = Path(tmp) / "model"
        mlflow.sklearn.save_model(
            model,
            str(root),
            serialization_format="skops",
            skops_trusted_types=get_untrusted_types(data=dumps(model)),
            extra_files=[str(p) for p in extra] or None,
            pip_requirements=["scikit-learn"],  # named: inferring them starts a process
        )
        return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}
