"""`docker compose up` on a real engine: the stack built from the project's Dockerfile, run and broken on purpose.

Load and faults come from the host, through the ports the file publishes on 127.0.0.1; the
containers reach one another only on the project's own network. The tests run in file order
on one stack (the loop leaves the data that the dashboards' queries then read).
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections import Counter
from typing import Any

import httpx
import pytest

from core.usecase import load_use_case
from pipelines.batches import coerce_types, parse_csv
from pipelines.drops import read_raw, records_and_labels, split_into_drops
from tests.conftest import ROOT, USECASES
from tests.e2e.docker.conftest import TOKEN
from tests.support.compose import Project, prometheus_query, prometheus_range, run, wait_until
from tests.support.records import BIKE_RECORD

pytestmark = [pytest.mark.slow, pytest.mark.docker]

ADMIN = {"X-Admin-Token": TOKEN}
LONG_RUNNING = {"postgres", "mlflow", "prefect-server", "worker", "serving", "gateway", "evidently", "pushgateway",
                "prometheus", "grafana", "redis", "stream", "dask-scheduler", "dask-worker", "flow-worker"}  # fmt: skip
TEST_STARTED = time.time()


class Users(threading.Thread):
    """Live users through the gateway on one keep-alive connection: a record per request, its label after it.

    Paced (``per_second``, which the test changes), not as fast as the replicas answer: on two cores
    a flood would take the CPU from the retraining the test waits for. Keeps every answered request
    id with the replica that answered it, and every failure.
    """

    def __init__(self, url: str, records: list[dict[str, Any]], labels: list[Any], *, per_second: float) -> None:
        super().__init__(daemon=True)
        self.url, self.records, self.labels, self.per_second = url, records, labels, per_second
        self.stop = threading.Event()
        self.answered: list[tuple[str, str, float]] = []  # (request id, replica address, when)
        self.versions: Counter[str] = Counter()
        self.failures: list[str] = []
        self.unlabelled: dict[str, str] = {}  # request id -> why /feedback refused its label

    def run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=30) as client:
            i, began = 0, time.monotonic()
            while not self.stop.wait(max(0.0, began + 1.0 / self.per_second - time.monotonic())):
                began = time.monotonic()
                record, label = self.records[i % len(self.records)], self.labels[i % len(self.labels)]
                i += 1
                try:
                    response = client.post("/predict", json=record)
                except httpx.HTTPError as err:
                    self.failures.append(f"predict: {type(err).__name__}: {err}")
                    continue
                if response.status_code != 200:
                    self.failures.append(f"predict: {response.status_code} {response.text[:200]}")
                    continue
                body = response.json()
                self.answered.append((body["request_id"], response.headers["X-Upstream"].split(":")[0], time.time()))
                self.versions[response.headers["X-Model-Version"]] += 1
                sent = self.send_label(client, body["predictions"][0]["id"], label)
                if sent.status_code != 200:
                    self.unlabelled[body["request_id"]] = f"{sent.status_code} {sent.text[:200]}"

    def send_label(self, client: httpx.Client, prediction_id: str, label: Any) -> httpx.Response:
        """POST the label; a 503 (the database restarting) is retried after its Retry-After, a few times."""
        for _ in range(10):
            sent = client.post("/feedback", json={"labels": [{"id": prediction_id, "label": label}]})
            if sent.status_code != 503 or self.stop.is_set():
                return sent
            time.sleep(float(sent.headers.get("Retry-After", "1")))
        return sent


def healthy(project: Project) -> dict[str, list[str]]:
    """Service -> the state of each of its containers ("healthy", "exited 0", ...)."""
    states: dict[str, list[str]] = {}
    for c in project.ps():
        state = c["Health"] or c["State"]
        states.setdefault(c["Service"], []).append(f"exited {c['ExitCode']}" if c["State"] == "exited" else state)
    return states


def prefect_runs(api: str, flow: str) -> list[dict[str, Any]]:
    body = {"flows": {"name": {"any_": [flow]}}, "sort": "EXPECTED_START_TIME_ASC"}
    return httpx.post(f"{api}/flow_runs/filter", json=body, timeout=10).json()


def test_every_long_running_service_is_healthy_and_every_replica_is_scraped(stack: Project, images):
    states = healthy(stack)
    expected = {s for s in LONG_RUNNING if s in stack.services}
    assert {s for s, st in states.items() if all(x == "healthy" for x in st)} == expected, states
    assert states["bootstrap"] == ["exited 0"]
    assert len(states["serving"]) == 2  # deploy.replicas
    prometheus = stack.url("PROMETHEUS_PORT")
    up = wait_until(
        "Prometheus to scrape both serving replicas",
        lambda: (r := prometheus_query(prometheus, 'up{job="serving"} == 1')) and len(r) == 2 and r,
        timeout=60,
    )
    addresses = {stack.address(c) for c in stack.containers("serving")}
    assert {t["metric"]["instance"].split(":")[0] for t in up} == addresses
    # the serving image carries no pipeline library and stays small (benchmarks/images.py records it)
    assert images.sizes["mlops-loop:serving"] <= 500_000_000, images.sizes


def test_the_gateway_balances_each_request_of_one_connection_and_passes_the_request_id_on(stack: Project):
    gateway = stack.url("GATEWAY_PORT")
    record = BIKE_RECORD
    with httpx.Client(base_url=gateway, timeout=10) as client:  # one keep-alive connection
        upstreams = {client.get("/ready").headers["X-Upstream"] for _ in range(20)}
        assert len(upstreams) == 2, upstreams
        answer = client.post("/predict", json=record, headers={"X-Request-ID": "docker-test-rid-1"})
        assert answer.status_code == 200 and answer.json()["request_id"] == "docker-test-rid-1"
        minted = client.post("/predict", json=record)  # no id sent: the gateway makes one
        assert len(minted.json()["request_id"]) == 32
        # the service's body limit, enforced before the body reaches a replica, in the service's shape
        too_large = client.post("/predict", content=b"[" + b"0," * 4_300_000 + b"0]",
                                headers={"Content-Type": "application/json"})  # fmt: skip
        assert too_large.status_code == 413 and "exceeds" in too_large.json()["detail"]
    access = stack.compose("logs", "--no-color", "gateway", timeout=60).stdout
    line = next(json.loads(x.split("|", 1)[1]) for x in access.splitlines() if "docker-test-rid-1" in x)
    assert line["status"] == 200 and line["upstream"].endswith(":8000") and float(line["upstream_response_time"]) > 0
    seen_by_service = stack.psql(
        "serving", "SELECT request_id FROM prediction_requests WHERE request_id = 'docker-test-rid-1'"
    )
    assert seen_by_service == ["docker-test-rid-1"]


def test_the_gateway_terminates_tls_with_the_certificate_the_user_provides(stack: Project):
    """`make certs` wrote a certificate for the stack (conftest); the gateway serves it on its TLS port."""
    from cli.doctor import audit_deployment

    cert = str(stack.env_file.parent / "tls" / "cert.pem")
    https = stack.url("GATEWAY_TLS_PORT").replace("http://", "https://")
    with httpx.Client(base_url=https, verify=cert, timeout=10) as client:
        assert client.get("/ready").status_code == 200
        answer = client.post("/predict", json=BIKE_RECORD, headers={"X-Request-ID": "docker-test-tls"})
        assert answer.status_code == 200 and answer.json()["request_id"] == "docker-test-tls"
        assert client.get("/admin/status", headers=ADMIN).status_code == 200
    with pytest.raises(httpx.ConnectError):  # a client that does not trust it is refused, not downgraded
        httpx.get(f"{https}/ready", timeout=10)
    # the deployment as `mlops doctor --url` sees it: TLS, and no public token accepted
    findings = audit_deployment(https, {}, get=lambda url, **kw: httpx.get(url, verify=cert, timeout=10, **kw))
    assert findings == []


def test_a_drifted_batch_reaches_a_canary_that_survives_a_killed_replica_a_database_restart_and_mlflow_going_away(
    stack: Project,
):
    gateway, api = stack.url("GATEWAY_PORT"), stack.url("PREFECT_PORT", "/api")
    replicas = stack.containers("serving")
    assert httpx.get(f"{gateway}/ready", timeout=10).json()["model_version"] == "1"

    # A drifted batch (high summer, against a winter model) arrives in the inbox, with users on the service.
    uc = load_use_case("bike_demand", usecases_dir=USECASES)
    july = split_into_drops(read_raw(uc), uc)["2011-07"]
    assert stack.inbox is not None
    (stack.inbox / "2011-07.csv").write_bytes(july.to_csv(index=False).encode())
    typed, _ = coerce_types(parse_csv(july.to_csv(index=False).encode(), uc).frame, uc)
    users = Users(gateway, *records_and_labels(typed, uc), per_second=4)
    users.start()
    try:
        rollout = wait_until(
            "the drift Automation's retraining to start a canary",
            lambda: (
                (r := httpx.get(f"{gateway}/admin/rollouts/current", headers=ADMIN)).status_code == 200 and r.json()
            ),
            timeout=420,
        )
        assert (rollout["strategy"], rollout["candidate_version"]) == ("canary", "2")
        # An operator pauses it: the faults below happen while the split is frozen, and the verdict waits.
        paused = httpx.post(f"{gateway}/admin/rollouts/{rollout['id']}/pause", headers=ADMIN, timeout=10)
        assert paused.status_code == 200, paused.text
        users.per_second = 15

        # 1. A replica's process is killed (-9, from the host): the gateway retries its requests on the
        #    other one, and the restart policy brings it back.
        victim = replicas[0]
        victim_address, restarts = stack.address(victim), stack.inspect(victim)["RestartCount"]
        killed_at = time.time()
        os.kill(stack.inspect(victim)["State"]["Pid"], signal.SIGKILL)
        wait_until(
            "the killed replica to be restarted and healthy",
            lambda: (
                (s := stack.inspect(victim))["RestartCount"] > restarts and s["State"]["Health"]["Status"] == "healthy"
            ),
            timeout=180,
        )

        # 2. PostgreSQL restarts: every service reconnects by itself.
        stack.compose("restart", "postgres", timeout=120)
        wait_until("PostgreSQL to be healthy again", lambda: healthy(stack)["postgres"] == ["healthy"], timeout=120)
        wait_until(
            "the rollout to read from the database again on every replica",
            lambda: all(
                stack.get_inside(r, "/admin/rollouts/current", headers=ADMIN)["id"] == rollout["id"] for r in replicas
            ),
            timeout=60,
        )

        # 3. MLflow goes away: the loaded models keep answering, and /ready says the registry does not.
        stack.compose("stop", "mlflow", timeout=120)
        down = wait_until(
            "every replica to report the registry unreachable",
            lambda: (
                all((x := stack.get_inside(r, "/ready"))["registry"] == "unreachable" and x["ready"] for r in replicas)
                and [stack.get_inside(r, "/ready") for r in replicas]
            ),
            timeout=60,
        )
        assert all(d["registry_error"] for d in down)
        answered_before = len(users.answered)
        time.sleep(3)
        assert len(users.answered) > answered_before  # served meanwhile
        stack.compose("start", "mlflow", timeout=120)
        wait_until(
            "every replica to reach the registry again",
            lambda: all(stack.get_inside(r, "/ready")["registry"] == "ok" for r in replicas),
            timeout=120,
        )

        # The rollout is intact: the same one, still paused, on every replica. Resumed, it reaches a verdict.
        current = [stack.get_inside(r, "/admin/rollouts/current", headers=ADMIN) for r in replicas]
        assert {(c["id"], c["phase"]) for c in current} == {(rollout["id"], "paused")}
        resumed = httpx.post(f"{gateway}/admin/rollouts/{rollout['id']}/resume", headers=ADMIN, timeout=10)
        assert resumed.status_code == 200, resumed.text
        users.per_second = 40
        histories = wait_until(
            "the canary's verdict on every replica",
            lambda: (
                (h := [stack.get_inside(r, "/admin/rollouts", headers=ADMIN) for r in replicas])
                and all(x[0]["phase"] in ("promoted", "rolled_back") for x in h)
                and h
            ),
            timeout=240,
        )
    finally:
        users.stop.set()
        users.join(timeout=30)

    assert users.failures == [], users.failures[:10]
    assert users.versions["1"] and users.versions["2"], users.versions  # users saw both versions
    assert histories[0] == histories[1]  # one rollout state, shared through PostgreSQL
    verdict = histories[0][0]

    # Every answered prediction is in the log, but those that the killed replica held in memory
    # in its last moments (its writer batches for up to 50 ms).
    logged = set(stack.psql("serving", "SELECT DISTINCT request_id FROM prediction_requests"))
    missing = [(rid, where, at) for rid, where, at in users.answered if rid not in logged]
    assert all(where == victim_address and killed_at - 2 <= at <= killed_at for _, where, at in missing), missing
    assert len(missing) <= 3, missing
    # ... and every label found its prediction, but those of the predictions that were lost
    assert set(users.unlabelled) <= {rid for rid, _, _ in missing}, list(users.unlabelled.items())[:5]

    # Recorded in MLflow: the deploy flow tagged the version with the verdict.
    mlflow = stack.url("MLFLOW_PORT")

    def tagged() -> dict[str, str] | None:
        version = httpx.get(
            f"{mlflow}/api/2.0/mlflow/model-versions/get", params={"name": uc.model_name, "version": "2"}
        ).json()["model_version"]
        tags = {t["key"]: t["value"] for t in version.get("tags", [])}
        return tags if "rollout_outcome" in tags else None

    tags = wait_until("the verdict in the MLflow registry", tagged, timeout=60)
    assert tags["rollout_outcome"] == verdict["phase"] and tags["rollout_id"] == verdict["id"]
    aliases = httpx.get(f"{mlflow}/api/2.0/mlflow/registered-models/get", params={"name": uc.model_name}).json()
    champion = {a["alias"]: a["version"] for a in aliases["registered_model"].get("aliases", [])}["champion"]
    assert champion == ("2" if verdict["phase"] == "promoted" else "1")

    # The path through Prefect: the inbox watch ingested the batch, the drift event started the
    # retraining through the Automation, the deploy flow ran the canary.
    ingested = [r for r in prefect_runs(api, "ingest") if r["parameters"]["source"].endswith("2011-07.csv")]
    assert len(ingested) == 1 and ingested[0]["state_type"] == "COMPLETED"
    retrains = wait_until(
        "the retraining run to complete",
        lambda: (runs := prefect_runs(api, "retrain")) and all(r["state_type"] == "COMPLETED" for r in runs) and runs,
        timeout=90,
    )
    assert len(retrains) == 1 and retrains[0]["created_by"]["type"] == "AUTOMATION"
    assert retrains[0]["parameters"]["reason"].startswith("drift share")
    assert_ran_in_a_container_of_its_own(stack, retrains[0])
    deploys = prefect_runs(api, "deploy")
    assert len(deploys) == 1 and deploys[0]["state_type"] == "COMPLETED"
    assert [p["name"] for p in httpx.get(stack.url("EVIDENTLY_PORT", "/api/projects"), timeout=10).json()] == [
        "bike_demand"
    ]


def test_a_drifted_month_streamed_through_the_broker_is_landed_scored_and_retrains_the_model(stack: Project):
    """September, as events from the host into the stack's Redis, with faults: the consumer lands and
    dead-letters them, scores the accepted ones through the gateway, and announces the full window
    as a batch; the monitor deployment finds the drift and the Automation starts retraining."""
    from pipelines.stream.broker import RedisStreams
    from pipelines.stream.producer import Faults, plan, produce, rows_of

    api = stack.url("PREFECT_PORT", "/api")
    uc = load_use_case("bike_demand", usecases_dir=USECASES)
    retrains_before = len(prefect_runs(api, "retrain"))
    events = plan(rows_of(uc, drop="2011-09"), uc, sources=["station-1", "station-2"],
                  faults=Faults(malformed=0.02, duplicates=0.02), seed=9)  # fmt: skip
    broker = RedisStreams(f"redis://127.0.0.1:{stack.env['REDIS_PORT']}/0")
    sent = produce(events, broker, stream="mlops:bike_demand:events", rate=500, max_len=10**6).sent

    def status() -> dict[str, Any]:
        out = stack.compose("exec", "-T", "stream", "mlops", "stream", "status", "--json", timeout=60).stdout
        return json.loads(out)

    seen = wait_until(
        "the consumer to take every event", lambda: (s := status())["checkpoint"]["received"] >= sent and s, timeout=120
    )
    checkpoint = seen["checkpoint"]
    assert checkpoint["received"] == sent == checkpoint["accepted"] + checkpoint["quarantined"]
    assert seen["dead_letters"] == checkpoint["quarantined"] > 0 and seen["pending"] == 0
    scored = wait_until(
        "the accepted events' predictions in the log",
        lambda: (n := int(stack.psql("serving", "SELECT coalesce(sum(n_records), 0) FROM prediction_requests "
                                     "WHERE request_id LIKE 'stream_%'")[0])) >= checkpoint["accepted"] and n,
        timeout=120,
    )  # fmt: skip
    assert scored == checkpoint["accepted"]
    wait_until(
        "Prometheus to scrape the consumer's counts",
        lambda: prometheus_query(stack.url("PROMETHEUS_PORT"), 'sum(mlops_stream_events_total{outcome="accepted"})')[0]
        ["value"][1] == str(checkpoint["accepted"]),
        timeout=60,
    )  # fmt: skip

    # Prometheus loaded the stream's alerting rules (deploy/prometheus/alerts.yml), each evaluating.
    groups = httpx.get(stack.url("PROMETHEUS_PORT", "/api/v1/rules"), timeout=10).json()["data"]["groups"]
    rules = {r["name"]: r for g in groups if g["name"] == "stream" for r in g["rules"]}
    assert {"StreamAlertFiring", "StreamConsumerDown", "StreamBrokerDown"} <= set(rules)
    assert all(r["health"] in ("ok", "unknown") for r in rules.values()), rules

    # The loop reacts: the full window is checked like a batch, and its drift starts a retraining.
    def window_checks() -> list[dict[str, Any]]:
        runs = prefect_runs(api, "monitor")
        return [
            r
            for r in runs
            if str(r["parameters"].get("batch_id")).startswith("stream_") and r["state_type"] == "COMPLETED"
        ]

    monitors = wait_until("the monitor deployment to check the streamed window", window_checks, timeout=240)
    assert monitors[0]["created_by"]["type"] == "AUTOMATION"
    retrain = wait_until(
        "the drift Automation to retrain on the streamed data",
        lambda: len(runs := prefect_runs(api, "retrain")) > retrains_before and runs[-1],
        timeout=240,
    )
    assert retrain["created_by"]["type"] == "AUTOMATION"
    assert "batch-stream_" in retrain["parameters"]["reason"]


def assert_ran_in_a_container_of_its_own(stack: Project, flow_run: dict[str, Any]) -> None:
    """A flow run of the `containers` pool: the flow worker started a container for it, gone with the run."""
    assert flow_run["work_pool_name"] == "containers", flow_run["work_pool_name"]
    container = flow_run["infrastructure_pid"].rsplit(":", 1)[-1]  # prefect-docker: "<engine>:<container id>"
    assert container and not any(c.startswith(container[:12]) for s in stack.services for c in stack.containers(s))
    # Removed when its run ended (the engine does it a moment after the flow reports its end).
    wait_until(
        "the flow container to be removed",
        lambda: "No such" in run(["docker", "container", "inspect", container], check=False, timeout=60).stderr,
        timeout=120,
    )
    logs = stack.compose("logs", "--no-color", "flow-worker", timeout=120).stdout
    assert f"Docker container {flow_run['name']!r} has status" in logs, logs[-3000:]


def test_model_selection_ran_its_fits_on_both_dask_workers(stack: Project):
    """The bootstrap's training (and any retraining, in its flow container) sent its fits to the Dask cluster."""
    logs = stack.compose("logs", "--no-color", "bootstrap", "worker", "flow-worker", timeout=120).stdout
    assert "model selection ran on 2 Dask workers of tcp://dask-scheduler:8786" in logs, logs[-3000:]


