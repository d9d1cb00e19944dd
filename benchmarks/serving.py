"""Serving performance side by side: the raw model, the HTTP floor, `mlflow models serve`, MLServer, BentoML, ours.

    python -m benchmarks.serving --quick     # ~2 minutes; prints one JSON object with the goal ratios
    python -m benchmarks.serving             # the full set (make bench); appends to docs/performance.md

One machine, one run, one model: the bike-demand histogram-gradient-boosting
pipeline, registered as v1 (and v2 for the canary) in an MLflow tracking server
that runs as the compose stack runs it (a database, artifacts proxied by the
server). Both servers load the model from it.

    (a) the floor: ``predict`` on a one-row frame, and on a 1,000-row frame, in a fresh process
        holding only the model (``benchmarks.floor``); beside it (a'), the compiled pipeline the
        service predicts with (``models.compiled``), which gives the same answers
    (b) ``mlflow models serve --env-manager local`` on v1
    (c) our service serving v1 (prediction logging on, as always)
    (d) our service during a canary of v2 at 50 %, both versions loaded
    (e) the HTTP floor: the service's own stack (server, middlewares, record parsing) answering
        /predict with no model and no log behind it (``benchmarks.http_floor``)
    (f) Seldon MLServer and (g) BentoML, the strongest peers, serving v1 with adaptive batching,
        each from a virtual environment of its own (``benchmarks.peers``; ``--no-peers`` skips them)

Load comes from ``wrk`` (Debian package ``wrk``), its own process, over loopback
keep-alive connections. Every answer of our service under load is checked
against in-process ``predict`` of the version that answered (matched through
the ``X-Request-ID`` it echoes); a wrong or failed answer fails the benchmark.
MLflow's and the peers' answers are checked once, before their load runs.

The servers run side by side and every repetition measures every point once,
in turn ((a), then (e), (b) and (c) point by point, then (d): a canary started and
aborted on the same process); goal ratios are taken within a repetition and
their median reported, so the speed of a shared machine, which drifts within
minutes, weighs on both sides of each ratio alike. Cold start is the median of
three starts.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks import peers, record
from benchmarks.cli import cli_ingest_seconds

ROOT = Path(__file__).resolve().parents[1]
USE_CASE = "bike_demand"
TOKEN = "benchmark-admin-token-0123456789"
N_RECORDS = 200  # distinct single-row requests, cycled
BATCH_ROWS = 1000
TOLERANCE = 1e-9  # relative: the same trees on the same inputs give the same numbers

GOALS = {
    "throughput_vs_mlflow_c16": (">=", 5.0),
    "p50_overhead_ms_c1": ("<=", None),  # 0.5 x raw p50 + 1 ms, computed per run
    "canary_vs_single": (">=", 0.9),
    "batch_vs_raw": (">=", 0.7),
    "cold_start_s": ("<=", 3.0),
    # The tail, with prediction logging on: a stall of the event loop shows here first.
    "throughput_vs_floor_c16": (">=", 0.5),
    # Against the strongest peers, each serving the same model with adaptive batching.
    "throughput_vs_mlserver_c16": (">=", 4.0),
    "throughput_vs_bentoml_c16": (">=", 4.0),
    "p99_vs_peers_c16": ("<", 1.0),
    # One month (744 rows) through `mlops ingest`, the local Prefect server running (benchmarks.cli);
    # the first command, which starts that server, is reported beside it as cli_ingest_first_s.
    "cli_ingest_s": ("<=", 4.0),
    "p99_over_p50_c16": ("<=", 3.0),
    "p99_over_p50_c64": ("<=", 4.0),
}


class BenchmarkError(RuntimeError):
    pass


# -- set-up -----------------------------------------------------------------------------------------
def train_and_register(tracking_uri: str) -> dict[str, Any]:
    """v1 and v2: histogram gradient boosting on the first half of the year (v2 with another seed)."""
    import pandas as pd

    from core.settings import default_usecases_dir
    from core.usecase import load_use_case
    from models.compiler import compile_model
    from models.frames import coerce_features, target_vector
    from models.registry import CHAMPION, MlflowRegistry, TrainingRecord
    from models.training import make_pipeline

    uc = load_use_case(USE_CASE, usecases_dir=default_usecases_dir())
    raw = pd.read_csv(uc.resolve_source())
    frame = raw[raw["mnth"].isin(["Jan", "Feb", "March", "April", "May", "June"])]
    X, y = coerce_features(frame, uc), target_vector(frame, uc)
    registry = MlflowRegistry(tracking_uri=tracking_uri)
    import sklearn

    versions = []
    for seed in (0, 1):
        model = make_pipeline(uc, "hist_gradient_boosting")
        model.set_params(model__random_state=seed)
        model.fit(X, y)
        ref = registry.log_and_register(
            TrainingRecord(
                experiment="benchmark",
                model_name=uc.model_name,
                model=model,
                params={"seed": seed},
                metrics={},
                tags={"algorithm": "hist_gradient_boosting"},
                input_example=X.head(2),
                reference=X.head(100).assign(prediction=model.predict(X.head(100)), target=y[:100]),
                artifacts=[],
                pip_requirements=[f"scikit-learn=={sklearn.__version__}"],
                compiled=compile_model(model, uc),  # as the training flow registers it
            )
        )
        versions.append(ref.version)
    registry.set_alias(uc.model_name, CHAMPION, versions[0])
    records = [
        {k: (int(v) if uc.schema_.columns[k].type == "int" else v) for k, v in row.items()}
        for row in X.sample(N_RECORDS, random_state=7).to_dict(orient="records")
    ]
    batch = [
        {k: (int(v) if uc.schema_.columns[k].type == "int" else v) for k, v in row.items()}
        for row in X.sample(BATCH_ROWS, random_state=8).to_dict(orient="records")
    ]
    return {"use_case": uc, "registry": registry, "versions": versions, "records": records, "batch": batch}


# -- (a) the floor ----------------------------------------------------------------------------------
def write_floor_inputs(setup: dict[str, Any], directory: Path) -> Path:
    """What ``benchmarks.floor`` measures: v1 as skops bytes, the records and the batch."""
    from skops.io import dumps

    uc, registry = setup["use_case"], setup["registry"]
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "model.skops").write_bytes(dumps(registry.load(uc.model_name, setup["versions"][0])))
    spec = {"use_case": uc.name, "records": setup["records"], "batch": setup["batch"]}
    (directory / "records.json").write_text(json.dumps(spec))
    return directory


def raw_predict(directory: Path, *, repeat: int, env: dict[str, str]) -> dict[str, float]:
    """(a) in a fresh process of its own (see ``benchmarks.floor`` for why not in this one)."""
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.floor", str(directory), str(repeat)],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if out.returncode != 0:
        raise BenchmarkError(f"the floor measurement failed: {out.stderr[-1500:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def expected_values(setup: dict[str, Any]) -> dict[str, dict[str, list[float]]]:
    """What each version must answer, per single record and for the batch (in-process predict)."""
    from models.frames import feature_frame

    uc, registry = setup["use_case"], setup["registry"]
    out = {}
    for version in setup["versions"]:
        model = registry.load(uc.model_name, version)
        out[version] = {
            "single": [float(model.predict(feature_frame([r], uc))[0]) for r in setup["records"]],
            "batch": [float(v) for v in model.predict(feature_frame(setup["batch"], uc))],
        }
    return out


# -- processes --------------------------------------------------------------------------------------
def rss_mb(pid: int) -> float:
    """Resident memory of a process and its children (MLflow's server forks a worker)."""
    total = 0
    pids = [pid]
    with contextlib.suppress(OSError):
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        pids += [int(c) for c in children]
    for p in pids:
        with contextlib.suppress(OSError):
            status = Path(f"/proc/{p}/status").read_text()
            total += int(re.search(r"VmRSS:\s+(\d+)", status).group(1))  # type: ignore[union-attr]
    return total / 1024


# -- load with wrk ----------------------------------------------------------------------------------
LUA = r"""
local bodies = {BODIES}
local expected = {EXPECTED}
local check = {CHECK}
-- globals, not locals: done() reads them from each thread with thread:get
n = 0
mismatches, checked, failures = 0, 0, 0
first_problem = ""
run_id = ""  -- this run and thread (init's argument, setup's count): request ids never repeat across runs

function init(args) run_id = args[1] .. "-" .. thread_number end

function request()
  n = n + 1
  local i = (n % #bodies) + 1
  local headers = {["Content-Type"] = "application/json"}
  if check then headers["X-Request-ID"] = "r" .. i .. "-" .. run_id .. "-" .. n end
  return wrk.format("POST", wrk.path, headers, bodies[i])
end

function response(status, headers, body)
  if status ~= 200 then
    failures = failures + 1
    if first_problem == "" then first_problem = "status " .. status .. ": " .. string.sub(body, 1, 200) end
    return
  end
  if not check then return end
  local version = headers["X-Model-Version"] or headers["x-model-version"]
  local rid = headers["X-Request-ID"] or headers["x-request-id"]
  local i = tonumber(string.match(rid, "^r(%d+)-"))
  local want = expected[version] and expected[version][i]
  local k = 0
  for value in string.gmatch(body, '"value":([^,}]+)') do
    k = k + 1
    local got = tonumber(value)
    local w = want and want[k]
    checked = checked + 1
    if w == nil or got == nil or math.abs(got - w) > TOL * math.max(1, math.abs(w)) then
      mismatches = mismatches + 1
      if first_problem == "" then
        first_problem = "v" .. tostring(version) .. " request " .. i .. " value " .. k ..
          ": got " .. tostring(value) .. ", want " .. tostring(w)
      end
    end
  end
  if want and k ~= #want then
    mismatches = mismatches + 1
    if first_problem == "" then first_problem = "wrong number of values: " .. k end
  end
end

local threads = {}
function setup(thread)
  table.insert(threads, thread)
  thread:set("thread_number", #threads)
end

function done(summary, latency, requests)
  local m, c, f, p = 0, 0, 0, ""
  for _, t in ipairs(threads) do
    m = m + t:get("mismatches"); c = c + t:get("checked"); f = f + t:get("failures")
    if p == "" then p = t:get("first_problem") end
  end
  io.write(string.format('RESULT {"mean_us": %d, "p50_us": %d, "p99_us": %d, "requests": %d, "errors": %d, ' ..
    '"mismatches": %d, "checked": %d, "failures": %d, "first_problem": %q}\n',
    math.floor(latency.mean), latency:percentile(50), latency:percentile(99), summary.requests,
    summary.errors.connect + summary.errors.read + summary.errors.write +
      summary.errors.status + summary.errors.timeout,
    m, c, f, p))
end
"""


def _lua_string(s: str) -> str:
    return "[==[" + s + "]==]"


def lua_script(bodies: list[str], expected: dict[str, list[list[float]]] | None) -> str:
    if expected is None:
        exp = "{}"
    else:
        exp = (
            "{"
            + ",".join(
                f'["{v}"] = {{' + ",".join("{" + ",".join(repr(x) for x in vals) + "}" for vals in per_body) + "}"
                for v, per_body in expected.items()
            )
            + "}"
        )
    return (
        LUA.replace("{BODIES}", "{" + ",".join(_lua_string(b) for b in bodies) + "}")
        .replace("{EXPECTED}", exp)
        .replace("{CHECK}", "true" if expected is not None else "false")
        .replace("TOL", repr(TOLERANCE))
    )


@dataclass
class LoadResult:
    target: str
    kind: str  # "single" | "batch"
    concurrency: int
    throughput: float  # requests/s
    p50_ms: float
    p99_ms: float
    rows_per_s: float
    checked: int
    runs: list[float] = field(default_factory=list)  # throughput of each repeat


def wrk(url: str, script: Path, *, concurrency: int, seconds: float) -> dict[str, Any]:
    threads = min(concurrency, 2)
    cmd = ["wrk", f"-t{threads}", f"-c{concurrency}", f"-d{seconds:g}s", "--timeout", "10s", "-s", str(script), url]
    cmd += ["--", uuid.uuid4().hex[:12]]  # the script's run id
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60, check=False)
    match = re.search(r"^RESULT (\{.*\})$", out.stdout, re.M)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out.stdout)
    if out.returncode != 0 or not match or not rps:
        raise BenchmarkError(f"wrk failed: {out.stdout[-1500:]} {out.stderr[-1500:]}")
    result = json.loads(match.group(1))
    result["rps"] = float(rps.group(1))
    return result


