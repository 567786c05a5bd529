"""Issue 12 in headless Chromium: a CSV whose file name, column names and values carry Markdown images, links and
HTML is uploaded and saved on the Data page, swept (through the engine, to stay fast), and Data, Sweep, Frontier
and Decide are opened. No request may leave 127.0.0.1, no element may point at the hostile URLs, and the hostile
text reads as written.

Uses Debian's Chromium at /usr/bin/chromium (never `playwright install`); skipped where it is absent.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import numpy as np
import pandas as pd
import pytest

from browser_support import CHROMIUM, CHROMIUM_ARGS, serve_dashboard
from test_browser_upload import RENDER_TIMEOUT_MS, _settle

pytestmark = pytest.mark.browser

IMAGE = "![x](http://example.invalid/a.png)"
LINK = "[link](http://example.invalid)"
TAG = "<img src=http://example.invalid/b.png>"
SCRIPT = "<script>alert(1)</script>"
FILENAME = "![f](https:example.invalid) <img src=https:example.invalid>.csv"
LOCAL_HOSTS = {"127.0.0.1", "localhost"}
# Any element loading or linking to the hostile host (text mentioning it is fine: that is the point).
POINTERS = """() => [...document.querySelectorAll('*')].flatMap(element =>
    ['src', 'href', 'srcset', 'data', 'action', 'poster', 'style', 'xlink:href'].map(name => element.getAttribute(name))
    .filter(value => value && value.includes('example.invalid')).map(value => element.tagName + ' ' + value))"""
SHOWN = "() => document.body.innerText.replaceAll('\\u2060', '')"  # the word joiners of ui/text.py are invisible


def _hostile_csv(n: int = 160, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    signal = rng.normal(size=n)
    frame = pd.DataFrame({
        IMAGE: (signal + rng.normal(0, 0.3, n)).round(3),  # a kept numeric feature
        LINK: rng.choice([TAG, SCRIPT, "plain"], n),  # a kept text feature, its values hostile too
        TAG: rng.integers(18, 90, n),
        f"{SCRIPT} mail": [f"person{i}@example.invalid" for i in range(n)],  # flagged: listed in a warning
        "outcome": np.where(signal > 0.3, LINK.replace("link", "yes"), "no"),
    })
    return frame.to_csv(index=False).encode()


@pytest.fixture
def dashboard(tmp_path):
    store_path = tmp_path / "store" / "results.sqlite"
    with serve_dashboard(store_path, tmp_path / "streamlit.log") as url:
        yield url, store_path


def _wait_shown(page, texts) -> None:
    """Wait (a condition, never a sleep) until every one of `texts` is on the page; on a time-out the caller's
    asserts say which is missing."""
    try:
        page.wait_for_function(f"texts => {{ const shown = ({SHOWN})(); return texts.every(t => shown.includes(t)); }}",
                               arg=list(texts), timeout=RENDER_TIMEOUT_MS)
    except Exception:  # noqa: BLE001 - playwright's TimeoutError: the asserts that follow report what is missing
        pass


def _open(page, link: str, ready: str) -> str:
    page.locator('[data-testid="stSidebarNavLink"]', has_text=link).first.click()
    page.get_by_text(ready).first.wait_for(state="visible")
    _settle(page)
    assert page.locator('[data-testid="stException"]').count() == 0, page.locator('[data-testid="stException"]').first.inner_text()
    assert page.evaluate(POINTERS) == []
    return page.evaluate(SHOWN)


def _sweep(store_path, dataset: str) -> None:
    from engine import services
    from engine.workspace import Workspace
    from engine_support import make_spec

    workspace = Workspace.at(store_path)
    spec = make_spec(dataset=dataset, techniques=("baseline", "dp-sgd"), epsilons=(4.0,), seeds=(0,), epochs=2,
                     batch_size=32, accountant="rdp")
    report = services.run(services.plan(spec, workspace), workspace, workers=1, device="cpu")
    assert report.failed == 0


def test_hostile_names_render_as_text_and_nothing_leaves_localhost(dashboard):
    from playwright.sync_api import sync_playwright

    url, store_path = dashboard
    requested: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 1000})
            page.set_default_timeout(RENDER_TIMEOUT_MS)
            page.on("request", lambda request: requested.append(request.url))
            page.goto(url, wait_until="domcontentloaded")
            page.get_by_text("Result store").first.wait_for(state="visible")
            _open(page, "Data", "Training rows")
            page.locator('[data-testid="stFileUploader"] input[type="file"]').set_input_files(
                {"name": FILENAME, "mimeType": "text/csv", "buffer": _hostile_csv()})
            page.get_by_role("button", name="Save dataset").wait_for(state="visible")
            _settle(page)
            # The file name, a flagged column in the warning, a text column in a widget label (the form's lower
            # widgets can paint after its button: wait for them, then read).
            expected = (FILENAME, f"{SCRIPT} mail: its name suggests an e-mail address", f"Values of {LINK}")
            _wait_shown(page, expected)
            shown = page.evaluate(SHOWN)
            assert page.evaluate(POINTERS) == []
            for text in expected:
                assert text in shown, (text, shown)
            page.get_by_text("Read them from the rows").first.click()  # every value kept: the card lists them all
            _settle(page)
            page.get_by_role("button", name="Save dataset").click()
            page.get_by_text("Saved as").first.wait_for(state="visible")
            _settle(page)
            shown = page.evaluate(SHOWN)
            assert page.evaluate(POINTERS) == []
            assert FILENAME in shown and f"{SCRIPT} mail" in shown  # card title; identifiers removed
            assert all(text in shown for text in (IMAGE, LINK, TAG)), shown  # the card's data-derived columns
            assert f"outcome = {LINK.replace('link', 'yes')}" in shown  # the label, its positive value as written

            uploads = store_path.parent / "datasets"
            (dataset,) = [folder.name for folder in uploads.iterdir() if (folder / "catalogue.yaml").exists()]
            _sweep(store_path, dataset)
            _open(page, "Sweep", "New sweep")
            assert f"run(s) on {dataset}" in _open(page, "Frontier", "against privacy budget")  # its frontier drawn
            _open(page, "Decide", "Constraints")
            assert LINK in _open(page, "Data", "Training rows")
        finally:
            browser.close()
    outside = [address for address in requested
               if urlsplit(address).scheme not in {"data", "blob"} and urlsplit(address).hostname not in LOCAL_HOSTS]
    assert requested and not outside, sorted(set(outside))
