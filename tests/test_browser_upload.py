"""The Data page in headless Chromium: upload a real CSV through the file input, save it, see it kept.

Uses Debian's Chromium at /usr/bin/chromium (never `playwright install`); skipped where it is absent.
Set FRONTIER_SCREENSHOT_DIR to keep the screenshots (data_upload_form.png, data_upload_saved.png).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pandas as pd
import pytest

from browser_support import CHROMIUM, CHROMIUM_ARGS, ROOT, serve_dashboard

pytestmark = pytest.mark.browser

FIXTURE = ROOT / "tests" / "fixtures" / "loan_applications.csv"
RENDER_TIMEOUT_MS = 60_000


@pytest.fixture
def dashboard(tmp_path):
    """The app on a free port with an empty store folder."""
    store_path = tmp_path / "store" / "results.sqlite"
    with serve_dashboard(store_path, tmp_path / "streamlit.log") as url:
        yield url, store_path


IDLE = ("() => document.querySelector('[data-testid=\"stApp\"]')?.dataset.testScriptState === 'notRunning'"
        " && !document.querySelector('[data-testid=\"stStatusWidget\"]')")
PAINTED = "() => document.fonts.ready.then(() => new Promise(done => requestAnimationFrame(() => requestAnimationFrame(done))))"


def _settle(page) -> None:
    """Wait until the script run is over (Streamlit's own run state) and the page has painted: conditions, never
    fixed sleeps, so the test holds under load."""
    page.wait_for_function(IDLE, timeout=RENDER_TIMEOUT_MS)
    page.evaluate(PAINTED)


def _screenshot(page, path: Path) -> None:
    # Tables draw on a canvas once their data arrives: wait for every data frame's canvas, then a painted frame.
    page.wait_for_function("() => [...document.querySelectorAll('[data-testid=\"stDataFrame\"]')]"
                           ".every(frame => frame.querySelector('canvas'))", timeout=RENDER_TIMEOUT_MS)
    page.evaluate(PAINTED)
    height = page.evaluate("() => Math.max(...['stMain', 'stAppViewContainer'].map("
                           "id => document.querySelector(`[data-testid=\"${id}\"]`)?.scrollHeight || 0))")
    page.set_viewport_size({"width": 1440, "height": min(max(int(height), 1000), 12_000)})
    page.evaluate(PAINTED)
    page.screenshot(path=str(path), full_page=True)
    page.set_viewport_size({"width": 1440, "height": 1000})


def test_upload_a_csv_in_chromium(dashboard, tmp_path):
    from playwright.sync_api import sync_playwright

    url, store_path = dashboard
    shots = [tmp_path / "data_upload_form.png", tmp_path / "data_upload_saved.png"]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 1000})
            page.set_default_timeout(RENDER_TIMEOUT_MS)
            page.goto(url, wait_until="domcontentloaded")
            # Wait for the router's own navigation (before the first run finishes).
            page.get_by_text("Result store").first.wait_for(state="visible")
            page.locator('[data-testid="stSidebarNavLink"]', has_text="Data").first.click()  # as a user would
            page.get_by_text("Choose a dataset").first.wait_for(state="visible")
            page.get_by_text("Training rows").first.wait_for(state="visible")
            page.locator('[data-testid="stFileUploader"] input[type="file"]').set_input_files(str(FIXTURE))
            page.get_by_text("look like identifiers").first.wait_for(state="visible")
            _settle(page)
            assert page.locator('[data-testid="stException"]').count() == 0
            _screenshot(page, shots[0])

            page.get_by_role("button", name="Save dataset").click()
            page.get_by_text("Saved as").first.wait_for(state="visible")
            _settle(page)
            assert page.locator('[data-testid="stException"]').count() == 0
            assert page.locator('[data-testid="stAlertContentError"]').count() == 0
            page.get_by_text("your upload").first.wait_for(state="visible")  # the card now shows the upload
            assert page.get_by_text("Result store").count() >= 1  # still inside the router
            _screenshot(page, shots[1])
        finally:
            browser.close()

    stored = pd.read_parquet(store_path.parent / "datasets" / "loan-applications" / "data.parquet")
    assert not {"applicant_id", "full_name", "email", "phone", "national_id"} & set(stored.columns)
    keep = os.environ.get("FRONTIER_SCREENSHOT_DIR")
    for shot in shots:
        assert shot.stat().st_size > 10_000
        if keep:
            Path(keep).mkdir(parents=True, exist_ok=True)
            shutil.copy(shot, Path(keep) / shot.name)