Point = tuple[str, str, int]  # (target, kind, concurrency)


def run_point(url: str, script: Path, *, point: Point, seconds: float) -> dict[str, Any]:
    """One wrk run at one point; any failed, refused or wrong answer fails the benchmark."""
    target, kind, concurrency = point
    run = wrk(url, script, concurrency=concurrency, seconds=seconds)
    if run["failures"] or run["errors"] or run["mismatches"]:
        raise BenchmarkError(
            f"{target} {kind} c{concurrency}: {run['failures']} failed, {run['errors']} socket errors, "
            f"{run['mismatches']} wrong answers; first: {run['first_problem']}"
        )
    # Batch rows/s the server sustains: rows x concurrency / mean latency (Little's law). The request
    # rate wrk reports also counts wrk's own time checking the 1,000 values of every answer, a cost
    # of the benchmark, not of the server, and one MLflow's load never pays (its answers are checked
    # before its load). Single rows: the request rate, as measured.
    run["rows_per_s"] = BATCH_ROWS * concurrency / (run["mean_us"] / 1e6) if kind == "batch" else run["rps"]
    return run


def aggregate(point: Point, runs: list[dict[str, Any]]) -> LoadResult:
    """A point's medians over its repetitions."""
    target, kind, concurrency = point
    return LoadResult(
        target=target,
        kind=kind,
        concurrency=concurrency,
        throughput=statistics.median(r["rps"] for r in runs),
        p50_ms=statistics.median(r["p50_us"] for r in runs) / 1000,
        p99_ms=statistics.median(r["p99_us"] for r in runs) / 1000,
        rows_per_s=statistics.median(r["rows_per_s"] for r in runs),
        checked=sum(r["checked"] for r in runs),
        runs=[r["rps"] for r in runs],
    )


