"""The Start page and the router's shared set-up, in Streamlit's AppTest."""

from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

from engine import services
from engine.present.demo import DEMO_SPEC
from engine.runner.records import open_store as ResultStore
from engine_support import make_spec, run_sweep

APP = str(Path(__file__).resolve().parents[1] / "app.py")


def _run_app(monkeypatch, store_path: Path) -> AppTest:
    monkeypatch.setenv("FRONTIER_STORE", str(store_path))
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    assert not at.exception, [exception.value for exception in at.exception]
    return at


def test_first_visit_offers_the_demo_and_the_four_steps(monkeypatch, tmp_path):
    missing = tmp_path / "results.sqlite"
    at = _run_app(monkeypatch, missing)
    assert at.title[0].value == "Privacy Frontier"
    assert at.button(key="home_demo").label == "Run the demo sweep on adult"
    protects = at.dataframe[0].value
    assert "the record being scored, from the scoring service" in set(protects["protects"])
    sidebar = "\n".join(str(e.value) for kind in ("markdown", "caption", "code") for e in getattr(at.sidebar, kind))
    assert str(missing) in sidebar and "what privacy costs" in sidebar
    assert not missing.exists()  # looking never creates a store


def test_demo_button_starts_the_demo_job_and_opens_the_sweep_page(monkeypatch, tmp_path):
    started = []
    monkeypatch.setattr(services, "launch", lambda plan, workspace, **_: started.append(plan.spec) or "job-1")
    at = _run_app(monkeypatch, tmp_path / "results.sqlite")
    at.button(key="home_demo").click().run()
    assert started == [DEMO_SPEC]
    assert not at.exception


def test_with_runs_summarises_the_store(monkeypatch, tmp_path):
    path = tmp_path / "results.sqlite"
    spec = make_spec(dataset="breast-cancer", techniques=("baseline",), seeds=(0, 1), epochs=1)
    with ResultStore(path) as store:
        run_sweep(spec, store=store, device="cpu")
    at = _run_app(monkeypatch, path)
    assert [s.value for s in at.success if "2 measured runs on 1 dataset" in s.value and "breast-cancer (2)" in s.value]
    assert not at.get("button")  # no demo box once there are results


def test_unreadable_store_shows_error_not_traceback(monkeypatch, tmp_path):
    broken = tmp_path / "results.sqlite"
    broken.write_bytes(b"this is not a sqlite database" * 100)
    at = _run_app(monkeypatch, broken)
    assert at.error and "not a usable result store" in at.error[0].value
