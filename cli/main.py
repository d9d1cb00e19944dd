"""``mlops``: ingest, validate, train, serve, monitor, retrain, demo.

Each subcommand imports what it needs when it runs, so ``mlops --help`` is
instant and ``mlops serve`` never loads Prefect, Great Expectations or Evidently.
"""

from __future__ import annotations

import gc
import json
import os
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cli import summaries
from cli.env import loading, prepare_environment
from cli.local_prefect import prefect_app, use_local_server
from cli.options import JsonOpt, StateDirOpt, UseCaseOpt
from cli.options import fail as _fail
from cli.options import print_json as _print
from cli.rollout import rollout_app
from cli.stream import stream_app

if TYPE_CHECKING:
    from pipelines.settings import PipelineSettings

app = typer.Typer(
    name="mlops",
    help="A closed machine-learning loop: ingest -> validate -> train -> serve -> monitor -> retrain.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    epilog="Exit codes: 0 done; 1 refused (a batch rejected whole, a rollout action refused, a doctor "
    "finding); 2 bad input (an unknown use case, a malformed YAML or setting, a missing file); 3 a "
    "service or dependency that cannot be reached.",
)

app.add_typer(rollout_app, name="rollout")
app.add_typer(stream_app, name="stream")
app.add_typer(prefect_app, name="prefect")
usecase_app = typer.Typer(help="Use cases as YAML: the schema editors validate them with.", no_args_is_help=True)
app.add_typer(usecase_app, name="usecase")


def _version(value: bool) -> None:
    if value:
        from core.version import PACKAGE, installed_version

        typer.echo(f"{PACKAGE} {installed_version()}")
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """A closed machine-learning loop: ingest -> validate -> train -> serve -> monitor -> retrain."""


def _report(payload: Any, *, as_json: bool, summary: Callable[[Any], list[str]]) -> None:
    """A result as a few readable lines, or, with ``--json``, whole."""
    if as_json:
        _print(payload)
    else:
        typer.echo("\n".join(summary(payload)))


def _require_prefect_server(who: str, *, example: str) -> None:
    """The long-running workers serve deployments of a Prefect server; without one they would start their own."""
    if not os.environ.get("PREFECT_API_URL"):
        _fail(f"{who} needs a Prefect server: set PREFECT_API_URL (e.g. {example})")


def _require_pipelines() -> None:
    """The pipeline stages need the `pipelines` extra; the serving role installs without it."""
    import importlib.util

    missing = [m for m in ("prefect", "great_expectations", "evidently") if importlib.util.find_spec(m) is None]
    if missing:
        _fail(
            f"this command needs {', '.join(missing)}: install the pipeline extra, "
            "pip install 'mlops-loop[pipelines]' (only `mlops serve` and `mlops rollout` run without it)"
        )


def _flow_environment(state_dir: Path | None) -> Path:
    """What a command that runs flows needs before Prefect is imported: the state folder, the pipeline
    extras, and a Prefect API to record its runs on (the local server, started once; see ``mlops prefect``)."""
    root = prepare_environment(state_dir)
    _require_pipelines()
    use_local_server()
    return root


def _wait_for_dependencies(
    *, tracking_uri: str, databases: dict[str, str], timeout_s: float, http: dict[str, str] | None = None
) -> None:
    """Wait for MLflow, the databases and any ``http`` health URLs (name -> URL) with backoff;
    exit with which one is missing after ``timeout_s``."""
    from core.startup import DependencyUnavailable, database_dependency, http_dependency, mlflow_dependency, wait_for

    deps = [database_dependency(name, url) for name, url in databases.items()]
    if (mlflow := mlflow_dependency(tracking_uri)) is not None:
        deps.append(mlflow)
    deps += [http_dependency(name, url) for name, url in (http or {}).items()]
    try:
        wait_for(deps, timeout_s=timeout_s, log=lambda msg: typer.echo(msg, err=True))
    except DependencyUnavailable as err:
        _fail(str(err), code=3)


def _pipeline_dependencies(settings: PipelineSettings | None = None, *, http: dict[str, str] | None = None) -> None:
    from pipelines.settings import PipelineSettings

    settings = settings or PipelineSettings()
    _wait_for_dependencies(
        tracking_uri=settings.resolved_tracking_uri,
        databases={"prediction-log database": settings.resolved_prediction_log_url},
        timeout_s=settings.startup_timeout_seconds,
        http=http,
    )


def _known_errors() -> tuple[type[Exception], ...]:
    from core.usecase import UseCaseError

    errors: list[type[Exception]] = [UseCaseError]
    try:
        from pipelines.drops import DemoDataError
        from pipelines.sources import SourceError

        errors += [SourceError, DemoDataError]
    except ImportError:  # the serving role installs without the pipeline extras
        pass
    return tuple(errors)


@app.command()
def ingest(
    source: Annotated[str, typer.Argument(help="Batch file: local path, http(s):// URL or s3:// URI.")],
    use_case: UseCaseOpt = "bike_demand",
    arrival: Annotated[
        datetime | None, typer.Option(help="Arrival time of the batch (event time of rows that carry none).")
    ] = None,
    state_dir: StateDirOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Ingest one batch: land it immutably under its content hash, validate it with Great Expectations,
    write accepted rows to the curated Parquet dataset and rejected rows, with their reasons, to quarantine.

    Re-ingesting the same file does nothing. Exits 1 when the batch was rejected: unreadable, or no row accepted.
    """
    _flow_environment(state_dir)
    try:
        with loading():
            from pipelines.ingest import ingest_flow
            from pipelines.runtime import get_runtime

            # The validator is built before the flow starts, and the flow reuses it: importing Great
            # Expectations takes a third longer once Prefect's client threads run beside it (measured).
            get_runtime().validator  # noqa: B018
        result = ingest_flow(source=source, use_case=use_case, arrival=arrival)
    except _known_errors() as err:
        _fail(str(err))
    _report(result, as_json=as_json, summary=summaries.ingested)
    if result["status"] == "rejected":
        _fail(f"batch rejected: {result['reason']}", code=1)


@app.command()
def validate(
    source: Annotated[str, typer.Argument(help="Batch file: local path, http(s):// URL or s3:// URI.")],
    use_case: UseCaseOpt = "bike_demand",
    state_dir: StateDirOpt = None,
    show: Annotated[int, typer.Option(help="How many quarantined rows to print.")] = 10,
    as_json: JsonOpt = False,
) -> None:
    """Dry run: check a batch against the use case's schema and Great Expectations suite and report
    which rows would be quarantined and why. Writes nothing but the Data Docs.
    """
    prepare_environment(state_dir)
    _require_pipelines()
    accepted, quarantined, shown, docs = 0, 0, [], None
    try:
        import tempfile

        with loading():
            from pipelines.batches import BatchRejected
            from pipelines.curation import curated_key_index, process_chunks
            from pipelines.runtime import get_runtime
            from pipelines.sources import iter_source

            rt = get_runtime()
            uc = rt.use_case(use_case)
            rt.validator  # noqa: B018 - Great Expectations loaded here, with the collector paused
        # Spooled: a small batch stays in memory, a large one goes to a temporary file, read back in chunks.
        with tempfile.SpooledTemporaryFile(max_size=64 * 2**20) as spool:
            for block in iter_source(source):
                spool.write(block)
            spool.seek(0)
            chunks = process_chunks(
                spool,  # type: ignore[arg-type]
                uc,
                validator=rt.validator,
                arrival=datetime.now(),
                chunk_rows=rt.settings.ingest_chunk_rows,
                keys=curated_key_index(rt.lake, uc),  # duplicates of curated rows, as ingesting would find them
            )
            for chunk in chunks:
                accepted += len(chunk.accepted)
                quarantined += len(chunk.quarantined)
                shown += [{"row": r.row_number, "reasons": r.reasons} for r in chunk.quarantined[: show - len(shown)]]
                if docs is None and chunk.validation is not None and chunk.validation.docs_index:
                    docs = str(chunk.validation.docs_index)
    except BatchRejected as err:
        _fail(f"batch would be rejected whole: {err.reason} ({err.rows_received} rows)", code=1)
    except _known_errors() as err:
        _fail(str(err))
    result = {
        "rows_received": accepted + quarantined,
        "rows_accepted": accepted,
        "rows_quarantined": quarantined,
        "quarantined": shown,
        "data_docs": docs,
    }
    _report(result, as_json=as_json, summary=summaries.validated)


@app.command()
def train(
    use_case: UseCaseOpt = "bike_demand",
    until: Annotated[str | None, typer.Option(help="Only train on rows before this date (YYYY-MM-DD).")] = None,
    compare_feature_sets: Annotated[
        bool | None,
        typer.Option(
            "--compare-feature-sets/--no-compare-feature-sets",
            help="Also score feature sets with the winner's algorithm and the same time-series CV: all "
            "features, all but each YAML feature group, the top-k by permutation importance; each a child "
            "run in MLflow, the table on the run (feature_selection/). Default: the YAML's "
            "training.feature_selection.compare.",
        ),
    ] = None,
    out_of_core: Annotated[
        bool,
        typer.Option(
            "--out-of-core",
            help="For a lake larger than one process holds, on the Dask cluster (MLOPS_DASK_ADDRESS): profile it "
            "chunk by chunk, select on its newest rows, fit the winner once per chunk of days on the workers "
            "(an ensemble), test it and the champion on the newest days, register it (docs/scaling.md).",
        ),
    ] = False,
    state_dir: StateDirOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Train every candidate algorithm on the curated data with time-ordered splits and time-series CV,
    log everything to MLflow and register the best. The first model becomes `champion`; later ones
    become `challenger` only if they beat the champion on the same held-out window by the use case's margin.
    Before training, the data version is analysed (see `mlops eda`).
    """
    if out_of_core and (until or compare_feature_sets):
        _fail("--out-of-core trains on the whole lake: it takes neither --until nor --compare-feature-sets")
    if out_of_core:
        from pipelines.settings import PipelineSettings

        # Checked before the flow starts (and Prefect, and its server): the address as the flow will read it.
        if not PipelineSettings().dask_address:
            _fail("--out-of-core runs on a Dask cluster: set MLOPS_DASK_ADDRESS to its scheduler (tcp://host:8786)")
    _flow_environment(state_dir)
    try:
        if out_of_core:
            with loading():
                from pipelines.outofcore import train_out_of_core_flow

            result = train_out_of_core_flow(use_case=use_case)
            _report(result, as_json=as_json, summary=summaries.trained_out_of_core)
            return
        with loading():
            from pipelines.train import train_flow

        result = train_flow(use_case=use_case, until=until, compare_feature_sets=compare_feature_sets)
        _report(result, as_json=as_json, summary=summaries.trained)
    except (*_known_errors(), ValueError) as err:
        _fail(str(err))


@app.command()
def eda(
    use_case: UseCaseOpt = "bike_demand",
    until: Annotated[str | None, typer.Option(help="Only analyse rows before this date (YYYY-MM-DD).")] = None,
    state_dir: StateDirOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Exploratory analysis of the curated data (the version a training run would read): per column
    type, missing share, distinct values, quantiles and outliers; duplicates; correlations (Pearson,
    Spearman, Cramér's V); the target and the target against each feature; the target over event
    time; and the warnings an analyst would raise (leakage, redundant, constant or almost-empty
    columns, class imbalance, heavy skew). Writes reports/<use_case>/eda/<data_version>.html and .json
    under the state directory (once per data version) and prints where, with the warnings.
    """
    _flow_environment(state_dir)
    try:
        with loading():
            from pipelines.eda import eda_flow

        _report(eda_flow(use_case=use_case, until=until), as_json=as_json, summary=summaries.analysed)
    except (*_known_errors(), ValueError) as err:
        _fail(str(err))


@app.command("model-card")
def model_card(
    version: Annotated[str | None, typer.Argument(help="Model version (default: the champion).")] = None,
    use_case: UseCaseOpt = "bike_demand",
    html: Annotated[bool, typer.Option("--html", help="Print the path of the HTML card instead.")] = False,
    state_dir: StateDirOpt = None,
) -> None:
    """Print a registered version's model card (Markdown): intended use, data version and its EDA,
    training window, test metrics with 95 % bootstrap intervals, the decision threshold and its rule,
    fairness per group, top features, limitations, and the promotion decision with its reason. Every
    training run writes one (MLflow artifact `card/`, and reports/<use_case>/cards/ in the state directory).
    """
    prepare_environment(state_dir)
    _require_pipelines()
    try:
        from pipelines.train import fetch_card

        markdown, page = fetch_card(use_case, version)
    except (*_known_errors(), ValueError) as err:
        _fail(str(err))
    typer.echo(str(page) if html else markdown.read_text())


@app.command()
def serve(
    use_case: UseCaseOpt = "bike_demand",
    host: Annotated[str, typer.Option(envvar="MLOPS_HOST", help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(envvar="MLOPS_PORT", help="Port to bind.")] = 8000,
    access_log: Annotated[
        bool,
        typer.Option(
            envvar="MLOPS_ACCESS_LOG",
            help="One log line per HTTP request. Off by default: every prediction is already in the "
            "prediction log and in /metrics, and a line per request costs throughput.",
        ),
    ] = False,
    state_dir: StateDirOpt = None,
) -> None:
    """Serve `models:/<model>@champion` over HTTP (FastAPI): POST /predict, POST /feedback,
    GET /health, GET /ready, GET /metrics (Prometheus), and the admin API under /admin (rollouts,
    reload; header X-Admin-Token). Every prediction is written to the prediction log.
    API docs at http://HOST:PORT/docs.
    """
    prepare_environment(state_dir)
    os.environ["MLOPS_USE_CASE"] = use_case
    from pydantic import ValidationError

    from services.serving.settings import ServingSettings

    try:
        settings = ServingSettings()  # fail here, with a message, rather than inside the server
    except ValidationError as err:
        _fail("; ".join(e["msg"].removeprefix("Value error, ") for e in err.errors()))
    except ValueError as err:  # a MLOPS_*_FILE secret that cannot be read
        _fail(str(err))
    _wait_for_dependencies(
        tracking_uri=settings.resolved_tracking_uri,
        databases={
            "prediction-log database": settings.resolved_prediction_log_url,
            "rollout-state database": settings.resolved_state_db_url,
        },
        timeout_s=settings.startup_timeout_seconds,
    )
    import uvicorn

    # No WebSocket endpoints: ws="none" spares start-up the import of a WebSocket implementation.
    uvicorn.run(
        "services.serving.app:app_from_env",
        factory=True,
        host=host,
        port=port,
        log_level="info",
        access_log=access_log,
        ws="none",
    )


@app.command()
def monitor(
    use_case: UseCaseOpt = "bike_demand",
    hours: Annotated[float, typer.Option(help="Window: the last N hours of the prediction log.")] = 24.0,
    retrain: Annotated[bool, typer.Option(help="Start retraining when drift is found.")] = True,
    state_dir: StateDirOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Compare recent predictions (and their labels, where they arrived) with the serving model's
    training reference using Evidently: per-feature drift, prediction drift and live quality.
    Writes an HTML report and a JSON summary; on drift, starts the retraining flow.
    """
    import time

    _flow_environment(state_dir)
    try:
        with loading():
            from pipelines.monitor import monitor_flow

        now = time.time()
        result = monitor_flow(use_case=use_case, since=now - hours * 3600, until=now, retrain=retrain)
        _report(result, as_json=as_json, summary=summaries.monitored)
    except _known_errors() as err:
        _fail(str(err))


@app.command()
def retrain(
    use_case: UseCaseOpt = "bike_demand",
    reason: Annotated[str, typer.Option(help="Why; recorded on the registered model.")] = "manual",
    deploy: Annotated[
        str,
        typer.Option(
            help="rollout: through the service's rollout; direct: promote at once; none: leave as "
            "challenger; auto: rollout when MLOPS_SERVING_URL is set, else direct."
        ),
    ] = "auto",
    state_dir: StateDirOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Retrain on all curated data. A model that beats the champion on the same held-out window becomes
    challenger and is then deployed: through a rollout in the running service (MLOPS_SERVING_URL), or
    promoted directly when no service is configured.
    """
    _flow_environment(state_dir)
    try:
        with loading():
            from pipelines.monitor import retrain_flow

        result = retrain_flow(use_case=use_case, reason=reason, deploy=deploy)
        _report(result, as_json=as_json, summary=summaries.retrained)
    except (*_known_errors(), ValueError) as err:
        _fail(str(err))


@app.command()
def demo(
    use_case: UseCaseOpt = "bike_demand",
    state_dir: StateDirOpt = None,
    months: Annotated[
        int | None,
        typer.Option(
            "--months", "--periods", help="Stop after this many drops (a month each, or the YAML's demo.period)."
        ),
    ] = None,
) -> None:
    """A year in production: bootstrap a model on the first months, then replay each later month as a
    batch drop (one of them corrupted), serve its records over real HTTP, send the labels back,
    monitor drift and retrain. Prints a month-by-month table and writes <state dir>/demo-summary.json.
    A use case may cut its drops by another period (`demo.period`: day, week, quarter, year).
    Each run starts fresh: it clears what an earlier run wrote (data, registry, reports), keeping Prefect's database.
    """
    root = _flow_environment(state_dir)
    try:
        with loading():
            from pipelines.demo import run_demo

        summary = run_demo(use_case=use_case, state_dir=root, months=months)
    except _known_errors() as err:
        _fail(str(err))
    typer.echo(f"\nSummary: {summary['summary_path']}")


@app.command()
def doctor(
    url: Annotated[
        str | None, typer.Option("--url", help="Also probe a running deployment: its gateway's (or service's) URL.")
    ] = None,
    root: Annotated[
        Path, typer.Option("--root", help="The project folder: its .env, docker-compose.yml and deploy/.")
    ] = Path(),
    state_dir: StateDirOpt = None,
    ca_cert: Annotated[
        Path | None, typer.Option("--ca-cert", help="Trust this certificate for --url (a self-signed one).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the findings as JSON.")] = False,
) -> None:
    """Audit the configuration (the environment, .env, the compose file, file modes, the repository) and,
    with --url, a running deployment, for what attackers look for first: default, short or shared tokens;
    dev mode; ports published beyond 127.0.0.1; databases reached without TLS outside a private network;
    MLflow without authentication; a world-readable state folder or .env; secrets in the repository; no
    TLS at the front. Each finding names its fix. Reads only; exit 1 when anything is found.
    """
    from cli.doctor import audit_configuration, audit_deployment, read_environment

    env = read_environment(root, os.environ)
    state = state_dir or Path(env.get("MLOPS_STATE_DIR", ".mlops"))
    findings = audit_configuration(root, env, state_dir=state)
    if url is not None:
        import httpx

        verify: Any = str(ca_cert) if ca_cert else True

        def get(address: str, **kwargs: Any) -> Any:
            return httpx.get(address, timeout=10, verify=verify, **kwargs)

        try:
            findings += audit_deployment(url, env, get=get)
        except httpx.HTTPError as err:
            _fail(f"{url} cannot be reached: {err}", code=3)
    if as_json:
        _print([finding.__dict__ for finding in findings])
    else:
        for finding in findings:
            typer.secho(f"[{finding.check}] {finding.problem}", fg=typer.colors.RED)
            typer.echo(f"    fix: {finding.fix}")
        typer.echo(f"{len(findings)} finding(s)" if findings else "no finding")
    raise typer.Exit(1 if findings else 0)


@app.command()
def settings(
    out: Annotated[Path | None, typer.Option("--out", help="Write it to this file instead of printing it.")] = None,
) -> None:
    """Every setting (MLOPS_* variables), its default, bounds and what it sets, as Markdown: the
    settings reference, generated from the settings classes (docs/settings.md is this output)."""
    from cli.settings_doc import settings_markdown

    text = settings_markdown()
    if out is None:
        typer.echo(text, nl=False)
    else:
        out.write_text(text)


@usecase_app.command("schema")
def usecase_schema(
    out: Annotated[Path | None, typer.Option("--out", help="Write it to this file instead of printing it.")] = None,
) -> None:
    """The JSON Schema of a use-case YAML, generated from the model that loads it. The project ships it as
    usecases/usecase.schema.json; a YAML that starts with `# yaml-language-server: $schema=./usecase.schema.json`
    is validated as it is typed (VS Code's YAML extension, and other editors with yaml-language-server)."""
    from core.usecase import yaml_schema

    text = json.dumps(yaml_schema(), indent=2) + "\n"
    if out is None:
        typer.echo(text, nl=False)
    else:
        out.write_text(text)


@app.command()
def bootstrap(use_case: UseCaseOpt = "bike_demand", state_dir: StateDirOpt = None) -> None:
    """Give a fresh registry its first champion: ingest the months before the use case's
    `demo.bootstrap_until` as batch drops and train on them. Does nothing when a champion exists,
    so it can run at every start of a stack.
    """
    _flow_environment(state_dir)
    _pipeline_dependencies()
    try:
        with loading():
            from pipelines.bootstrap import bootstrap_flow

        result = bootstrap_flow(use_case=use_case)
    except (*_known_errors(), ValueError) as err:
        _fail(str(err))
    _print({k: v for k, v in result.items() if k != "trained"})


@app.command()
def worker(
    use_case: UseCaseOpt = "bike_demand",
    state_dir: StateDirOpt = None,
) -> None:
    """Serve the loop's flows as Prefect deployments on the Prefect server (PREFECT_API_URL):
    watch-inbox (scheduled ingestion of new files in MLOPS_INBOX), monitor (on each new batch and on a
    schedule), retrain (started by an Automation on the drift event), train and deploy (on demand).
    With MLOPS_FLOW_POOL set, train and retrain go to that Docker work pool instead, each run in a
    container of its own (see `mlops flow-worker`). Runs until stopped.
    """
    prepare_environment(state_dir)
    _require_pipelines()
    _require_prefect_server("the worker", example="http://127.0.0.1:4200/api")
    from pipelines.settings import PipelineSettings

    settings = PipelineSettings()
    if not settings.inbox:
        _fail("set MLOPS_INBOX to the folder or URL to watch for batch files")
    _pipeline_dependencies(settings, http={"Prefect server": os.environ["PREFECT_API_URL"].rstrip("/") + "/health"})
    from pipelines.worker import serve_deployments

    serve_deployments(use_case=use_case, settings=settings)


@app.command("flow-worker")
def flow_worker() -> None:
    """Run the train and retrain flows in containers of their own: Prefect's Docker worker on the work pool
    MLOPS_FLOW_POOL (created when missing). Each flow container is made like this worker's own container
    (image, networks, named volumes, MLOPS_* settings), so it must run in one, with the engine's socket.
    Runs until stopped.
    """
    _require_pipelines()
    _require_prefect_server("the flow worker", example="http://prefect-server:4200/api")
    from pipelines.settings import PipelineSettings

    settings = PipelineSettings()
    if not settings.flow_pool:
        _fail("set MLOPS_FLOW_POOL to the name of the work pool the train and retrain flows are deployed to")
    from pipelines.containers import NoOwnContainer, ensure_pool, like, own_container

    try:
        container = like(own_container(), memory_limit=settings.flow_memory_limit)
    except NoOwnContainer as err:
        _fail(str(err))
    ensure_pool(settings.flow_pool, container=container)
    networks = ", ".join(container.networks)
    typer.echo(f"flow containers: {container.image} on {networks}, with volumes {', '.join(container.volumes)}")
    # Prefect's own worker from here on: this process becomes it (signals and exit code are its own).
    start = ["prefect", "worker", "start", "--pool", settings.flow_pool, "--type", "docker", "--with-healthcheck"]
    os.execvp("prefect", start)


@app.command("sample-batch")
def sample_batch(
    month: Annotated[
        str,
        typer.Argument(
            help="A drop of the use case's data set: a month, YYYY-MM (e.g. 2011-07), or the YAML's demo.period."
        ),
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Where to write the CSV batch file.")],
    use_case: UseCaseOpt = "bike_demand",
    corrupt: Annotated[bool, typer.Option(help="Break it the way real feeds break (for quarantine).")] = False,
) -> None:
    """Write one month of the use case's data set as a batch file, ready to drop into an inbox."""
    from core.settings import CommonSettings
    from core.usecase import UseCaseError, load_use_case

    try:
        from pipelines.drops import corrupt as corrupt_frame
        from pipelines.drops import read_raw, split_into_drops

        uc = load_use_case(use_case, usecases_dir=CommonSettings().usecases_dir)
        drops = split_into_drops(read_raw(uc), uc)
    except UseCaseError as err:
        _fail(str(err))
    if month not in drops:
        _fail(f"no drop '{month}' in {uc.name}'s data; drops: {', '.join(drops)}")
    frame = drops[month]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(corrupt_frame(frame, uc) if corrupt else frame.to_csv(index=False).encode())
    _print({"month": month, "rows": len(frame), "path": str(out)})


@app.command()
def replay(
    batch: Annotated[Path, typer.Argument(help="A batch file (CSV) with features and labels.")],
    url: Annotated[str, typer.Option(envvar="MLOPS_SERVING_URL", help="Base URL of the service.")] = (
        "http://127.0.0.1:8000"
    ),
    use_case: UseCaseOpt = "bike_demand",
    per_request: Annotated[int, typer.Option(min=1, help="Records per /predict request.")] = 1,
    repeat: Annotated[int, typer.Option(min=1, help="Send the batch this many times.")] = 1,
) -> None:
    """Live traffic from a batch file: each record to POST /predict, then its label to POST /feedback,
    so a running rollout has requests and ground truth to judge. Prints the versions that answered.
    """
    import httpx

    from core.settings import CommonSettings
    from core.usecase import UseCaseError, load_use_case

    try:
        from pipelines.batches import ROW_NUMBER, BatchRejected, coerce_types, parse_csv
        from pipelines.drops import records_and_labels
        from pipelines.traffic import serve_month

        uc = load_use_case(use_case, usecases_dir=CommonSettings().usecases_dir)
        typed, failures = coerce_types(parse_csv(batch.read_bytes(), uc).frame, uc)
    except (UseCaseError, BatchRejected, OSError) as err:
        _fail(str(err))
    # Rows that would fail validation are skipped: the service would answer them with 422.
    clean = typed[~typed[ROW_NUMBER].isin(failures)].dropna(subset=[*uc.features, uc.target])
    features, labels = records_and_labels(clean, uc)
    answered: dict[str, int] = {}
    try:
        with httpx.Client(base_url=url, timeout=30) as client:
            for n in range(repeat):
                served = serve_month(
                    client, month=f"replay{n}", features=features, labels=labels, per_request=per_request
                )
                for version in served.versions:
                    answered[version] = answered.get(version, 0) + 1
    except httpx.HTTPError as err:
        _fail(f"the service at {url} did not answer: {err}")
    _print({"records": len(features) * repeat, "versions": sorted(answered, key=int)})


def main() -> None:  # pragma: no cover - console-script entry point
    try:
        sys.exit(app())
    finally:
        # The interpreter's last garbage collections at exit walk every object the command loaded
        # (Great Expectations, pandas, Prefect): 0.6 s of a 744-row `mlops ingest`, measured. Frozen
        # objects are skipped; the exit handlers still run (Prefect's drain their queues there).
        gc.freeze()
