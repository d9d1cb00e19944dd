"""The live rollout page in headless Chromium (Debian's, driven by Playwright): a canary runs against a
real service process, the page shows its steps, traffic and verdicts as they come, and a click aborts
it. Screenshots are kept in build/artifacts/rollout-page/."""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from pipelines.traffic import running_service
from tests.conftest import ROOT
from tests.support.records import BIKE_RECORD

pytestmark = pytest.mark.slow

TOKEN = "rollout-page-admin-token-0123"
ADMIN = {"X-Admin-Token": TOKEN}
ARTEFACTS = ROOT / "build" / "artifacts" / "rollout-page"
CANARY = {
    "candidate_version": "2",
    "strategy": "canary",
    "steps": [{"weight": 0.5, "bake_seconds": 300}, {"weight": 1.0, "bake_seconds": 0}],
    "analysis_interval_seconds": 0.5,
    "failure_limit": 3,
    "checks": [{"metric": "error_rate", "threshold": 0.05, "min_samples": 5, "window_seconds": 30}],
}


def chromium() -> str:
    found = os.environ.get("MLOPS_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.fail("the browser tests need Chromium: `make test` installs Debian's (apt-get install chromium)")
    return found


@pytest.fixture
def service(registry_state: Path, tmp_path: Path) -> Iterator[str]:
    state = tmp_path / "state"
    shutil.copytree(registry_state, state, ignore=shutil.ignore_patterns("predictions.db*"))
    env = {"MLOPS_ADMIN_TOKEN": TOKEN, "MLOPS_CONTROL_INTERVAL_SECONDS": "0.2"}
    with running_service(use_case="bike_demand", state_dir=state, log_path=tmp_path / "serve.log", env=env) as url:
        yield url


def users(url: str, stop: threading.Event) -> None:
    with httpx.Client(base_url=url, timeout=10) as client:
        while not stop.wait(0.02):
            client.post("/predict", json=BIKE_RECORD)


def test_the_page_shows_a_live_canary_and_a_click_aborts_it(service: str):
    from playwright.sync_api import expect, sync_playwright

    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    stop = threading.Event()
    traffic = threading.Thread(target=users, args=(service, stop), daemon=True)
    traffic.start()
    started = httpx.post(f"{service}/admin/rollouts", json=CANARY, headers=ADMIN, timeout=30)
    assert started.status_code == 201, started.text
    rollout = started.json()["id"]
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium(), args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("dialog", lambda dialog: dialog.accept())  # "abort rollout ...?"
            page.goto(f"{service}/ui/rollouts")
            expect(page.locator("#phase")).to_have_text("")  # nothing without a token
            page.fill("#token", TOKEN)
            page.click("#login button")
            expect(page.locator("#rollout-id")).to_have_text(rollout)
            expect(page.locator("#phase")).to_have_text("progressing")
            expect(page.locator("#summary")).to_contain_text("canary: v1 (stable) -> v2 (candidate), step 1 of 2")
            expect(page.locator("#summary")).to_contain_text("candidate weight 50 %")
            # live: the candidate's traffic, and passing analyses, appear without a reload
            candidate = page.locator("#traffic tbody tr").nth(1)
            expect(candidate.locator("td").nth(1)).to_have_text("candidate")
            expect(candidate.locator("td").nth(6)).not_to_have_text("0", timeout=15_000)
            expect(page.locator("#checks tr[data-check^=error_rate] td.pass").first).to_be_visible(timeout=20_000)
            expect(page.locator("#log tbody")).to_contain_text("started")
            page.screenshot(path=str(ARTEFACTS / "canary-running.png"), full_page=True)

            page.click("#abort")
            expect(page.locator("#phase")).to_have_text("aborted", timeout=10_000)
            expect(page.locator("#abort")).to_be_disabled()
            expect(page.locator("#log tbody tr").first).to_contain_text("rollout-page")
            page.screenshot(path=str(ARTEFACTS / "canary-aborted.png"), full_page=True)
            browser.close()
    finally:
        stop.set()
        traffic.join(timeout=10)
    after = httpx.get(f"{service}/admin/rollouts/{rollout}", headers=ADMIN, timeout=10).json()
    assert after["phase"] == "aborted"
    events = httpx.get(f"{service}/admin/rollouts/{rollout}/events", headers=ADMIN, timeout=10).json()
    assert any(e["kind"] == "aborted" and e["actor"] == "rollout-page" for e in events)
    assert (ARTEFACTS / "canary-running.png").stat().st_size > 10_000


def test_the_page_is_a_shell_that_only_talks_to_its_own_service(service: str):
    answer = httpx.get(f"{service}/ui/rollouts", timeout=10)
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/html")
    policy = answer.headers["content-security-policy"]
    assert "connect-src 'self'" in policy and "default-src 'none'" in policy
    assert TOKEN not in answer.text
    # the data it shows needs a token
    assert httpx.get(f"{service}/admin/rollouts", timeout=10).status_code == 401
