"""Shared by the browser tests: the real dashboard (`streamlit run app.py`) on a free local port, and Debian's
Chromium (/usr/bin/chromium, never `playwright install`); a test skips with one line where Chromium is absent."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
STARTUP_TIMEOUT_S = 60


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _streamlit_executable() -> list[str]:
    beside_python = Path(sys.executable).with_name("streamlit")
    return [str(beside_python)] if beside_python.exists() else [sys.executable, "-m", "streamlit"]


@contextmanager
def serve_dashboard(store_path: Path, log: Path) -> Iterator[str]:
    """Start the app reading `store_path`, wait until it answers, yield its URL; always stop it afterwards."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} not found: install Debian's package (apt-get install chromium) to run browser tests")
    port = _free_port()
    url = f"http://localhost:{port}"
    env = {**os.environ, "FRONTIER_STORE": str(store_path), "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false"}
    with log.open("w") as log_file:
        server = subprocess.Popen(
            [*_streamlit_executable(), "run", "app.py", "--server.port", str(port), "--server.headless", "true",
             "--server.address", "localhost", "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"],
            cwd=ROOT, env=env, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while True:
            if server.poll() is not None:
                pytest.fail(f"streamlit exited with code {server.returncode}:\n{log.read_text()[-4000:]}")
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"streamlit did not answer at {url} within {STARTUP_TIMEOUT_S} s:\n{log.read_text()[-4000:]}")
            time.sleep(0.3)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=15)
