"""The dashboard in Streamlit's AppTest: runs without exception with and without a result store."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from engine.config import SweepSpec
from engine.store import ResultStore
from engine.sweep import run_sweep

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "app.py")
TIMEOUT = 60  # the first run imports torch and friends

SMALL_SWEEP = SweepSpec(dataset="breast-cancer", techniques=("baseline", "dp-sgd"), epsilons=(1.0, 4.0),
                        clipping_norms=(1.0,), seeds=(0,), epochs=2, accountant="rdp")


@pytest.fixture(scope="module")
def populated_store(tmp_path_factory) -> Path:
    """A store holding three real runs: one baseline and DP-SGD at epsilon 1 and 4 (a few seconds)."""
    path = tmp_path_factory.mktemp("store") / "results.sqlite"
    with ResultStore(path) as store:
        report = run_sweep(SMALL_SWEEP, store=store, workers=1, device="cpu")
    assert report.trained == 3 and report.failed == 0
    return path


def _run_app(monkeypatch, store_path: Path) -> AppTest:
    monkeypatch.setenv("FRONTIER_STORE", str(store_path))
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.run()
    assert not at.exception, [exception.value for exception in at.exception]
    return at


def _all_text(at: AppTest) -> str:
    parts = [element.value for kind in ("markdown", "caption", "info", "warning", "error", "code", "title", "subheader")
             for element in getattr(at, kind)]
    parts += [element.value for kind in ("markdown", "caption", "code") for element in getattr(at.sidebar, kind)]
    return "\n".join(str(part) for part in parts)


def test_without_store_shows_catalogue_and_sweep_hint(monkeypatch, tmp_path):
    missing = tmp_path / "results.sqlite"
    at = _run_app(monkeypatch, missing)

    assert not at.error
    assert [info.value for info in at.info if "frontier sweep --dataset adult" in info.value]
    frames = [frame.value for frame in at.dataframe]
    assert any("adult" in set(frame.get("name", [])) for frame in frames)
    assert not at.get("plotly_chart")
    sidebar = _all_text(at)
    assert str(missing) in sidebar  # the sidebar names the store it reads
    assert "what privacy costs" in sidebar and "accountant" in sidebar  # the first-visit explainer
    assert not missing.exists()  # looking must not create a store


def test_switch_page_to_overview(monkeypatch, tmp_path):
    at = _run_app(monkeypatch, tmp_path / "results.sqlite")
    at.switch_page("pages/home.py").run()
    assert not at.exception
    assert at.title[0].value == "Privacy Frontier"


def test_with_runs_shows_chart_and_runs_table(monkeypatch, populated_store):
    at = _run_app(monkeypatch, populated_store)

    assert not at.error
    assert at.selectbox(key="overview_dataset").value == "breast-cancer"
    charts = at.get("plotly_chart")
    assert charts, "no plotly chart rendered"
    frames = [frame.value for frame in at.dataframe]
    runs = next(frame for frame in frames if "run_id" in frame.columns)
    assert len(runs) == 3
    assert set(runs["technique"]) == {"baseline", "dp-sgd"}
    assert set(runs["status"]) == {"ok"}
    assert runs["accuracy"].notna().all()
    assert any("adult" in set(frame.get("name", [])) for frame in frames)  # catalogue still shown


def test_chart_names_accountant_delta_and_baseline(monkeypatch, populated_store):
    import json

    at = _run_app(monkeypatch, populated_store)
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    layout = spec["layout"]
    assert layout["xaxis"]["type"] == "log"
    assert layout["xaxis"]["title"]["text"] == "ε (RDP accountant, δ = 1e-05)"
    names = [trace.get("name") for trace in spec["data"]]
    assert "dp-sgd · mlp" in names and "Pareto front" in names
    dashed = [shape for shape in layout.get("shapes", []) if shape.get("line", {}).get("dash") == "dash"]
    assert len(dashed) == 1  # the non-private baseline
    hover = " ".join(text for trace in spec["data"] for text in (trace.get("hovertext") or []))
    assert "target ε = 1" in hover and "clipping norm C = 1" in hover and "seeds = 1" in hover


def test_unreadable_store_shows_error_not_traceback(monkeypatch, tmp_path):
    broken = tmp_path / "results.sqlite"
    broken.write_bytes(b"this is not a sqlite database" * 100)
    at = _run_app(monkeypatch, broken)
    assert at.error and "not a usable result store" in at.error[0].value
    assert not at.get("plotly_chart")