def test_a_dask_worker_container_killed_mid_training_changes_nothing(stack: Project):
    """A train run (in its flow container) loses one of the two Dask workers while fits run: its tasks
    run again on the other, and the run finds what training in the process finds on the same data
    (a second run, with the cluster switched off for it)."""
    api, mlflow, dask = stack.url("PREFECT_PORT", "/api"), stack.url("MLFLOW_PORT"), stack.url("DASK_PORT")
    wait_until(
        "earlier retraining runs to finish",
        lambda: all(r["state_type"] in ("COMPLETED", "FAILED", "CRASHED") for r in prefect_runs(api, "retrain")),
        timeout=600,
    )
    deployment = httpx.get(f"{api}/deployments/name/train/bike_demand", timeout=10).json()
    started_ms = int(time.time() * 1000)

    def train_run(*, kill: str | None = None, local: bool = False) -> dict[str, Any]:
        # The pool's job variables take per-run additions: an empty address trains in the flow's own process.
        body = {"job_variables": {"env": {"MLOPS_DASK_ADDRESS": ""}}} if local else {}
        flow_run = httpx.post(f"{api}/deployments/{deployment['id']}/create_flow_run", json=body, timeout=10).json()
        if kill:
            wait_until(
                "a fit running on the Dask workers",
                lambda: any(float(line.rsplit(" ", 1)[1]) > 0 for line in httpx.get(f"{dask}/metrics", timeout=5)
                            .text.splitlines() if line.startswith('dask_scheduler_tasks{state="processing"}')),
                timeout=300, every=0.2,
            )  # fmt: skip
            run(["docker", "kill", kill], timeout=60)
        return wait_until(
            "the train run to end",
            lambda: (
                (r := httpx.get(f"{api}/flow_runs/{flow_run['id']}", timeout=10).json())["state_type"]
                in ("COMPLETED", "FAILED", "CRASHED")
                and r
            ),
            timeout=600,
        )

    victim, _ = stack.containers("dask-worker")
    try:
        disturbed = train_run(kill=victim)
        assert disturbed["state_type"] == "COMPLETED", disturbed["state"]
        assert stack.inspect(victim)["State"]["Running"] is False
        local = train_run(local=True)
        assert local["state_type"] == "COMPLETED", local["state"]
    finally:
        run(["docker", "start", victim], timeout=60, check=False)
    assert_ran_in_a_container_of_its_own(stack, disturbed)
    experiment = httpx.get(
        f"{mlflow}/api/2.0/mlflow/experiments/get-by-name", params={"experiment_name": "bike_demand"}, timeout=10
    ).json()["experiment"]["experiment_id"]
    runs = httpx.post(
        f"{mlflow}/api/2.0/mlflow/runs/search",
        json={"experiment_ids": [experiment], "filter": f"attributes.start_time > {started_ms}",
              "order_by": ["attributes.start_time ASC"]},
        timeout=10,
    ).json()["runs"]  # fmt: skip
    assert len(runs) == 2, [r["info"]["run_name"] for r in runs]
    first, second = ({m["key"]: m["value"] for m in r["data"]["metrics"] if m["key"].startswith("test_")} for r in runs)
    assert first and first == pytest.approx(second, rel=1e-9)
    tags = [{t["key"]: t["value"] for t in r["data"]["tags"]} for r in runs]
    assert tags[0]["algorithm"] == tags[1]["algorithm"]
    assert tags[0]["training_compute"].startswith("dask tcp://dask-scheduler:8786")
    assert tags[1]["training_compute"] == "local"


