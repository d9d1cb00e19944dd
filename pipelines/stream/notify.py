"""Where alert changes go besides the consumer's metrics: a webhook and Prefect events.

Both are sent from a thread of their own, so that a slow receiver never holds up landing; a
change that cannot be delivered after a few attempts is logged and counted, never retried forever.
The Prometheus gauge (``mlops_stream_alert_firing``) is the state; these are notifications.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import httpx

from pipelines.stream.alerts import AlertChange
from pipelines.stream.background import Background

log = logging.getLogger(__name__)

ALERT_EVENT = "mlops.stream.alert.{status}"  # mlops.stream.alert.firing / .resolved


def alert_event(change: AlertChange, *, use_case: str) -> tuple[str, dict[str, str], dict[str, Any]]:
    """The Prefect event of an alert change: name, resource (what an Automation matches), payload."""
    resource = {
        "prefect.resource.id": f"mlops.stream.{use_case}.{change.alert}",
        "mlops.use-case": use_case,
        "mlops.alert": change.alert,
        "mlops.key": change.key,
    }
    return ALERT_EVENT.format(status=change.status), resource, change.payload(use_case=use_case)


class Notifier(Background[AlertChange]):
    """Sends each change to every sink in order of arrival, from one thread."""

    def __init__(self, sinks: list[Callable[[AlertChange], None]], *, attempts: int = 3, backlog: int = 1000) -> None:
        super().__init__(name="alert-notifier", backlog=backlog)
        self._sinks, self._attempts = sinks, attempts
        self.failed = 0

    def __call__(self, change: AlertChange) -> None:
        if not self.offer(change):
            self.failed += 1
            log.error("alert %s %s not sent: %d changes wait already", change.alert, change.status, self.waiting)

    def handle(self, change: AlertChange) -> None:
        for sink in self._sinks:
            for attempt in range(self._attempts):
                try:
                    sink(change)
                    break
                except Exception as err:  # noqa: BLE001 - any sink failure: retried, then logged
                    if attempt == self._attempts - 1:
                        self.failed += 1
                        log.error("alert %s %s not delivered: %s", change.alert, change.status, err)
                    else:
                        time.sleep(0.2 * 2**attempt)

    def close(self, *, wait_s: float = 5.0) -> None:
        super().close(wait_s=wait_s)


def webhook(url: str, *, use_case: str, timeout_s: float = 3.0) -> Callable[[AlertChange], None]:
    client = httpx.Client(timeout=timeout_s)

    def send(change: AlertChange) -> None:
        client.post(url, json=change.payload(use_case=use_case)).raise_for_status()

    return send


def emit(event: str, resource: dict[str, str], payload: dict[str, Any]) -> None:
    """A Prefect event (an Automation can react to it). Needs PREFECT_API_URL; Prefect is imported here only."""
    from prefect.events import emit_event

    emit_event(event=event, resource=resource, payload=payload)


def prefect_events(*, use_case: str) -> Callable[[AlertChange], None]:
    """Alert changes as Prefect events."""

    def send(change: AlertChange) -> None:
        emit(*alert_event(change, use_case=use_case))

    return send
