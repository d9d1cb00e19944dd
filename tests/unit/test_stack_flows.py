"""Pure parts of the stack's flows: which inbox files are new, and the events that wire the deployments."""

from __future__ import annotations

import pytest

from pipelines.metrics import push
from pipelines.monitor import DRIFT_EVENT, drift_event
from pipelines.watch import INGESTED_EVENT, REJECTED_EVENT, Listed, batch_event, new_files


def test_only_new_or_changed_batch_files_are_picked_in_name_order():
    listing = [
        Listed("/in/2011-08.csv", "10|2"),
        Listed("/in/2011-07.csv", "10|1"),
        Listed("/in/notes.txt", "5|1"),
        Listed("/in/2011-06.CSV", "9|1"),
    ]
    seen = {"/in/2011-07.csv": "10|1", "/in/2011-08.csv": "10|1"}  # August changed since
    assert [f.path for f in new_files(listing, seen)] == ["/in/2011-06.CSV", "/in/2011-08.csv"]
    assert new_files(listing, {f.path: f.stamp for f in listing}) == []


def test_batch_events_carry_what_the_drift_check_needs():
    result = {
        "use_case": "bike_demand", "batch_id": "ab" * 32, "source": "/in/x.csv", "status": "partial",
        "rows_received": 10, "rows_accepted": 8, "rows_quarantined": 2, "raw_path": "/raw/x",
    }  # fmt: skip
    event, resource, payload = batch_event(result)
    assert event == INGESTED_EVENT
    assert resource == {"prefect.resource.id": f"mlops.batch.{'ab' * 32}", "mlops.use-case": "bike_demand"}
    assert payload["batch_id"] == "ab" * 32 and payload["rows_quarantined"] == 2 and "raw_path" not in payload
    assert batch_event({**result, "status": "rejected"})[0] == REJECTED_EVENT


def test_the_drift_event_matches_the_retraining_trigger():
    event, resource, payload = drift_event(
        {"use_case": "bike_demand", "name": "batch-x", "batch_id": "x", "model_version": "1",
         "drift_share": 1 / 3, "threshold": 0.2, "drifted_features": ["temp"], "features": {"big": "dict"}}
    )  # fmt: skip
    assert event == DRIFT_EVENT and resource["prefect.resource.id"] == "mlops.model.bike_demand"
    assert payload["drift_share"] == 0.333 and payload["drifted_features"] == ["temp"] and "features" not in payload


def test_pushing_metrics_is_best_effort_but_names_must_be_declared():
    assert push(None, job="x", use_case="u", values={"mlops_drift_share": 0.5}) is False
    assert push("http://127.0.0.1:9", job="x", use_case="u", values={"mlops_drift_share": 0.5}) is False
    with pytest.raises(ValueError, match="unknown pipeline metrics"):
        push("http://127.0.0.1:9", job="x", use_case="u", values={"mlops_typo": 1.0})


def test_the_worker_wires_the_flows_with_schedules_and_event_triggers():
    from pipelines.settings import PipelineSettings
    from pipelines.worker import deployments

    settings = PipelineSettings(ingest_interval_seconds=7, monitor_interval_seconds=600)
    by_flow = {d.flow_name: d for d in deployments(use_case="bike_demand", settings=settings)}
    assert set(by_flow) == {"watch-inbox", "monitor", "retrain", "train", "deploy"}
    assert by_flow["watch-inbox"].schedules[0].schedule.interval.total_seconds() == 7
    (on_batch,) = by_flow["monitor"].triggers
    assert on_batch.expect == {INGESTED_EVENT} and on_batch.parameters["batch_id"] == "{{ event.payload.batch_id }}"
    (on_drift,) = by_flow["retrain"].triggers
    assert on_drift.expect == {DRIFT_EVENT}
    assert on_drift.match.model_dump()["prefect.resource.id"] == "mlops.model.bike_demand"
    assert on_drift.parameters["deploy"] == "rollout"
    assert by_flow["deploy"].triggers == [] and by_flow["deploy"].schedules == []
    # The heavy two name their flow by module, so a flow container imports it from the installed package.
    assert by_flow["retrain"].entrypoint == "pipelines.monitor.retrain_flow"
    assert by_flow["train"].entrypoint == "pipelines.train.train_flow"
