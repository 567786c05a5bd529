"""An idle dashboard's CPU use: start `streamlit run app.py`, open it once in headless Chromium, then measure the
server's CPU seconds over 60 s of idleness (psutil, the server and its children).

Command: .venv/bin/python benchmarks/idle_cpu.py [--seconds 60]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from browser_support import CHROMIUM, CHROMIUM_ARGS, serve_dashboard  # noqa: E402


def cpu_seconds(process: psutil.Process) -> float:
    total = 0.0
    for each in [process, *process.children(recursive=True)]:
        try:
            times = each.cpu_times()
            total += times.user + times.system
        except psutil.NoSuchProcess:
            continue
    return total


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as folder:
        with serve_dashboard(Path(folder) / "results.sqlite", Path(folder) / "log.txt") as url:
            server = next(p for p in psutil.process_iter(["cmdline"]) if "app.py" in " ".join(p.info["cmdline"] or [])
                          and url.rsplit(":", 1)[1] in " ".join(p.info["cmdline"] or []))
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
                page = browser.new_page()
                page.goto(url)
                page.wait_for_selector("h1")
                page.close()
                browser.close()
            before, started = cpu_seconds(server), time.monotonic()
            time.sleep(args.seconds)  # the measurement is of idleness itself
            used, elapsed = cpu_seconds(server) - before, time.monotonic() - started
    print(f"idle dashboard: {used:.2f} CPU s over {elapsed:.0f} s = {100 * used / elapsed:.2f}% of one core")


if __name__ == "__main__":
    main()
