"""The docs build as a site in strict mode (a broken link fails), and the generated pages are current."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT

MKDOCS = str(Path(sys.executable).with_name("mkdocs"))


def _build(root: Path, site: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [MKDOCS, "build", "--strict", "--config-file", str(root / "mkdocs.yml"), "--site-dir", str(site)],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_docs_build_in_strict_mode_and_a_broken_link_fails_them(tmp_path):
    built = _build(ROOT, tmp_path / "site")
    assert built.returncode == 0, built.stderr
    assert (tmp_path / "site" / "serving" / "index.html").is_file()
    broken = tmp_path / "copy"
    shutil.copytree(ROOT / "docs", broken / "docs")
    shutil.copy(ROOT / "mkdocs.yml", broken)
    with (broken / "docs" / "serving.md").open("a") as page:
        page.write("\nSee [the old page](moved-away.md).\n")
    failed = _build(broken, tmp_path / "broken-site")
    assert failed.returncode != 0 and "moved-away.md" in failed.stderr


def test_the_settings_page_is_generated_from_the_settings_classes():
    from cli.settings_doc import settings_markdown

    page = (ROOT / "docs" / "settings.md").read_text()
    assert page == settings_markdown(), "run `mlops settings --out docs/settings.md`"
