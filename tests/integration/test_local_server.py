"""The local Prefect server the flow commands share: started once, found again, stopped when idle or asked.

Real processes: each server is Prefect's API app in a process of its own, as ``mlops`` starts it.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import httpx
import pytest

from pipelines import local_server


def _gone(pid: int, *, within_s: float) -> bool:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        # A child of this process lingers as a zombie until reaped; its state says it has exited.
        stat = Path(f"/proc/{pid}/stat")
        if stat.exists() and stat.read_text().split(") ")[-1].startswith("Z"):
            return True
        time.sleep(0.1)
    return False


def test_one_server_for_commands_that_start_at_once_found_again_then_stopped(tmp_path: Path):
    home = tmp_path / "prefect"
    found: list[local_server.LocalServer] = []
    racers = [
        threading.Thread(target=lambda: found.append(local_server.ensure(home, idle_seconds=600))) for _ in range(2)
    ]
    for racer in racers:
        racer.start()
    for racer in racers:
        racer.join(timeout=180)
    assert len(found) == 2 and found[0] == found[1], found  # the lock let one start it; the other found it
    server = found[0]
    assert httpx.get(f"{server.url}/health", timeout=5).json() is True
    assert json.loads((home / local_server.NOTE).read_text())["pid"] == server.pid
    assert local_server.ensure(home, idle_seconds=600) == server  # found again, not started again

    assert local_server.stop(home) == server
    assert _gone(server.pid, within_s=30)
    assert not (home / local_server.NOTE).exists()
    assert local_server.find(home) is None and local_server.stop(home) is None


def test_an_idle_server_stops_itself_and_removes_its_note(tmp_path: Path):
    home = tmp_path / "prefect"
    server = local_server.ensure(home, idle_seconds=2)
    assert _gone(server.pid, within_s=60), "the server outlived its idle time"
    assert not (home / local_server.NOTE).exists()
    assert "idle for 2 s: stopping" in (home / local_server.LOG).read_text()


def test_a_note_left_by_a_dead_server_is_not_trusted(tmp_path: Path):
    home = tmp_path / "prefect"
    home.mkdir()
    dead = local_server.LocalServer(pid=2**22 + 17, url="http://127.0.0.1:9/api", home=str(home), idle_seconds=60)
    (home / local_server.NOTE).write_text(json.dumps(vars(dead)))
    assert local_server.find(home) is None
    assert not (home / local_server.NOTE).exists()


def test_a_server_that_cannot_start_is_a_clear_error_with_its_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    # A database nobody serves: the server's start-up (its migrations) fails, and the process ends.
    monkeypatch.setenv("PREFECT_API_DATABASE_CONNECTION_URL", "postgresql+asyncpg://nobody@127.0.0.1:9/prefect")
    with pytest.raises(local_server.LocalServerError, match=r"exited with code \d+ at start; its log .* ends:\n"):
        local_server.ensure(tmp_path / "prefect", idle_seconds=60, timeout_s=120)
    assert not (tmp_path / "prefect" / local_server.NOTE).exists()