# -- the run ----------------------------------------------------------------------------------------
def _peers(setup: dict[str, Any], directory: Path, *, env: dict[str, str]) -> list[peers.Peer]:
    """MLServer and BentoML serving v1, each from its own virtual environment (installed once)."""
    from pipelines.traffic import free_port

    uc = setup["use_case"]
    model = peers.write_model(setup["registry"].load(uc.model_name, setup["versions"][0]), directory)
    try:
        return [
            peers.mlserver(model, port=free_port(), grpc_port=free_port(), metrics_port=free_port(), env=env),
            peers.bentoml(model, port=free_port(), env=env),
        ]
    except peers.PeerUnavailable as err:
        raise BenchmarkError(f"{err} (--no-peers runs without them)") from None


def check_answers(
    name: str,
    url: str,
    setup: dict[str, Any],
    expected: dict[str, Any],
    *,
    body: Callable[[dict[str, Any]], str],
    values: Callable[[Any], list[float]],
) -> None:
    """A server that is not ours (MLflow's, a peer) serves v1: its answers are the in-process ones,
    checked once before its load (under load its answers carry no version to check them by)."""
    import httpx

    v1 = setup["versions"][0]
    with httpx.Client(timeout=30) as client:
        for i, record in enumerate(setup["records"][:50]):
            response = client.post(url, content=body(record), headers={"Content-Type": "application/json"})
            if response.status_code != 200:
                raise BenchmarkError(f"{name} answered {response.status_code}: {response.text[:300]}")
            got, want = values(response.json())[0], expected[v1]["single"][i]
            if abs(got - want) > TOLERANCE * max(1, abs(want)):
                raise BenchmarkError(f"{name} answered {got} for record {i}, in-process predict gives {want}")


