"""Accepted events scored through the serving service, so their predictions are logged, labelled
and monitored like any other request.

A thread of its own, behind a bounded queue: a slow or absent service never holds up landing.
Each micro-batch is one ``/predict`` under ``X-Request-ID: <micro-batch id>``, so a retry after a
timeout is answered again and logged once (the service checks the id). The events carry their
label (the observed demand, the outcome), which goes to ``/feedback`` at once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from pipelines.stream.background import Background

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ScoringJob:
    batch_id: str
    records: list[dict[str, Any]]
    labels: list[Any]
    produced_at: list[float]


class Scorer(Background[ScoringJob]):
    """Sends jobs in order; retries a failed one with backoff up to ``attempts`` times, then counts
    it as unscored and moves on (the events are curated already: only their live prediction is lost)."""

    def __init__(
        self,
        *,
        url: str,
        on_scored: Callable[[ScoringJob, float], None],
        on_failed: Callable[[ScoringJob, str], None],
        backlog: int = 64,
        attempts: int = 5,
        timeout_s: float = 10.0,
    ) -> None:
        super().__init__(name="scorer", backlog=backlog)
        self._client = httpx.Client(base_url=url.rstrip("/"), timeout=timeout_s)
        self._on_scored, self._on_failed, self._attempts = on_scored, on_failed, attempts

    def submit(self, job: ScoringJob) -> bool:
        """Queue a job; False (and counted unscored) when the backlog is full: the service is far behind."""
        if not self.offer(job):
            self._on_failed(job, "the scoring backlog is full")
            return False
        return True

    def close(self, *, wait_s: float = 10.0) -> None:
        super().close(wait_s=wait_s)
        self._client.close()

    def handle(self, job: ScoringJob) -> None:
        self._send(job)

    def _send(self, job: ScoringJob) -> None:
        problem = ""
        for attempt in range(self._attempts):
            try:
                answer = self._client.post("/predict", json=job.records, headers={"X-Request-ID": job.batch_id})
                if answer.status_code == 200:
                    scored_at = time.time()
                    self._feedback(answer.json(), job)
                    self._on_scored(job, scored_at)
                    return
                problem = f"/predict answered {answer.status_code}: {answer.text[:300]}"
                if answer.status_code < 500 and answer.status_code != 429:
                    break  # the request itself is refused: sending it again changes nothing
            except httpx.HTTPError as err:
                problem = f"/predict failed: {type(err).__name__}: {err}"
            if attempt < self._attempts - 1:
                time.sleep(min(0.2 * 2**attempt, 5.0))
        log.warning("micro-batch %s not scored: %s", job.batch_id, problem)
        self._on_failed(job, problem)

    def _feedback(self, answer: dict[str, Any], job: ScoringJob) -> None:
        labels = [
            {"id": p["id"], "label": y}
            for p, y in zip(answer["predictions"], job.labels, strict=True)
            if y is not None and y == y  # NaN: no label in the event
        ]
        if not labels:
            return
        try:
            reply = self._client.post("/feedback", json={"labels": labels})
            if reply.status_code != 200:
                log.warning("labels of %s refused: %s %s", job.batch_id, reply.status_code, reply.text[:300])
        except httpx.HTTPError as err:
            log.warning("labels of %s not sent: %s", job.batch_id, err)
