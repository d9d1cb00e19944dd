"""Pipeline metrics for Prometheus, pushed to a Pushgateway.

Flow runs are short-lived processes that Prometheus cannot scrape, which is the
case the Pushgateway exists for. Pushing is best effort: a monitoring outage
must never fail an ingestion or a drift check, so errors are logged, not raised.
"""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)

# name -> help text; every gauge is labelled by use case
GAUGES = {
    "mlops_drift_share": "Share of features that drifted in the latest drift check",
    "mlops_drift_detected": "1 when the latest drift check found drift, else 0",
    "mlops_quarantined_rows": "Rows quarantined over all ingested batches",
    "mlops_batch_rows_accepted": "Rows accepted from the latest batch",
    "mlops_batch_rows_quarantined": "Rows quarantined from the latest batch",
}


def push(url: str | None, *, job: str, use_case: str, values: dict[str, float]) -> bool:
    """Replace this job's group of gauges on the Pushgateway at ``url``; False when not pushed."""
    if not url:
        return False
    from prometheus_client import CollectorRegistry, Gauge, push_to_gateway

    unknown = set(values) - set(GAUGES)
    if unknown:
        raise ValueError(f"unknown pipeline metrics {sorted(unknown)}; declare them in GAUGES")
    registry = CollectorRegistry()
    for name, value in values.items():
        Gauge(name, GAUGES[name], ["use_case"], registry=registry).labels(use_case=use_case).set(value)
    try:
        push_to_gateway(url, job=job, grouping_key={"use_case": use_case}, registry=registry, timeout=5)
    except OSError as err:
        log.warning("could not push %s metrics to %s: %s", job, url, err)
        return False
    return True
