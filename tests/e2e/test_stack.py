"""The stack without containers: `docker-compose.yml` run by the launcher as real local processes.

A drifted batch dropped into the inbox goes through the Prefect deployments and the drift
Automation to a retrained model that both serving replicas serve under one rollout state.
PostgreSQL is the machine's server; each run uses databases of its own and drops them.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from core.usecase import load_use_case
from deploy.compose import load
from pipelines.drops import read_raw, records_and_labels, split_into_drops
from tests.conftest import ROOT, USECASES

pytestmark = pytest.mark.slow

TOKEN = "stack-test-admin-token-0123456789"
PORT_VARS = (
    "GATEWAY_PORT", "SERVING_1_PORT", "SERVING_2_PORT", "MLFLOW_PORT", "PREFECT_PORT", "WORKER_PORT",
    "EVIDENTLY_PORT", "PUSHGATEWAY_PORT", "PROMETHEUS_PORT", "GRAFANA_PORT",
)  # fmt: skip


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def wait_until(what: str, predicate: Callable[[], Any], *, timeout: float, logs: Path) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if result := predicate():
                return result
        except httpx.HTTPError:
            pass
        time.sleep(1)
    tails = "\n".join(
        f"--- {p.name}\n" + "\n".join(p.read_text(errors="replace").splitlines()[-15:])
        for p in sorted(logs.glob("*.log"))
    )
    pytest.fail(f"timed out waiting for {what}\n{tails}")


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[dict[str, Any]]:
    ports = dict(zip(PORT_VARS, free_ports(len(PORT_VARS)), strict=True))
    suffix = uuid.uuid4().hex[:8]
    databases = {
        var: f"mlops_stack_{suffix}_{var.split('_')[0].lower()}" for var in ("MLFLOW_DB", "PREFECT_DB", "SERVING_DB")
    }
    inbox = tmp_path / "inbox"
    env = {
        "POSTGRES_PASSWORD": "stack-test-password",
        "MLOPS_ADMIN_TOKEN": TOKEN,
        "GRAFANA_ADMIN_PASSWORD": "stack-test-grafana",
        "MLOPS_ROLLOUT_PROFILE": "fast",
        # Each scheduled look at the inbox is a flow run in a process of its own (~2 s of CPU to start):
        # every 3 s, that took most of a core from the retraining the test waits for.
        "MLOPS_INGEST_INTERVAL_SECONDS": "8",
        "MLOPS_INBOX_DIR": str(inbox),
        **{k: str(v) for k, v in ports.items()},
        **databases,
    }
    env_file = tmp_path / ".env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in env.items()))
    state = tmp_path / "stack"
    launcher = [sys.executable, "-m", "deploy.launcher", "--env-file", str(env_file), "--state-dir", str(state)]
    try:
        up = subprocess.run([*launcher, "up"], cwd=ROOT, capture_output=True, text=True, timeout=420)
        assert up.returncode == 0, up.stdout + up.stderr
        yield {"ports": ports, "inbox": inbox, "logs": state / "logs", "state": state, "databases": databases, "up": up}
    finally:
        down = subprocess.run([*launcher, "down", "--volumes"], cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert down.returncode == 0, down.stdout + down.stderr
        engine = sa.create_engine("postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
        with engine.connect() as conn:
            left = conn.execute(
                sa.text("SELECT datname FROM pg_database WHERE datname LIKE :p"), {"p": f"mlops_stack_{suffix}%"}
            )
            assert left.fetchall() == [], "down --volumes leaves no database behind"
        engine.dispose()


class Traffic(threading.Thread):
    """Live users: one record per request, in turn to each address, each label sent back after it.

    At a live rate (``per_second``, which the test may change), not as fast as the replicas answer:
    on two cores a flood of requests would take the CPU from the worker's training, which the
    rollout waits for.
    """

    def __init__(self, urls: list[str], records: list[dict[str, Any]], labels: list[Any], *, per_second: float) -> None:
        super().__init__(daemon=True)
        self.urls, self.records, self.labels = urls, records, labels
        self.per_second = per_second
        self.stop = threading.Event()
        self.versions: dict[str, set[str]] = {url: set() for url in urls}
        self.failures: list[str] = []

    def run(self) -> None:
        clients = {url: httpx.Client(base_url=url, timeout=30) for url in self.urls}
        i, began = 0, time.monotonic()
        while not self.stop.wait(max(0.0, began + 1.0 / self.per_second - time.monotonic())):
            began = time.monotonic()
            url = self.urls[i % len(self.urls)]
            record, label = self.records[i % len(self.records)], self.labels[i % len(self.labels)]
            response = clients[url].post("/predict", json=record)
            i += 1
            if response.status_code != 200:
                self.failures.append(f"{url}: {response.status_code} {response.text[:200]}")
                continue
            self.versions[url].add(response.headers["X-Model-Version"])
            pid = response.json()["predictions"][0]["id"]
            clients[url].post("/feedback", json={"labels": [{"id": pid, "label": label}]})
        for client in clients.values():
            client.close()


def prefect_runs(api: str, flow: str) -> list[dict[str, Any]]:
    body = {"flows": {"name": {"any_": [flow]}}, "sort": "EXPECTED_START_TIME_ASC"}
    return httpx.post(f"{api}/flow_runs/filter", json=body, timeout=10).json()


def test_a_drifted_batch_flows_through_deployments_and_the_automation_to_a_canary_on_both_replicas(stack):
    ports, logs = stack["ports"], stack["logs"]
    gateway = f"http://127.0.0.1:{ports['GATEWAY_PORT']}"
    replicas = [f"http://127.0.0.1:{ports[p]}" for p in ("SERVING_1_PORT", "SERVING_2_PORT")]
    api = f"http://127.0.0.1:{ports['PREFECT_PORT']}/api"
    admin = {"X-Admin-Token": TOKEN}
    # the launcher says what it did with every service of the file
    reported = {line.split()[0] for line in stack["up"].stdout.splitlines() if line.startswith("  ") and line.split()}
    assert set(load(ROOT / "docker-compose.yml")["services"]) <= reported

    # Bootstrapped: the gateway answers with the first champion; the admin API refuses a wrong token.
    ready = httpx.get(f"{gateway}/ready", timeout=10).json()
    assert ready["ready"] and ready["model_version"] == "1"
    assert httpx.get(f"{replicas[0]}/admin/status", headers={"X-Admin-Token": "wrong"}).status_code in (401, 403)

    # A drifted batch (high summer, against a winter model) arrives in the inbox, with users on the service.
    uc = load_use_case("bike_demand", usecases_dir=USECASES)
    july = split_into_drops(read_raw(uc), uc)["2011-07"]
    stack["inbox"].mkdir(exist_ok=True)
    (stack["inbox"] / "2011-07.csv").write_bytes(july.to_csv(index=False).encode())
    from pipelines.batches import coerce_types, parse_csv

    typed, _ = coerce_types(parse_csv(july.to_csv(index=False).encode(), uc).frame, uc)
    # Quiet hours while the batch is checked and the model retrained, busy ones for the rollout.
    traffic = Traffic([gateway, *replicas], *records_and_labels(typed, uc), per_second=10)
    traffic.start()
    try:
        # While the canary runs, both replicas follow the one rollout in the shared state.
        def canary_everywhere() -> list[dict[str, Any]] | None:
            current = [httpx.get(f"{r}/admin/rollouts/current", headers=admin) for r in replicas]
            rollouts = [c.json() for c in current if c.status_code == 200]
            return rollouts if len(rollouts) == 2 and rollouts[0]["id"] == rollouts[1]["id"] else None

        during = wait_until(
            "a canary of the retrained model on both replicas", canary_everywhere, timeout=300, logs=logs
        )
        traffic.per_second = 60
        assert {(r["strategy"], r["candidate_version"]) for r in during} == {("canary", "2")}

        def decided_everywhere() -> list[list[dict[str, Any]]] | None:
            histories = [httpx.get(f"{r}/admin/rollouts", headers=admin).json() for r in replicas]
            decided = all(h and h[0]["phase"] in ("promoted", "rolled_back") for h in histories)
            return histories if decided else None

        histories = wait_until("the canary's verdict on both replicas", decided_everywhere, timeout=180, logs=logs)
    finally:
        traffic.stop.set()
        traffic.join(timeout=30)
    assert traffic.failures == [], "no user request failed during the rollout"
    # Each replica served the retrained model to users during the canary, and the champion beside it.
    for replica in replicas:
        assert {"1", "2"} <= traffic.versions[replica], (replica, traffic.versions)

    # One rollout state: both replicas report the same history and the same stable version.
    assert histories[0] == histories[1]
    verdict = histories[0][0]
    expected_stable = "2" if verdict["phase"] == "promoted" else "1"

    def converged() -> bool:  # each replica adopts the shared state within its sync interval
        statuses = [httpx.get(f"{r}/admin/status", headers=admin).json() for r in replicas]
        return all(s["stable_version"] == expected_stable and s["rollout"] is None for s in statuses)

    wait_until(f"both replicas to serve v{expected_stable} ({verdict['reason']})", converged, timeout=30, logs=logs)

    # The path through Prefect: the inbox watch ingested it, its event started the drift check on that
    # batch, and the retraining was started by the Automation on the drift event.
    ingested = [r for r in prefect_runs(api, "ingest") if "inbox" in r["parameters"]["source"]]
    assert len(ingested) == 1 and ingested[0]["parameters"]["source"].endswith("2011-07.csv")
    assert ingested[0]["state_type"] == "COMPLETED"
    checks = [r for r in prefect_runs(api, "monitor") if r["parameters"].get("batch_id")]
    assert len(checks) == 1 and checks[0]["state_type"] == "COMPLETED"
    retrains = wait_until(  # the flow run records its end a moment after the rollout it started
        "the retraining run to complete",
        lambda: (runs := prefect_runs(api, "retrain")) and all(r["state_type"] == "COMPLETED" for r in runs) and runs,
        timeout=60,
        logs=logs,
    )
    assert len(retrains) == 1
    assert retrains[0]["created_by"]["type"] == "AUTOMATION"
    assert retrains[0]["parameters"]["reason"].startswith("drift share")
    deploys = prefect_runs(api, "deploy")
    assert len(deploys) == 1 and deploys[0]["state_type"] == "COMPLETED"

    # The drift report is in the Evidently UI's workspace.
    evidently = f"http://127.0.0.1:{ports['EVIDENTLY_PORT']}/api/projects"
    projects = wait_until(
        "the drift report's project in the Evidently UI",
        lambda: [p["name"] for p in httpx.get(evidently, timeout=10).json()],
        timeout=30,
        logs=logs,
    )
    assert projects == ["bike_demand"]

    # The same batch dropped again, under another name: nothing new is ingested or checked.
    (stack["inbox"] / "2011-07-copy.csv").write_bytes((stack["inbox"] / "2011-07.csv").read_bytes())
    wait_until(
        "the copy to be seen",
        lambda: any("same content as batch" in line for line in (logs / "worker.log").read_text().splitlines()),
        timeout=60,
        logs=logs,
    )
    assert len([r for r in prefect_runs(api, "monitor") if r["parameters"].get("batch_id")]) == 1
    copies = [r for r in prefect_runs(api, "ingest") if r["parameters"]["source"].endswith("2011-07-copy.csv")]
    assert len(copies) == 1 and copies[0]["state_type"] == "COMPLETED"  # read, recognised, nothing written
    ledger = list((stack["state"] / "volumes" / "lake" / "ledger" / "bike_demand").glob("*.json"))
    assert len(ledger) == 4  # three bootstrap months and July
    assert httpx.get(f"{gateway}/ready").json()["model_version"] == expected_stable
