"""A test's script run in an interpreter of its own, as a process that starts fresh would run it."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Mapping
from typing import Any

from tests.conftest import ROOT


def last_json_line(script: str, *args: str, env: Mapping[str, str] | None = None, timeout: float = 120) -> Any:
    """Run ``script`` (``python -c``) at the project's root; what it printed last, read as JSON."""
    out = subprocess.run(
        [sys.executable, "-c", script, *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])
