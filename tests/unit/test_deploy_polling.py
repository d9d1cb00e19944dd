"""The deploy flow's conversation with the service survives what a gateway and restarts do to it."""

from __future__ import annotations

import logging

import httpx

from pipelines.deploy import _poll, _same_rollout_running

RUNNING = {"id": "r1", "candidate_version": "2", "strategy": "canary", "phase": "progressing"}
log = logging.getLogger("test")


def client_answering(*responses: httpx.Response | Exception) -> httpx.Client:
    """A client whose requests get these answers in turn (an exception: the connection failed)."""
    queue = list(responses)

    def handle(request: httpx.Request) -> httpx.Response:
        answer = queue.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    return httpx.Client(base_url="http://service", transport=httpx.MockTransport(handle))


def test_a_poll_that_fails_keeps_the_last_known_state_and_the_next_one_sees_the_verdict():
    client = client_answering(
        httpx.ConnectError("connection refused"),
        httpx.Response(500, json={"detail": "database restarting"}),
        httpx.Response(200, json={**RUNNING, "phase": "promoted"}),
    )
    seen = [_poll(client, "/admin/rollouts/r1", last=RUNNING, logger=log) for _ in range(3)]
    assert [s["phase"] for s in seen] == ["progressing", "progressing", "promoted"]


def test_a_rollout_start_that_was_retried_finds_the_rollout_it_started():
    asked = {"candidate_version": "2", "strategy": "canary"}
    assert _same_rollout_running(client_answering(httpx.Response(200, json=RUNNING)), asked) == RUNNING
    # another candidate, or none at all, is a real conflict
    other = {**RUNNING, "candidate_version": "3"}
    assert _same_rollout_running(client_answering(httpx.Response(200, json=other)), asked) is None
    assert _same_rollout_running(client_answering(httpx.Response(404, json={})), asked) is None