def test_scaling_out_adds_a_replica_that_the_gateway_and_prometheus_find_by_name(stack: Project):
    stack.compose("up", "-d", "--wait", "--wait-timeout", "300", "--no-recreate", "--scale", "serving=3", "serving",
                  timeout=400)  # fmt: skip
    addresses = {stack.address(c) for c in stack.containers("serving")}
    assert len(addresses) == 3
    with httpx.Client(base_url=stack.url("GATEWAY_PORT"), timeout=10) as client:
        wait_until(
            "the gateway to send requests to the new replica",
            lambda: {client.get("/ready").headers["X-Upstream"].split(":")[0] for _ in range(30)} == addresses,
            timeout=60,
        )
    wait_until(
        "Prometheus to scrape the new replica",
        lambda: len(prometheus_query(stack.url("PROMETHEUS_PORT"), 'up{job="serving"} == 1')) == 3,
        timeout=60,
    )


def test_every_query_of_the_grafana_dashboard_returns_a_series(stack: Project):
    dashboard = json.loads((ROOT / "deploy" / "grafana" / "dashboards" / "mlops.json").read_text())
    queries = [t["expr"] for panel in dashboard["panels"] for t in panel.get("targets", [])]
    assert queries
    empty = [
        q for q in queries if not prometheus_range(stack.url("PROMETHEUS_PORT"), q, start=TEST_STARTED, end=time.time())
    ]
    assert empty == [], f"no series for: {empty}"
