"""Settings of the serving process."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator

from core.settings import CommonSettings

DEFAULT_ADMIN_TOKEN = "dev-admin-token"
# Values that ship in files (the default, .env.example's placeholder) are known to everyone.
PUBLIC_TOKENS = frozenset({DEFAULT_ADMIN_TOKEN, "change-me"})
MIN_TOKEN_LENGTH = 16


class ServingSettings(CommonSettings):
    use_case: str = Field(default="bike_demand", description="Use case whose champion is served.")
    host: str = Field(
        default="127.0.0.1", description="Address `mlops serve` listens on (loopback: see docs/security.md)."
    )
    port: int = Field(default=8000, description="Port `mlops serve` listens on.")
    admin_token: str = Field(
        default=DEFAULT_ADMIN_TOKEN, description="Token for every /admin call (or MLOPS_ADMIN_TOKEN_FILE)."
    )
    read_token: str | None = Field(
        default=None,
        description="Token for the read-only /admin calls: status, history, events, why, shadow "
        "(or MLOPS_READ_TOKEN_FILE). Dashboards and on-call tools get this one, not the admin token.",
    )
    dev_mode: bool = Field(
        default=False,
        description="Accept the public default admin token and short tokens: for `make demo` and the tests, "
        "on a loopback address; never in production.",
    )
    max_records: int = Field(default=10_000, ge=1, description="Most records one /predict request may carry.")
    explain_max_records: int = Field(
        default=20,
        ge=1,
        description="Most records one /explain request may carry: each costs 2^features x 32 predictions.",
    )
    max_body_bytes: int = Field(default=8 * 1024 * 1024, ge=1024, description="Largest request body accepted.")
    log_queue_size: int = Field(
        default=100_000,
        ge=1,
        description="Answered requests the prediction-log writer may hold; when full, requests wait. While the "
        "database fails, batches are spilled to MLOPS_LOG_SPILL_DIR and written when it answers again: no "
        "answered request is dropped.",
    )
    log_spill_dir: Path | None = Field(
        default=None,
        description="Where answered requests wait on local disk while the prediction-log database does not take "
        "them; written to it when it does again (defaults to <state dir>/prediction-log-spill).",
    )
    log_linger_ms: float = Field(
        default=50,
        ge=0,
        le=1000,
        description="How long the prediction-log writer waits to gather rows into one INSERT.",
    )
    feedback_wait_ms: float = Field(
        default=2000,
        ge=0,
        le=30_000,
        description="How long /feedback keeps looking for prediction ids it does not find: behind a gateway, "
        "another replica may have answered them a moment ago and not yet written them to the log.",
    )
    state_db_url: str | None = Field(
        default=None, description="Rollout state shared by replicas; defaults to the prediction log's database."
    )
    predict_threads: int = Field(
        default=1,
        ge=1,
        description="Threads per prediction: native (OpenMP/BLAS) threads, and joblib workers of models that "
        "have them (a random forest's n_jobs). Small requests gain nothing from more, and several replicas on "
        "one host would oversubscribe the cores and stall each other.",
    )
    batch_max_rows: int = Field(
        default=256, ge=1, description="Most rows that concurrent requests merge into one predict call."
    )
    batch_wait_ms: float = Field(
        default=0.0,
        ge=0,
        le=50,
        description="How long a request may wait for others to share its predict call. 0: never wait; "
        "batches still form from requests that arrive while a prediction runs.",
    )
    compile_models: bool = Field(
        default=True,
        description="Serve each version through its compiled model (NumPy only; models.compiled): the one "
        "registered with it, or one compiled at load, when it reproduces the pipeline's own output on probe "
        "records. false: always the scikit-learn pipeline itself.",
    )
    native_tree_walk: bool = Field(
        default=False,
        description="Load a tree model's scikit-learn pipeline beside its compiled model, in the background, and "
        "send large batches (past 10,000 rows x trees) through scikit-learn's tree walk. Costs about 170 MB "
        "per replica (scikit-learn, SciPy and pandas): 285 MB instead of 114 MB with one version of the bike "
        "model. false: every batch walks the trees in NumPy.",
    )
    batch_turn_wait_ms: float = Field(
        default=1.0,
        ge=0,
        le=50,
        description="While two versions take turns (a canary), how long a round may wait for the clients just "
        "answered to send their next request, so that it serves more of them in one call.",
    )
    sync_interval_seconds: float = Field(default=0.5, gt=0, description="How often a replica re-reads shared state.")
    control_interval_seconds: float = Field(default=1.0, gt=0, description="How often rollouts are advanced.")
    registry_check_interval_seconds: float = Field(
        default=5.0, gt=0, description="How often the model registry is asked whether it answers (shown by /ready)."
    )

    @property
    def resolved_log_spill_dir(self) -> Path:
        return self.log_spill_dir or self.layout.root / "prediction-log-spill"

    @property
    def resolved_state_db_url(self) -> str:
        return self.state_db_url or self.resolved_prediction_log_url

    @model_validator(mode="after")
    def _no_default_secret_in_production(self) -> ServingSettings:
        if self.read_token is not None and self.read_token == self.admin_token:
            raise ValueError("MLOPS_READ_TOKEN must differ from MLOPS_ADMIN_TOKEN: a shared token grants both")
        if self.dev_mode:
            return self
        for variable, token in (("MLOPS_ADMIN_TOKEN", self.admin_token), ("MLOPS_READ_TOKEN", self.read_token)):
            if token is not None and (token in PUBLIC_TOKENS or len(token) < MIN_TOKEN_LENGTH):
                raise ValueError(
                    f"{variable} must be set to a secret of at least {MIN_TOKEN_LENGTH} characters "
                    "(not the default or the .env.example placeholder) when MLOPS_DEV_MODE is false; "
                    "for example: python -c 'import secrets; print(secrets.token_urlsafe(24))'"
                )
        return self

    @property
    def uses_public_token(self) -> bool:
        return self.admin_token in PUBLIC_TOKENS
