"""A registered version's files, read one way by the service and the pipelines alike.

The version's ``MLmodel`` says, in its scikit-learn flavor, where the skops file and the extra
files lie (the compiled model, the decision, the explanations' background). The pipeline is read
with the project's one trust rule (``models.serialization``), never with ``mlflow.sklearn``'s,
which trusts whatever the MLmodel lists.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import PurePosixPath
from typing import Any, Protocol

from models.calibration import Calibration, registered_calibration
from models.registry import BACKGROUND_FILE, DECISION_FILE


class VersionFiles(Protocol):
    def read_file(self, name: str, version: str, path: str) -> bytes:
        """A file of the version's model directory (``MLmodel``, the model file, an extra file)."""
        ...


class DamagedVersion(ValueError):
    """A registered version whose files are not what the project registers."""


def sklearn_flavor(files: VersionFiles, name: str, version: str) -> dict[str, Any]:
    import yaml

    flavor = (yaml.safe_load(files.read_file(name, version, "MLmodel")).get("flavors") or {}).get("sklearn")
    if flavor is None or flavor.get("serialization_format") != "skops":
        raise DamagedVersion(f"model '{name}' v{version} is not a scikit-learn model saved with skops")
    return flavor


def extra_file(flavor: Mapping[str, Any], file_name: str) -> str | None:
    """Where the MLmodel lists one of its extra files (the compiled model, the decision), if it does."""
    paths = [entry.get("path", "") for entry in flavor.get("extra_files") or []]
    return next((p for p in paths if PurePosixPath(p).name == file_name), None)


def read_background(
    files: VersionFiles, name: str, version: str, flavor: Mapping[str, Any]
) -> tuple[dict[str, Any], ...]:
    """The training rows registered for explanations; none for a version registered without them."""
    path = extra_file(flavor, BACKGROUND_FILE)
    return () if path is None else tuple(json.loads(files.read_file(name, version, path)))


def read_decision(
    files: VersionFiles, name: str, version: str, flavor: Mapping[str, Any]
) -> tuple[float, Calibration | None]:
    """A classifier's registered decision threshold and calibration; 0.5 and none for a version
    registered without them."""
    path = extra_file(flavor, DECISION_FILE)
    if path is None:
        return 0.5, None
    decision = json.loads(files.read_file(name, version, path))
    threshold = decision["threshold"]
    if not isinstance(threshold, int | float) or not 0 <= threshold <= 1 + 1e-9:
        raise DamagedVersion(f"model '{name}' v{version}: its decision threshold {threshold!r} is not a probability")
    try:
        calibration = registered_calibration(decision)
    except ValueError as err:
        raise DamagedVersion(f"model '{name}' v{version}: its calibration is damaged: {err}") from err
    return float(threshold), calibration


def read_pipeline(files: VersionFiles, name: str, version: str, flavor: Mapping[str, Any]) -> Any:
    """The version's scikit-learn pipeline, as its skops file holds it."""
    from models.serialization import load_skops

    return load_skops(files.read_file(name, version, flavor["pickled_model"]))


def answering_model(files: VersionFiles, name: str, version: str) -> Any:
    """The version as it answers: its pipeline, calibrated when it registered a calibration."""
    from models.calibration import with_calibration

    flavor = sklearn_flavor(files, name, version)
    _, calibration = read_decision(files, name, version, flavor)
    return with_calibration(read_pipeline(files, name, version, flavor), calibration)
