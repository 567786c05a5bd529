"""The report as a PDF for filing: Debian's Chromium prints the printable HTML (charts as PNG images) headless,
offline (a fresh profile, no network services, the page is a local file that fetches nothing)."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from engine.errors import ConfigError

CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-pdf-header-footer")
PRINT_TIMEOUT_S = 120


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or (
        "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)


def html_to_pdf(page_html: str, pdf_path: str | Path) -> Path:
    """Print `page_html` to `pdf_path` with Chromium; a one-line ConfigError when it cannot."""
    browser = chromium()
    if browser is None:
        raise ConfigError("No Chromium to print the PDF with: install it (apt-get install chromium), or export "
                          "without --pdf and print report.html from a browser.")
    target = Path(pdf_path).resolve()
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="frontier-pdf-") as work:
        page = Path(work) / "report.html"
        page.write_text(page_html, encoding="utf-8")
        command = [browser, *CHROMIUM_FLAGS, f"--user-data-dir={Path(work) / 'profile'}",
                   f"--print-to-pdf={target}", page.as_uri()]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=PRINT_TIMEOUT_S, check=False)
        except subprocess.TimeoutExpired:
            raise ConfigError(f"Chromium did not print the PDF within {PRINT_TIMEOUT_S} s: try again, or print "
                              "report.html from a browser.") from None
    if not target.exists() or target.stat().st_size == 0:
        detail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise ConfigError(f"Chromium could not print the PDF ({detail}): print report.html from a browser instead.")
    return target