def run(*, quick: bool, with_peers: bool = True) -> dict[str, Any]:
    from pipelines.traffic import running_tracking_server

    if shutil.which("wrk") is None:
        raise BenchmarkError("needs wrk on PATH (Debian/Ubuntu: apt-get install wrk; macOS: brew install wrk)")
    started = time.perf_counter()
    workdir = Path(tempfile.mkdtemp(prefix="mlops-bench-"))
    state = workdir / "state"
    env = {
        **os.environ,
        "DO_NOT_TRACK": "true",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "MLOPS_STATE_DIR": str(state),
        "MLOPS_USE_CASE": USE_CASE,
        "MLOPS_ADMIN_TOKEN": TOKEN,
        "GIT_PYTHON_REFRESH": "quiet",
        # quick mode's output is one JSON object: no progress bars, no run links on stdout
        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
        "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",
        # the scoring server starts `uvicorn` from PATH: this environment's
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    os.environ.update(
        {
            k: env[k]
            for k in (
                "DO_NOT_TRACK",
                "MLFLOW_DISABLE_TELEMETRY",
                "GIT_PYTHON_REFRESH",
                "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR",
                "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT",
            )
        }
    )
    with running_tracking_server(workdir, env=env) as tracking_uri:
        env |= {"MLOPS_TRACKING_URI": tracking_uri, "MLFLOW_TRACKING_URI": tracking_uri}
        report = _run_against(tracking_uri, env=env, workdir=workdir, quick=quick, with_peers=with_peers)
    shutil.rmtree(workdir, ignore_errors=True)
    return {**report, "wall_seconds": round(time.perf_counter() - started, 1)}


def _run_against(
    tracking_uri: str, *, env: dict[str, str], workdir: Path, quick: bool, with_peers: bool
) -> dict[str, Any]:
    """Every point once per repetition, in turn, and the goal ratios within each repetition.

    A shared machine's speed drifts within minutes. Measuring (a), (b), (c) and (d) one
    after another for minutes each would put that drift into the ratios; interleaved, a slow
    stretch hits every target of a repetition alike, and the median over repetitions is reported.
    """
    from pipelines.traffic import free_port, running_process

    concurrencies = (1, 16, 64)
    seconds, repeat = (2.0, 1) if quick else (6.0, 3)
    setup = train_and_register(tracking_uri)
    expected = expected_values(setup)
    v1, v2 = setup["versions"]
    floor_inputs = write_floor_inputs(setup, workdir / "floor")
    peer_servers = _peers(setup, workdir / "peers", env=env) if with_peers else []
    servers = ("floor", "mlflow", *(peer.name for peer in peer_servers), "ours")
    points: list[Point] = [(t, "single", c) for c in concurrencies for t in servers]
    points += [("mlflow", "batch", 1), ("ours", "batch", 1)]
    canary_points: list[Point] = [("ours-canary", "single", c) for c in concurrencies] + [("ours-canary", "batch", 1)]

    # Scripts: our answers are checked against in-process predict of the version that answered;
    # MLflow's once, before its load (its answers carry no version).
    columns = list(setup["records"][0])
    bodies = {
        ("mlflow", "single"): ([json.dumps({"dataframe_records": [r]}) for r in setup["records"]], None),
        ("mlflow", "batch"): (
            [json.dumps({"dataframe_split": {"columns": columns, "data": [list(r.values()) for r in setup["batch"]]}})],
            None,
        ),
        ("ours", "single"): (
            [json.dumps(r) for r in setup["records"]],
            {v: [[x] for x in expected[v]["single"]] for v in (v1, v2)},
        ),
        ("ours", "batch"): ([json.dumps(setup["batch"])], {v: [expected[v]["batch"]] for v in (v1, v2)}),
        ("floor", "single"): ([json.dumps(r) for r in setup["records"]], None),
        **{(peer.name, "single"): ([peer.body(r) for r in setup["records"]], None) for peer in peer_servers},
    }
    scripts = {}
    for (target, kind), (texts, answers) in bodies.items():
        scripts[target, kind] = workdir / f"{target}-{kind}.lua"
        scripts[target, kind].write_text(lua_script(texts, answers))

    mlflow_port, our_port, floor_port = free_port(), free_port(), free_port()
    mlflow_cmd = [
        "mlflow", "models", "serve", "-m", f"models:/{setup['use_case'].model_name}/{v1}", "--env-manager", "local",
        "-h", "127.0.0.1", "-p", str(mlflow_port), "-w", "1",
    ]  # fmt: skip
    # The documented entry point, as the compose stack starts it: cold start includes its checks.
    ours_cmd = [str(Path(sys.executable).with_name("mlops")), "serve", "--host", "127.0.0.1", "--port"]
    base = f"http://127.0.0.1:{our_port}"
    # (e) the HTTP floor: the service's stack with no model and no log behind it (benchmarks.http_floor)
    floor_cmd = [
        sys.executable, "-m", "uvicorn", "benchmarks.http_floor:create_app", "--factory", "--ws", "none",
        "--host", "127.0.0.1", "--port", str(floor_port), "--log-level", "warning",
    ]  # fmt: skip
    urls = {
        "mlflow": f"http://127.0.0.1:{mlflow_port}/invocations",
        "ours": f"{base}/predict",
        "floor": f"http://127.0.0.1:{floor_port}/predict",
        **{peer.name: peer.url for peer in peer_servers},
    }
    urls["ours-canary"] = urls["ours"]
    cold: dict[str, list[float]] = {name: [] for name in servers if name != "floor"}
    # Our cold start, three times (the last process stays up for the load), each on its own port.
    for _ in range(2):
        port = free_port()
        with running_process(
            [*ours_cmd, str(port)], env=env, probe=f"http://127.0.0.1:{port}/ready", log_path=workdir / "cold.log"
        ) as proc:
            cold["ours"].append(proc.ready_after_s)

    runs: dict[Point, list[dict[str, Any]]] = {pt: [] for pt in points + canary_points}
    floors: list[dict[str, float]] = []
    memory: dict[str, float] = {}
    with contextlib.ExitStack() as up:
        mlflow_proc = up.enter_context(
            running_process(
                mlflow_cmd,
                env=env,
                probe=f"http://127.0.0.1:{mlflow_port}/ping",
                log_path=workdir / "mlflow.log",
                cwd=ROOT,
            )
        )
        our_proc = up.enter_context(
            running_process(
                [*ours_cmd, str(our_port)], env=env, probe=f"{base}/ready", log_path=workdir / "ours.log", cwd=ROOT
            )
        )
        up.enter_context(
            running_process(
                floor_cmd,
                env=env,
                probe=f"http://127.0.0.1:{floor_port}/health",
                log_path=workdir / "floor.log",
                cwd=ROOT,
            )
        )
        peer_procs = {
            peer.name: up.enter_context(
                running_process(
                    peer.command,
                    env=peer.env,
                    probe=peer.probe,
                    log_path=workdir / f"{peer.name}.log",
                    timeout=180,
                    cwd=ROOT,
                )
            )
            for peer in peer_servers
        }
        for name, proc in [("mlflow", mlflow_proc), ("ours", our_proc), *peer_procs.items()]:
            cold[name].append(proc.ready_after_s)
        check_answers(
            "mlflow",
            urls["mlflow"],
            setup,
            expected,
            body=lambda record: json.dumps({"dataframe_records": [record]}),
            values=lambda answer: answer["predictions"],
        )
        for peer in peer_servers:
            check_answers(peer.name, peer.url, setup, expected, body=peer.body, values=peer.values)
        for rep in range(repeat):
            floors.append(raw_predict(floor_inputs, repeat=300 if quick else 1000, env=env))
            for pt in points:
                runs[pt].append(_measure(urls, scripts, pt, seconds=seconds, warm_up=rep == 0))
            if rep == 0:  # one version loaded, after load: before a canary's second version ever was
                memory["ours"] = rss_mb(our_proc.pid)
            with _canary(base, v2):
                for pt in canary_points:
                    runs[pt].append(_measure(urls, scripts, pt, seconds=seconds, warm_up=rep == 0))
                memory["ours-canary"] = rss_mb(our_proc.pid)
        memory["mlflow"] = rss_mb(mlflow_proc.pid)
        memory |= {name: rss_mb(proc.pid) for name, proc in peer_procs.items()}

    results = [aggregate(pt, runs[pt]) for pt in points + canary_points]
    floor = {k: statistics.median(f[k] for f in floors) for k in floors[0]}
    ratios = summarize(floors, runs, cold_start_s=statistics.median(cold["ours"]))
    # The command line, with the servers stopped: a small batch through `mlops ingest`.
    ratios |= cli_ingest_seconds(env=env)  # in state folders of its own
    return {
        "quick": quick,
        "machine": machine(),
        "floor": floor,
        "results": [asdict(r) for r in results],
        "memory_mb": memory,
        "cold_start_s": {k: statistics.median(v) for k, v in cold.items()},
        "ratios": ratios,
        "goals_met": goals_met(ratios, floor),
    }


def _measure(
    urls: dict[str, str], scripts: dict[tuple[str, str], Path], point: Point, *, seconds: float, warm_up: bool
) -> dict[str, Any]:
    target, kind, concurrency = point
    url, script = urls[target], scripts[target.removesuffix("-canary"), kind]
    if warm_up:
        wrk(url, script, concurrency=concurrency, seconds=min(seconds, 1.0))  # not counted
    return run_point(url, script, point=point, seconds=seconds)


@contextlib.contextmanager
def _canary(base: str, candidate: str) -> Iterator[None]:
    """A 50 % canary of ``candidate`` on our service for the block, aborted after it."""
    import httpx

    headers = {"X-Admin-Token": TOKEN}
    config = {
        "strategy": "canary",
        "candidate_version": candidate,
        "steps": [{"weight": 0.5, "bake_seconds": 3600}, {"weight": 1.0, "bake_seconds": 0}],
    }
    response = httpx.post(f"{base}/admin/rollouts", json=config, headers=headers, timeout=30)
    if response.status_code != 201:
        raise BenchmarkError(f"could not start the canary: {response.status_code} {response.text}")
    _wait_for_candidate(base, headers, candidate)
    try:
        yield
    finally:
        httpx.post(f"{base}/admin/rollouts/{response.json()['id']}/abort", headers=headers, timeout=30)
        _wait_for_candidate(base, headers, None)


def _wait_for_candidate(base: str, headers: dict[str, str], version: str | None) -> None:
    import httpx

    deadline = time.monotonic() + 30
    while httpx.get(f"{base}/admin/status", headers=headers, timeout=10).json()["candidate_version"] != version:
        if time.monotonic() > deadline:
            raise BenchmarkError(f"the service's candidate did not become {version} within 30 s")
        time.sleep(0.05)


def summarize(
    floors: list[dict[str, float]], runs: dict[Point, list[dict[str, Any]]], *, cold_start_s: float
) -> dict[str, float]:
    """Each ratio within each repetition (its points ran minutes apart at most), then their medians."""

    def per_rep(value: Callable[[int], float]) -> float:
        return statistics.median(value(i) for i in range(len(floors)))

    def at(target: str, kind: str, c: int, i: int, key: str) -> float:
        return float(runs[target, kind, c][i][key])

    return {
        "throughput_vs_mlflow_c16": per_rep(
            lambda i: at("ours", "single", 16, i, "rps") / at("mlflow", "single", 16, i, "rps")
        ),
        "p50_overhead_ms_c1": per_rep(lambda i: at("ours", "single", 1, i, "p50_us") / 1000 - floors[i]["p50_ms"]),
        "canary_vs_single": per_rep(
            lambda i: at("ours-canary", "single", 16, i, "rps") / at("ours", "single", 16, i, "rps")
        ),
        "batch_vs_raw": per_rep(lambda i: at("ours", "batch", 1, i, "rows_per_s") / floors[i]["batch_rows_per_s"]),
        "cold_start_s": cold_start_s,
        "throughput_vs_floor_c16": per_rep(
            lambda i: at("ours", "single", 16, i, "rps") / at("floor", "single", 16, i, "rps")
        ),
        **{
            f"throughput_vs_{peer}_c16": per_rep(
                lambda i, peer=peer: at("ours", "single", 16, i, "rps") / at(peer, "single", 16, i, "rps")
            )
            for peer in peers.PEERS
            if (peer, "single", 16) in runs
        },
        **(
            {
                # below 1: our p99 under both peers'
                "p99_vs_peers_c16": per_rep(
                    lambda i: (
                        at("ours", "single", 16, i, "p99_us")
                        / min(at(peer, "single", 16, i, "p99_us") for peer in peers.PEERS)
                    )
                )
            }
            if all((peer, "single", 16) in runs for peer in peers.PEERS)
            else {}
        ),
        **{
            f"p99_over_p50_c{c}": per_rep(
                lambda i, c=c: at("ours", "single", c, i, "p99_us") / at("ours", "single", c, i, "p50_us")
            )
            for c in (16, 64)
            if ("ours", "single", c) in runs
        },
    }


def goals_met(ratios: dict[str, float], floor: dict[str, float]) -> dict[str, bool]:
    out = {}
    for name, (op, bound) in GOALS.items():
        if name not in ratios:  # a point this mode does not measure
            continue
        limit = 0.5 * floor["p50_ms"] + 1.0 if bound is None else bound  # p50 <= 1.5 x raw + 1 ms
        out[name] = {">=": ratios[name] >= limit, "<=": ratios[name] <= limit, "<": ratios[name] < limit}[op]
    return out


def machine() -> str:
    cpu = ""
    with contextlib.suppress(OSError):
        cpu = re.search(r"model name\s*:\s*(.*)", Path("/proc/cpuinfo").read_text()).group(1)  # type: ignore[union-attr]
    return f"{os.cpu_count()} cores ({cpu or platform.machine()}), Python {platform.python_version()}"


def table(report: dict[str, Any]) -> str:
    lines = [
        "| target | request | concurrency | req/s | p50 ms | p99 ms | rows/s |",
        "|---|---|---:|---:|---:|---:|---:|",
        f"| (a) in-process predict | 1 row | - | - | {report['floor']['p50_ms']:.2f} | "
        f"{report['floor']['p99_ms']:.2f} | - |",
        f"| (a) in-process predict | {BATCH_ROWS} rows | - | - | - | - | {report['floor']['batch_rows_per_s']:,.0f} |",
        f"| (a') in-process, compiled | 1 row | - | - | {report['floor']['compiled_p50_ms']:.2f} | - | - |",
        f"| (a') in-process, compiled | {BATCH_ROWS} rows | - | - | - | - | "
        f"{report['floor']['compiled_batch_rows_per_s']:,.0f} |",
    ]
    names = {
        "mlflow": "(b) mlflow models serve",
        "ours": "(c) our service",
        "ours-canary": "(d) ours, canary 50 %",
        "floor": "(e) HTTP floor: our stack, no model",
        "mlserver": "(f) Seldon MLServer 1.7.1, adaptive batching",
        "bentoml": "(g) BentoML 1.4.40, adaptive batching",
    }
    for r in report["results"]:
        request = "1 row" if r["kind"] == "single" else f"{BATCH_ROWS} rows"
        lines.append(
            f"| {names[r['target']]} | {request} | {r['concurrency']} | {r['throughput']:,.0f} | "
            f"{r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['rows_per_s']:,.0f} |"
        )
    mem = ", ".join(f"{k} {v:.0f} MB" for k, v in report["memory_mb"].items())
    cold = ", ".join(f"{k} {v:.2f} s" for k, v in report["cold_start_s"].items())
    verdict = {True: " (met)", False: " (NOT met)", None: ""}  # None: a figure with no goal
    ratios = ", ".join(f"{k} {v:.2f}{verdict[report['goals_met'].get(k)]}" for k, v in report["ratios"].items())
    return "\n".join([*lines, "", f"Resident memory: {mem}. Cold start to ready: {cold}.", f"Goals: {ratios}."])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.serving", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="One short run per point; prints the ratios as JSON")
    parser.add_argument(
        "--no-peers",
        action="store_true",
        help="Leave out MLServer and BentoML (installed once each into .venv-peers/, from PyPI)",
    )
    parser.add_argument(
        "--no-record", action="store_true", help="Do not append the full run to the results log (docs/performance.md)"
    )
    args = parser.parse_args(argv)
    try:
        report = run(quick=args.quick, with_peers=not args.no_peers)
    except (BenchmarkError, RuntimeError, TimeoutError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    if args.quick:
        print(table(report), file=sys.stderr)  # the points behind the ratios, beside the JSON on stdout
        print(
            json.dumps({**report["ratios"], "goals_met": report["goals_met"], "wall_seconds": report["wall_seconds"]})
        )
        return 0
    text = table(report)
    print(text)
    if not args.no_record:
        stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
        record(f"## Serving, {stamp}\n\n{report['machine']}; wrk, {len(report['results'][0]['runs'])} "
               f"interleaved repetitions, medians; the floor in a process of its own.\n\n{text}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
