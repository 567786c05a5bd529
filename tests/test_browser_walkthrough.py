"""The dashboard walk-through in headless Chromium against the real app on a free local port: choose a dataset,
run a tiny sweep, see the frontier, choose a run, download the export.

A real `frontier sweep` runs in the background (3 tiny runs on breast-cancer). Uses Debian's Chromium at
/usr/bin/chromium (never `playwright install`); skipped where it is absent. FRONTIER_SCREENSHOT_DIR keeps the
screenshots taken while running and when done.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

from browser_support import CHROMIUM, CHROMIUM_ARGS, serve_dashboard

pytestmark = pytest.mark.browser
SWEEP_TIMEOUT_MS = 180_000  # a fresh process imports torch; the machine may be busy


@pytest.fixture
def dashboard(tmp_path):
    """The app on a free port with an empty store; any sweep job it started is ended at teardown."""
    store_path = tmp_path / "store" / "results.sqlite"
    with serve_dashboard(store_path, tmp_path / "streamlit.log") as url:
        try:
            yield url, store_path
        finally:
            from engine import services
            from engine.workspace import Workspace

            running = services.active_job(Workspace.at(store_path))
            if running is not None:
                services.cancel(running.job_id, Workspace.at(store_path), grace_seconds=5)


def _idle(page) -> None:
    """The script run is over (Streamlit's own run state on stApp) and no status widget shows."""
    page.wait_for_function("() => document.querySelector('[data-testid=\"stApp\"]')?.dataset.testScriptState "
                           "=== 'notRunning' && !document.querySelector('[data-testid=\"stStatusWidget\"]')",
                           timeout=60_000)


def test_walkthrough_choose_data_sweep_see_frontier_decide_and_export(dashboard, tmp_path):
    """A first-time user: choose a dataset, run a tiny sweep, see the frontier, choose a run, download the export."""
    from playwright.sync_api import sync_playwright

    url, store_path = dashboard
    shots = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1400}, accept_downloads=True)
            page.set_default_timeout(60_000)
            page.goto(url, wait_until="domcontentloaded")
            page.get_by_role("heading", name="Privacy Frontier").first.wait_for(state="visible")
            _idle(page)

            # 1. Data: choose a bundled dataset (the Sweep page then preselects it).
            page.get_by_role("link", name="Data").first.click()
            page.locator(".st-key-data_dataset").wait_for(state="visible")
            _idle(page)
            page.locator(".st-key-data_dataset input").click()
            page.keyboard.type("breast-cancer")
            page.keyboard.press("Enter")
            _idle(page)
            page.get_by_text("Breast cancer Wisconsin").first.wait_for(state="visible")  # its card

            # 2. Sweep: a tiny grid, launched in the background, followed to the end.
            page.get_by_role("link", name="Sweep").first.click()
            page.locator(".st-key-sweep_dataset").wait_for(state="visible")
            _idle(page)
            chosen = page.locator(".st-key-sweep_dataset")
            assert "breast-cancer" in (chosen.inner_text() + " ".join(chosen.locator("input").evaluate_all(
                "inputs => inputs.map(input => input.value)")))
            page.locator(".st-key-sweep_more summary").click()  # the training axes live under "More settings"
            _idle(page)
            for key, value in (("sweep_epsilons", "1, 4"), ("sweep_epochs", "2"), ("sweep_batch_size", "64")):
                field = page.locator(f".st-key-{key} input")
                field.fill(value)
                field.press("Enter")
                _idle(page)
            page.locator(".st-key-sweep_accountant").click()
            page.keyboard.type("RDP")
            page.keyboard.press("Enter")
            _idle(page)
            page.get_by_text("3", exact=True).first.wait_for(state="visible")  # the Runs metric

            page.locator(".st-key-sweep_launch button:visible").click()
            page.get_by_text("Sweep running: breast-cancer").wait_for(state="visible")
            assert page.locator(".st-key-sweep_cancel button:visible").count() == 1
            shots.append(tmp_path / "sweep_running.png")
            page.screenshot(path=str(shots[-1]), full_page=True)
            page.get_by_text("Finished in").wait_for(state="visible", timeout=SWEEP_TIMEOUT_MS)
            page.get_by_text("3 of 3 runs (0 cached, 0 failed)").wait_for(state="visible")
            shots.append(tmp_path / "sweep_done.png")
            page.screenshot(path=str(shots[-1]), full_page=True)

            # 3. Frontier: the chart of what was just measured.
            page.locator(".st-key-sweep_see_frontier button:visible").click()
            page.get_by_role("heading", name="Frontier").first.wait_for(state="visible")
            page.locator(".js-plotly-plot").first.wait_for(state="visible")
            _idle(page)
            shots.append(tmp_path / "frontier.png")
            page.screenshot(path=str(shots[-1]), full_page=True)

            # 4. Decide: choose a run (a budget limit picks the epsilon-1 configuration) and download the export.
            page.get_by_role("link", name="Decide").first.click()
            page.get_by_text("The choice:").first.wait_for(state="visible")
            _idle(page)
            field = page.locator(".st-key-decide_max_epsilon input")
            field.fill("2")
            field.press("Enter")
            _idle(page)
            # The ranked candidates now stop at epsilon 2: the epsilon-1 configuration is the choice.
            page.get_by_role("heading", name=re.compile(r"The choice: .* ε = (0\.99\d*|1)$")).wait_for(state="visible")
            page.get_by_text("What the search itself spent").first.wait_for(state="visible")
            with page.expect_download() as report_download:
                page.locator(".st-key-decide_download_report button:visible").click()
            report = Path(report_download.value.path()).read_text()
            with page.expect_download() as config_download:
                page.locator(".st-key-decide_download_config button:visible").click()
            config_yaml = Path(config_download.value.path()).read_text()
            assert page.locator('[data-testid="stException"]').count() == 0
            shots.append(tmp_path / "decide.png")
            page.screenshot(path=str(shots[-1]), full_page=True)
        finally:
            browser.close()

    import yaml

    from engine.runner.records import open_store as ResultStore
    from engine_support import make_spec, plan_sweep

    exported = make_spec(**yaml.safe_load(config_yaml))
    assert exported.epsilons == (1.0,) and exported.dataset == "breast-cancer"
    (run_id,) = plan_sweep(exported, None).run_ids
    assert report.startswith("<!doctype html>") and run_id in report and "composed" in report
    with ResultStore(store_path, create=False) as store:
        assert {record["status"] for record in store.records()} == {"ok"} and len(store.records()) == 3
        assert store.get(run_id)["target_epsilon"] == 1.0
    keep = os.environ.get("FRONTIER_SCREENSHOT_DIR")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        for shot in shots:
            shutil.copy(shot, Path(keep) / shot.name)
