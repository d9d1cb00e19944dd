"""Where everything the loop writes lives inside one state directory."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class StateLayout:
    """Paths below the state directory (default ``./.mlops``).

    Keeping every durable artefact under one root makes a run easy to inspect,
    copy or delete, and lets tests use a temporary directory for everything.
    """

    root: Path

    @property
    def raw(self) -> Path:
        return self.root / "raw"

    @property
    def curated(self) -> Path:
        return self.root / "curated"

    @property
    def quarantine(self) -> Path:
        return self.root / "quarantine"

    @property
    def ledger(self) -> Path:
        return self.root / "ledger"

    @property
    def gx(self) -> Path:
        return self.root / "gx"

    @property
    def data_docs(self) -> Path:
        return self.root / "data-docs"

    @property
    def reports(self) -> Path:
        return self.root / "reports"

    @property
    def drops(self) -> Path:
        return self.root / "drops"

    @property
    def mlflow_db(self) -> Path:
        return self.root / "mlflow.db"

    @property
    def mlflow_artifacts(self) -> Path:
        return self.root / "mlartifacts"

    @property
    def prediction_db(self) -> Path:
        return self.root / "predictions.db"

    @property
    def prefect_home(self) -> Path:
        return self.root / "prefect"

    @property
    def tracking_uri(self) -> str:
        return f"sqlite:///{self.mlflow_db.resolve()}"

    @property
    def prediction_log_url(self) -> str:
        return f"sqlite:///{self.prediction_db.resolve()}"

    def ensure(self) -> StateLayout:
        """Create the root, readable by its owner only: it holds the registry, the data and the logs."""
        if not self.root.exists():
            self.root.mkdir(parents=True, mode=0o700)
        return self
