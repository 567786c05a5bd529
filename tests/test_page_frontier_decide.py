"""Frontier and Decide pages in AppTest, on a store of real runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage
from streamlit.testing.v1 import AppTest

from engine.config import SweepSpec
from engine.runner.records import open_store as ResultStore
from engine_support import make_spec, plan_sweep, run_sweep

APP = str(Path(__file__).resolve().parents[1] / "app.py")
SPEC = make_spec(dataset="breast-cancer", techniques=("baseline", "dp-sgd"), epsilons=(1.0, 4.0),
                 clipping_norms=(0.5, 1.0), seeds=(0,), epochs=5, batch_size=64, accountant="rdp")


@pytest.fixture(scope="module")
def store_path(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("pages") / "results.sqlite"
    with ResultStore(path) as store:
        assert run_sweep(SPEC, store=store, device="cpu").trained == 5
    return path


def _open(monkeypatch, store_path, page) -> AppTest:
    monkeypatch.setenv("FRONTIER_STORE", str(store_path))
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    at.switch_page(page)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_frontier_page_draws_frontier_cost_and_heatmap(monkeypatch, store_path):
    at = _open(monkeypatch, store_path, "views/frontier.py")
    assert not at.error
    charts = at.get("plotly_chart")
    assert len(charts) == 3  # frontier, cost, clipping heatmap
    figure = json.loads(charts[0].proto.spec)
    assert figure["layout"]["xaxis"]["type"] == "log"
    assert figure["layout"]["xaxis"]["title"]["text"] == "ε (RDP accountant, δ = 1e-05)"
    names = {trace.get("name") for trace in figure["data"]}
    assert "Pareto front (all techniques)" in names and any(str(name).startswith("non-private baseline") for name in names)
    assert any(str(name).startswith("always the commonest class") for name in names)  # the trivial reference
    at.selectbox(key="frontier_metric").set_value("roc_auc").run()
    assert not at.exception
    assert json.loads(at.get("plotly_chart")[0].proto.spec)["layout"]["yaxis"]["title"]["text"].startswith("roc auc")
    at.multiselect(key="frontier_techniques").set_value(["baseline"]).run()
    assert not at.exception
    assert [i.value for i in at.info if "Only non-private runs" in i.value]
    assert any("does not clip" in c.value or "None of the selected" in c.value for c in at.caption)


def test_frontier_page_without_runs_points_to_the_sweep_page(monkeypatch, tmp_path):
    at = _open(monkeypatch, tmp_path / "none.sqlite", "views/frontier.py")
    assert [i.value for i in at.info if "demo sweep" in i.value]
    assert not (tmp_path / "none.sqlite").exists()


def test_decide_page_ranks_explains_and_exports(monkeypatch, store_path):
    captured: list[tuple[bytes, str | None]] = []
    original = MemoryMediaFileStorage.load_and_get_id

    def capture(self, path_or_data, mimetype, kind, filename=None):
        captured.append((path_or_data, filename))
        return original(self, path_or_data, mimetype, kind, filename)

    monkeypatch.setattr(MemoryMediaFileStorage, "load_and_get_id", capture)
    at = _open(monkeypatch, store_path, "views/decide.py")
    candidates = at.dataframe[0].value
    assert len(candidates) == 4 and list(candidates["metric_mean"]) == sorted(candidates["metric_mean"], reverse=True)
    text = "\n".join(m.value for m in at.markdown)
    assert "What the released model's ε =" in text and "×" in text and "What was given up" in text
    assert "composition" in text
    assert [m for m in at.metric if m.label == "ε covering the release"]

    files = {filename: data for data, filename in captured}
    exported = yaml.safe_load(files["config.yaml"])
    assert plan_sweep(make_spec(**exported), None).run_ids == (candidates["run_id"].iloc[0],)
    report = files["report.html"]
    report = report.decode() if isinstance(report, bytes) else report
    assert report.startswith("<!doctype html>") and candidates["run_id"].iloc[0] in report

    at.number_input(key="decide_max_epsilon").set_value(2.0).run()
    assert not at.exception and (at.dataframe[0].value["epsilon"] <= 2.0).all()
    at.number_input(key="decide_min_metric").set_value(1.0).run()
    assert [w.value for w in at.warning if "No private configuration meets" in w.value]


def _candidates(at):
    return next(frame.value for frame in at.dataframe if "points_lost" in frame.value.columns)


def test_decide_choice_follows_the_run_id_when_constraints_change(monkeypatch, store_path):
    at = _open(monkeypatch, store_path, "views/decide.py")
    candidates = _candidates(at)
    # Choose a run that is not the top row and that a tighter epsilon constraint can exclude while leaving others.
    others = candidates.iloc[1:]
    second = others.loc[others["epsilon"].idxmax()]
    lowest = float(candidates["epsilon"].min())
    assert float(second["epsilon"]) > lowest, candidates[["run_id", "epsilon"]]
    at.session_state["decide_run_id"] = second["run_id"]  # what selecting the second row records
    at.run()
    chosen = f"at ε = {second['epsilon']:.3g}"
    assert any(chosen in header.value for header in at.subheader), [h.value for h in at.subheader]
    # A constraint that reorders or shrinks the table but keeps the chosen run keeps the choice.
    at.number_input(key="decide_max_epsilon").set_value(float(candidates["epsilon"].max()) + 1).run()
    assert any(chosen in header.value for header in at.subheader)
    # One that excludes it says so and shows the top candidate instead.
    at.number_input(key="decide_max_epsilon").set_value((lowest + float(second["epsilon"])) / 2).run()
    remaining = _candidates(at)
    assert second["run_id"] not in set(remaining["run_id"])
    assert any("no longer meets" in caption.value for caption in at.caption)
