"""Benchmarks: speed and memory goals live here; every run is written down in the results log at the
end of docs/performance.md (``record``), beside what the numbers mean."""

from __future__ import annotations

import re
from pathlib import Path

RESULTS = Path(__file__).resolve().parents[1] / "docs" / "performance.md"


def record(section: str) -> None:
    """Append one run's section to the results log (newest last). Its headings become the page's third
    level, under "Results log"."""
    text = re.sub(r"^## ", "### ", section.strip("\n"), flags=re.MULTILINE)
    with RESULTS.open("a") as fh:
        fh.write("\n" + text + "\n")
