"""The real dashboard (`streamlit run app.py`) in headless Chromium: it renders, draws the chart, raises nothing.

Uses Debian's Chromium at /usr/bin/chromium (never `playwright install`); skipped where it is absent.
Set FRONTIER_SCREENSHOT_DIR to keep the full-page screenshot.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from engine.config import SweepSpec
from engine.store import ResultStore
from engine.sweep import run_sweep

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
STARTUP_TIMEOUT_S = 60
RENDER_TIMEOUT_MS = 60_000


def _streamlit_executable() -> list[str]:
    beside_python = Path(sys.executable).with_name("streamlit")
    return [str(beside_python)] if beside_python.exists() else [sys.executable, "-m", "streamlit"]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_until_up(url: str, server: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"streamlit exited with code {server.returncode}:\n{log.read_text()[-4000:]}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.3)
    pytest.fail(f"streamlit did not answer at {url} within {STARTUP_TIMEOUT_S} s:\n{log.read_text()[-4000:]}")


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory):
    """`streamlit run app.py` on a free port, reading a store with three real runs; stopped at teardown."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} not found: install Debian's package (apt-get install chromium) to run browser tests")
    workdir = tmp_path_factory.mktemp("dashboard")
    store_path = workdir / "results.sqlite"
    spec = SweepSpec(dataset="breast-cancer", techniques=("baseline", "dp-sgd"), epsilons=(1.0, 4.0),
                     clipping_norms=(1.0,), seeds=(0,), epochs=2, accountant="rdp")
    with ResultStore(store_path) as store:
        assert run_sweep(spec, store=store, workers=1, device="cpu").trained == 3

    port = _free_port()
    url = f"http://localhost:{port}"
    env = {**os.environ, "FRONTIER_STORE": str(store_path), "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false"}
    log = workdir / "streamlit.log"
    with log.open("w") as log_file:
        server = subprocess.Popen(
            [*_streamlit_executable(), "run", "app.py", "--server.port", str(port), "--server.headless", "true",
             "--server.address", "localhost", "--browser.gatherUsageStats", "false"],
            cwd=ROOT, env=env, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True,
        )
    try:
        _wait_until_up(url, server, log)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=15)


def test_dashboard_renders_in_chromium(dashboard, tmp_path):
    from playwright.sync_api import sync_playwright

    screenshot = tmp_path / "overview.png"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 1000})
            page.set_default_timeout(RENDER_TIMEOUT_MS)
            page.goto(dashboard, wait_until="domcontentloaded")
            page.get_by_role("heading", name="Privacy Frontier").first.wait_for(state="visible")
            page.locator(".js-plotly-plot").first.wait_for(state="visible")
            page.get_by_text("Runs on breast-cancer").first.wait_for(state="visible")
            page.get_by_text("Datasets", exact=True).first.wait_for(state="visible")
            # Streamlit marks a finished script run by dropping the "running" status widget.
            page.wait_for_function(
                "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=RENDER_TIMEOUT_MS)
            page.wait_for_timeout(1000)  # let plotly finish laying out before the screenshot

            assert page.locator('[data-testid="stException"]').count() == 0
            assert page.locator('[data-testid="stAlertContentError"]').count() == 0
            assert page.locator(".js-plotly-plot .scatterlayer .trace").count() >= 2  # dp-sgd curve + Pareto marks
            # Streamlit scrolls inside its own container, so full_page alone shows one viewport: grow the
            # viewport to the content's height first.
            height = page.evaluate(
                "() => Math.max(...['stMain', 'stAppViewContainer', 'stSidebar'].map("
                "id => document.querySelector(`[data-testid=\"${id}\"]`)?.scrollHeight || 0))")
            page.set_viewport_size({"width": 1440, "height": min(max(int(height), 1000), 12_000)})
            page.wait_for_timeout(800)
            page.screenshot(path=str(screenshot), full_page=True)
        finally:
            browser.close()

    assert screenshot.stat().st_size > 10_000
    keep = os.environ.get("FRONTIER_SCREENSHOT_DIR")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(screenshot, Path(keep) / screenshot.name)
