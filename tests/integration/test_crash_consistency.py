"""A promotion, a rollback or an abort killed (SIGKILL) at each step boundary converges at the next start-up.

The serving state, the registry's aliases and the decision log agree afterwards: a change that
was recorded is completed, never reverted, and every step is in the decision log.
"""

from __future__ import annotations

import asyncio
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow import MlflowClient

from core.layout import StateLayout
from services.serving.model_store import model_source_for
from services.serving.rollouts.explain import explain
from tests.conftest import ROOT
from tests.support.crashing_control import control_for


def _aliases(root: Path) -> dict[str, str]:
    uri = StateLayout(root).tracking_uri
    model = MlflowClient(tracking_uri=uri, registry_uri=uri).get_registered_model("bike-demand")
    return {k: str(v) for k, v in model.aliases.items()}


def _killed(root: Path, action: str, boundary: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "tests.support.crashing_control", str(root), action, boundary],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == -signal.SIGKILL, done.stderr[-2000:]


async def _restart(root: Path):
    control = control_for(root, model_source_for(StateLayout(root).tracking_uri))
    await control.start()
    await control.stop()
    return control


@pytest.mark.parametrize(
    ("action", "boundary", "serving", "aliases"),
    [
        ("promote", "before_aliases", "2", {"champion": "2", "previous": "1"}),
        ("promote", "after_aliases", "2", {"champion": "2", "previous": "1"}),
        ("rollback", "before_aliases", "1", {"champion": "1", "previous": "2"}),
        ("rollback", "after_aliases", "1", {"champion": "1", "previous": "2"}),
        ("abort", "after_state", "1", {"champion": "1"}),
    ],
)
def test_a_killed_action_converges_at_start_up(registry_state, tmp_path, action, boundary, serving, aliases):
    root = tmp_path / "state"
    shutil.copytree(registry_state, root, ignore=shutil.ignore_patterns("predictions.db*"))
    _killed(root, action, boundary)

    control = asyncio.run(_restart(root))
    store = control.store
    assert store.serving_state("bike-demand")[0] == serving
    assert control.snapshot is not None and control.snapshot.stable.version == serving
    assert {k: v for k, v in _aliases(root).items() if k in ("champion", "previous")} == aliases
    assert store.registry_intent("bike-demand") is None
    rollout = store.latest("bike-demand")
    events = store.events(rollout.id)
    kinds = [e.kind for e in events]
    if action == "abort":
        assert rollout.phase == "aborted" and kinds == ["started", "aborted"]
        return
    assert rollout.phase == "promoted" and "promoted" in kinds
    assert "was PROMOTED" in explain(rollout, events)
    completed = [e.message for e in events if e.kind == "registry"]
    if boundary == "before_aliases":
        # the registry was told only after the restart, and the decision log says so
        assert completed[-1].endswith("(completed after a restart)") and f"champion -> v{serving}" in completed[-1]
    if action == "rollback":
        assert kinds.count("rollback") == 1
    # a second start finds nothing left to do
    again = asyncio.run(_restart(root))
    assert [e.kind for e in again.store.events(rollout.id)] == kinds
