"""Start-up waits: backoff, then an error that names the dependency (fake clock, real failures)."""

from __future__ import annotations

import socket

import pytest

from core.startup import (
    Dependency,
    DependencyUnavailable,
    database_dependency,
    main,
    mlflow_dependency,
    redact,
    wait_for,
)


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_backoff_doubles_up_to_a_cap_then_names_the_dependency():
    t, messages = FakeTime(), []

    def down() -> None:
        raise ConnectionRefusedError("connection refused")

    dep = Dependency("MLflow tracking server", "http://mlflow:5000/health", down)
    with pytest.raises(
        DependencyUnavailable, match=r"cannot reach the MLflow tracking server at http://mlflow:5000/health"
    ):
        wait_for(
            [dep], timeout_s=30, initial_delay_s=0.5, max_delay_s=4, sleep=t.sleep, clock=t.clock, log=messages.append
        )
    assert t.sleeps[:5] == [0.5, 1.0, 2.0, 4.0, 4.0]
    assert sum(t.sleeps) <= 30
    assert messages == ["waiting for the MLflow tracking server at http://mlflow:5000/health (ConnectionRefusedError)"]


def test_a_dependency_that_comes_up_is_waited_for():
    t, calls = FakeTime(), []

    def flaky() -> None:
        calls.append(t.now)
        if len(calls) < 3:
            raise OSError("not yet")

    wait_for([Dependency("db", "x", flaky)], timeout_s=10, sleep=t.sleep, clock=t.clock, log=lambda _m: None)
    assert len(calls) == 3


def test_passwords_never_reach_messages():
    assert redact("postgresql+psycopg://postgres:s3cret@db:5432/x") == "postgresql+psycopg://postgres:***@db:5432/x"
    assert database_dependency("db", "postgresql+psycopg://u:s3cret@h/x").address.count("s3cret") == 0


def test_only_a_tracking_server_is_waited_for():
    assert mlflow_dependency("sqlite:///x.db") is None
    assert mlflow_dependency("http://mlflow:5000").address == "http://mlflow:5000/health"


def test_an_unreachable_database_fails_for_real():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once closed
    dep = database_dependency("prediction-log database", f"postgresql+psycopg://postgres:pw@127.0.0.1:{port}/x")
    with pytest.raises(
        DependencyUnavailable,
        match=rf"prediction-log database at postgresql\+psycopg://postgres:\*\*\*@127.0.0.1:{port}/x",
    ):
        wait_for([dep], timeout_s=0.5, initial_delay_s=0.2, log=lambda _m: None)


def test_the_healthcheck_command_exit_codes():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert main([f"http://127.0.0.1:{port}/health"]) == 1
    assert main([]) == 2
