"""One declaration per setting: a technique added in one file shows up in the CLI, YAML, the Sweep form and
the store, and every setting separates frontier points (nothing is pooled by accident)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest
from typer.testing import CliRunner

from engine import services
from engine.analysis.frontier import summarise
from engine.techniques import registry
from engine.workspace import Workspace
from engine_support import make_spec, run_sweep

ROOT = Path(__file__).resolve().parents[1]
PLUGIN = "fixtures.toy_technique"
PLUGIN_ENV = {**os.environ, "FRONTIER_PLUGINS": PLUGIN,
              "PYTHONPATH": os.pathsep.join([str(ROOT / "tests"), str(ROOT), os.environ.get("PYTHONPATH", "")])}


@pytest.fixture
def toy_plugin(monkeypatch):
    monkeypatch.setattr(registry, "_PLUGINS", [])
    registry.load_plugins(PLUGIN)
    yield
    registry.unregister_technique("toy-logreg")


def test_a_plugin_setting_is_a_cli_flag():
    result = subprocess.run([sys.executable, "-m", "engine.cli", "sweep", "--help"], capture_output=True, text=True,
                            env={**PLUGIN_ENV, "COLUMNS": "200"}, cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "--regularisation" in result.stdout and "inverse regularisation strength" in result.stdout
    assert "--clients" in result.stdout and "--mu" in result.stdout  # the built-in techniques' flags are there too


def test_a_plugin_setting_is_a_yaml_key_and_separates_frontier_points(toy_plugin, isolated_store, tmp_path):
    spec_file = tmp_path / "toy.yaml"
    runner = CliRunner()
    from engine.cli import build_app

    app = build_app()  # built after the plugin loaded, as `frontier` does at start-up
    for value in (0.001, 10.0):
        spec_file.write_text(f"dataset: breast-cancer\ntechniques: [toy-logreg]\nseeds: [0, 1]\n"
                             f"regularisation: {value}\n")
        result = runner.invoke(app, ["sweep", "--config", str(spec_file), "--quiet", "--store", str(isolated_store)])
        assert result.exit_code == 0, result.output
    refused = runner.invoke(app, ["sweep", "--technique", "baseline", "--regularisation", "1", "--store",
                                  str(isolated_store)])
    assert refused.exit_code == 2 and "--regularisation does not apply to baseline" in refused.output
    runs = services.read_runs(Workspace.at(isolated_store))
    assert sorted(runs["regularisation"].unique()) == [0.001, 10.0]  # its own store column
    points = summarise(runs)
    assert len(points) == 2 and (points["seeds"] == 2).all()
    assert sorted(points["regularisation"]) == [0.001, 10.0]


def test_a_plugin_setting_is_on_the_sweep_form(isolated_store, monkeypatch):
    monkeypatch.setenv("FRONTIER_PLUGINS", PLUGIN)
    monkeypatch.setattr(registry, "_PLUGINS", [])
    try:
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=90)
        at.run()
        at.switch_page("views/sweep.py").run()
        at.selectbox(key="sweep_dataset").set_value("breast-cancer")
        at.multiselect(key="sweep_techniques").set_value(["toy-logreg"]).run()
        assert not at.exception, [e.value for e in at.exception]
        field = at.number_input(key="sweep_regularisation")
        assert field.value == 1.0
        field.set_value(0.5).run()
        assert not at.error, [e.value for e in at.error]
        assert {m.label: m.value for m in at.metric}["Runs"] == "1"
    finally:
        registry.unregister_technique("toy-logreg")


def test_runs_differing_only_in_hidden_units_are_two_points(store):
    for hidden in (4, 64):
        run_sweep(make_spec(dataset="breast-cancer", techniques=("dp-sgd",), epsilons=(2.0,), epochs=1,
                            batch_size=64, accountant="rdp", hidden_units=hidden), store=store)
    points = summarise(services.read_runs(Workspace.at(store.path)))
    assert sorted(points["hidden_units"]) == [4, 64]
    assert (points["seeds"] == 1).all() and (points["accuracy_std"] == 0).all()


def test_runs_differing_only_in_the_subsample_are_two_points(store):
    for rows in (200, 300):
        run_sweep(make_spec(dataset="breast-cancer", techniques=("baseline",), epochs=1, batch_size=64,
                            train_subsample=rows), store=store)
    points = summarise(services.read_runs(Workspace.at(store.path)))
    assert sorted(points["train_subsample"]) == [200, 300]
