"""A control plane that is killed (SIGKILL, as ``kill -9``) at a chosen step of a promotion, rollback or abort.

Run as its own process by tests/integration/test_crash_consistency.py:

    python -m tests.support.crashing_control <state dir> <action> <boundary>

action: promote | rollback | abort. boundary: where the kill lands.
- ``before_aliases``: the serving state changed (with its decision-log event), the registry not yet;
- ``after_aliases``: the registry's aliases moved, the serving state not yet told so;
- ``after_state``: the action stored, nothing after it (an abort moves no alias).
A rollback first promotes v2 undisturbed, then is killed while rolling back to v1.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path
from typing import Any

from core.layout import StateLayout
from core.predlog import PredictionLog
from core.usecase import load_use_case
from services.serving.control import Control
from services.serving.model_store import ModelSource, model_source_for
from services.serving.rollouts.clock import SystemClock
from services.serving.rollouts.config import RolloutConfig
from services.serving.rollouts.store import RolloutStore
from tests.conftest import USECASES


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


class KillingSource:
    """The real registry, and a kill before the aliases move or after they have, once ``armed``.

    The promotion moves ``previous`` first and ``champion`` last (models.promotion): the kill
    lands before the first alias call, or after the champion alias has moved.
    """

    def __init__(self, inner: ModelSource, boundary: str) -> None:
        self._inner = inner
        self._boundary = boundary
        self.armed = False

    def alias_version(self, name: str, alias: str) -> str | None:
        return self._inner.alias_version(name, alias)

    def read_file(self, name: str, version: str, path: str) -> bytes:
        return self._inner.read_file(name, version, path)

    def set_alias(self, name: str, alias: str, version: str) -> None:
        if self.armed and self._boundary == "before_aliases":
            die()
        self._inner.set_alias(name, alias, version)
        if self.armed and self._boundary == "after_aliases" and alias == "champion":
            die()

    def delete_alias(self, name: str, alias: str) -> None:
        self._inner.delete_alias(name, alias)

    def tag(self, name: str, version: str, tags: dict[str, str]) -> None:
        self._inner.tag(name, version, tags)


def control_for(root: Path, source: Any) -> Control:
    layout = StateLayout(root)
    return Control(
        use_case=load_use_case("bike_demand", usecases_dir=USECASES),
        store=RolloutStore(layout.prediction_log_url),
        source=source,
        predictions=PredictionLog(layout.prediction_log_url),
        clock=SystemClock(),
    )


async def main(root: Path, action: str, boundary: str) -> None:
    source = KillingSource(model_source_for(StateLayout(root).tracking_uri), boundary)
    control = control_for(root, source)
    await control.start()
    rollout = await control.start_rollout(RolloutConfig(strategy="canary", candidate_version="2"), actor="test")
    if action == "rollback":
        await control.act(rollout.id, "promote", actor="test", force=True)
        source.armed = True
        await control.rollback(actor="test")
    else:
        source.armed = True
        await control.act(rollout.id, action, actor="test", force=True)
    if boundary == "after_state":
        die()
    sys.exit("the process was to be killed and was not")


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), sys.argv[2], sys.argv[3]))
