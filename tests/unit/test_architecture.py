"""The import contracts of pyproject.toml ([tool.importlinter]) hold."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT


def test_import_contracts_are_kept():
    lint_imports = Path(sys.executable).with_name("lint-imports")
    out = subprocess.run([str(lint_imports)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "3 kept, 0 broken" in out.stdout


def test_importing_the_packages_does_no_work():
    """Importing the packages (and the CLI, so `mlops --help`) loads none of the heavy libraries."""
    code = (
        "import sys; import cli.main, pipelines, services.serving, models, monitoring, core; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & "
        "{'prefect', 'great_expectations', 'evidently', 'mlflow', 'sklearn'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]"


def test_the_serving_role_installs_without_the_pipeline_libraries():
    """`pip install .` (no extras) is the serving role; the heavy libraries come with the `pipelines` extra."""
    import re
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    name = lambda req: re.split(r"[=<>\[ ;]", req, maxsplit=1)[0].lower()  # noqa: E731
    heavy = {"prefect", "great-expectations", "evidently"}
    assert heavy.isdisjoint(name(r) for r in project["dependencies"])
    assert heavy <= {name(r) for r in project["optional-dependencies"]["pipelines"]}
    pinned = [r for r in project["dependencies"] + project["optional-dependencies"]["pipelines"] if "==" not in r]
    assert pinned == [], f"unpinned direct dependencies: {pinned}"


def test_the_stream_consumer_loads_neither_prefect_nor_great_expectations_nor_evidently():
    """The consumer checks events with rules derived from the GX suite, not GX itself; it imports
    Prefect only to announce to a Prefect server, when one is configured."""
    code = (
        "import sys; import pipelines.stream.app, pipelines.stream.bench; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'prefect', 'great_expectations', 'evidently'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]"
