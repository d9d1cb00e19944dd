"""``mlops stream``: events through a broker, checked on arrival, landed, scored and alerted on.

Imports what each command needs when it runs: the consumer never loads Prefect unless it
announces to a Prefect server, nor Great Expectations (its checks are derived from the suite).
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cli.options import JsonOpt, StateDirOpt, UseCaseOpt
from cli.options import fail as _fail
from cli.options import print_json as _print

if TYPE_CHECKING:
    from core.usecase import UseCase
    from pipelines.settings import StreamSettings

stream_app = typer.Typer(
    help="Streaming ingestion through a broker (Redis Streams): produce, consume, measure, inspect.",
    no_args_is_help=True,
)


def _setup(use_case: str, state_dir: Path | None) -> tuple[StreamSettings, UseCase]:
    from core.telemetry import disable_telemetry
    from core.usecase import UseCaseError, load_use_case
    from pipelines.settings import StreamSettings

    disable_telemetry()
    try:
        settings = StreamSettings(**({"state_dir": state_dir} if state_dir else {}))
        return settings, load_use_case(use_case, usecases_dir=settings.usecases_dir)
    except (UseCaseError, ValueError) as err:
        _fail(str(err))


@stream_app.command()
def consume(
    use_case: UseCaseOpt = "bike_demand",
    state_dir: StateDirOpt = None,
    latency_log: Annotated[
        Path | None, typer.Option(help="Append each event's produced -> curated seconds here (float32; benchmarks).")
    ] = None,
) -> None:
    """Consume the use case's stream until stopped (SIGTERM, Ctrl-C): check each event with the batch
    suite's rules, dead-letter and quarantine bad ones with their reasons, land accepted ones in the
    curated lake in micro-batches, score them through MLOPS_SERVING_URL, and watch the YAML's alerts.

    Restartable at any point: nothing is lost or curated twice. One consumer holds a stream; a second
    one waits as a standby. Metrics on MLOPS_STREAM_METRICS_PORT (/metrics).
    """
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    settings, uc = _setup(use_case, state_dir)
    from pipelines.stream.app import build, run
    from pipelines.stream.broker import BrokerUnavailable
    from pipelines.stream.checks import UnsupportedExpectation

    try:
        process = build(settings, uc, latency_log=latency_log)
        run(process, settings=settings)
    except UnsupportedExpectation as err:
        _fail(str(err))
    except BrokerUnavailable as err:
        _fail(str(err), code=3)
    except OSError as err:
        _fail(f"cannot start the consumer: {err}", code=3)


@stream_app.command()
def produce(
    use_case: UseCaseOpt = "bike_demand",
    rate: Annotated[float, typer.Option(help="Events per second (0: as fast as the broker takes them).", min=0)] = 100,
    count: Annotated[
        int | None, typer.Option(help="Stop after this many events [default: the data once].", min=1)
    ] = None,
    drop: Annotated[str | None, typer.Option(help="Only the rows of one drop of the data (a month: 2011-10).")] = None,
    sources: Annotated[int, typer.Option(help="Sources the events come from, in turn (source-1, ...).", min=1)] = 3,
    faults: Annotated[
        str | None,
        typer.Option(
            help="Faults to inject: malformed, out_of_range, duplicates, out_of_order as shares, silence as "
            "SOURCE@EVENTS; e.g. malformed=0.01,duplicates=0.02,silence=source-2@500."
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the fault injection.")] = 0,
    state_dir: StateDirOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Replay the use case's rows as events on its stream, at a rate, with optional faults."""
    settings, uc = _setup(use_case, state_dir)
    from pipelines.stream.broker import BrokerUnavailable, RedisStreams
    from pipelines.stream.consumer import StreamNames
    from pipelines.stream.producer import Faults, plan, produce, rows_of

    try:
        injected = Faults.parse(faults)
        rows = rows_of(uc, drop=drop, loops=1 if count is None else 1 + count // 1_000)
    except ValueError as err:
        _fail(str(err))
    names = StreamNames.of(settings.stream_prefix, uc.name)
    events = plan(rows, uc, sources=[f"source-{i + 1}" for i in range(sources)], faults=injected, seed=seed)
    if count is not None:
        events = (e for _, e in zip(range(count), events, strict=False))
    broker = RedisStreams(settings.stream_url)
    try:
        done = produce(events, broker, stream=names.events, rate=rate or None, max_len=settings.stream_max_len)
    except BrokerUnavailable as err:
        _fail(str(err), code=3)
    summary = {"stream": names.events, **done.summary()}
    if as_json:
        _print(summary)
    else:
        typer.echo(
            f"{summary['sent']} events to {names.events} in {summary['seconds']} s "
            f"({summary['events_per_s']}/s); faults: {summary['faults'] or 'none'}"
        )


@stream_app.command()
def bench(
    use_case: UseCaseOpt = "credit_default",
    quick: Annotated[bool, typer.Option("--quick", help="Two short levels (about 30 s) instead of four.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Throughput and latency at several loads, up to saturation: a real consumer process per level,
    this process producing (1 % malformed, 1 % duplicates) and receiving the alerts' webhook."""
    settings, uc = _setup(use_case, None)
    from pipelines.stream.bench import bench as run_bench
    from pipelines.stream.broker import BrokerUnavailable

    try:
        result = run_bench(uc, settings, quick=quick)
    except BrokerUnavailable as err:
        _fail(str(err), code=3)
    except ValueError as err:
        _fail(str(err))
    if as_json:
        typer.echo(json.dumps(result))  # one line: the summary's keys, then each level
        return
    for level in result["levels"]:
        typer.echo(
            f"rate {level['rate']}: {level['events_per_s']} events/s landed, produced -> curated p50 "
            f"{level['p50_ms']} ms p99 {level['p99_ms']} ms, alerts {level['alerts_fired']}/{level['alerts_expected']} "
            f"(p99 {level['alert_p99_ms']} ms), duplicates curated {level['duplicates_in_curated']}"
        )


@stream_app.command()
def status(use_case: UseCaseOpt = "bike_demand", state_dir: StateDirOpt = None, as_json: JsonOpt = False) -> None:
    """The stream as the broker and the consumer's checkpoint see it: length, backlog, lease, totals."""
    settings, uc = _setup(use_case, state_dir)
    from pipelines.stream.broker import BrokerUnavailable, RedisStreams
    from pipelines.stream.consumer import Checkpoint, StreamNames

    names = StreamNames.of(settings.stream_prefix, uc.name)
    broker = RedisStreams(settings.stream_url)
    try:
        undelivered, pending = broker.backlog(names.events, names.group)
        info = {
            "stream": names.events,
            "length": broker.length(names.events),
            "undelivered": undelivered,
            "pending": pending,
            "dead_letters": broker.length(names.dead),
            "lease_holder": broker.lease_holder(names.lease),
        }
    except BrokerUnavailable as err:
        _fail(str(err), code=3)
    checkpoint = Checkpoint.load(settings.layout.root / "stream" / uc.name / "checkpoint.json")
    info |= {"checkpoint": checkpoint.__dict__}
    if as_json:
        _print(info)
    else:
        for key, value in info.items():
            typer.echo(f"{key}: {value}")
