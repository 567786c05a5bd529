"""Learning rate, batch size and epochs as grid axes (a scalar is a one-value axis: old specs and exports keep their
run ids), and the random search made per target epsilon, whose tuning-aware figure Decide computes from the trials
at the chosen run's own epsilon (issue 11, item 3)."""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import yaml
from dp_accounting import dp_event
from dp_accounting.rdp import rdp_privacy_accountant
from typer.testing import CliRunner

from engine import ENGINE_VERSION, services
from engine.cli import app
from engine.config import RunConfig, SweepSpec
from engine.data import get_dataset_info
from engine.errors import ConfigError
from engine.privacy.randomness import ReplayableRandomness
from engine.privacy.tuning import ORDERS, tuning_aware_epsilon
from engine.runner import search as search_module
from engine.runner.plan import spec_for_run
from engine.runner.records import open_store
from engine.runner.search import draw_search, per_epsilon_id, search_epsilon, search_id, search_scopes
from engine.runner.spec import spec_from_mapping
from engine.workspace import Workspace
from engine_support import expand, make_spec, plan_sweep, prepared_data, run_sweep

FIXTURE = Path(__file__).parent / "fixtures" / "export_before_axes"  # exported by the engine before the axes


# --- one value: what old specs say ----------------------------------------------------------------------
def test_scalar_yaml_keys_are_one_value_axes_planning_the_runs_they_always_did():
    old = yaml.safe_load("dataset: breast-cancer\ntechniques: [dp-sgd]\nepsilons: [1.0]\nepochs: 18\n"
                         "batch_size: 131\nlearning_rate: 0.005\naccountant: rdp\n")
    spec = spec_from_mapping(old)
    assert (spec.epochs, spec.batch_size, spec.learning_rate) == ((18,), (131,), (0.005,))
    assert spec == SweepSpec(dataset="breast-cancer", techniques=("dp-sgd",), epsilons=(1.0,), epochs=18,
                             batch_size=131, learning_rate=0.005, accountant="rdp")  # keywords take scalars too
    (config,) = expand(spec)
    assert config == RunConfig(dataset="breast-cancer", technique="dp-sgd", model="mlp", seed=0, epochs=18,
                               batch_size=131, learning_rate=0.005, hidden_units=64, target_epsilon=1.0,
                               max_grad_norm=1.0, delta=1e-5, accountant="rdp")  # hence its cache key, its run id
    # Written back as the scalars they were: exports and search ids (a hash of the mapping) are unchanged.
    mapping = spec.to_mapping()
    assert (mapping["epochs"], mapping["batch_size"], mapping["learning_rate"]) == (18, 131, 0.005)
    assert spec_from_mapping(mapping) == spec


def test_an_exported_config_yaml_from_before_the_axes_plans_to_its_run_id(tmp_path):
    text = (FIXTURE / "config.yaml").read_text()
    recorded = RunConfig.from_dict(json.loads((FIXTURE / "run_config.json").read_text()))
    exported_id, version = re.search(r"Reproduces run (\w+) .* by engine ([\w.]+)\.", text).groups()
    plan = plan_sweep(spec_from_mapping(yaml.safe_load(text)))
    assert list(plan.configs) == [recorded]
    assert plan.run_ids == (recorded.cache_key(plan.fingerprint, ENGINE_VERSION),)
    if version == ENGINE_VERSION:  # the very id the old engine wrote into the file
        assert plan.run_ids == (exported_id,)
    assert spec_for_run(recorded, get_dataset_info("heart")).to_mapping() == yaml.safe_load(text)  # same export
    # Through the CLI as a user reruns it: one run, stored under that id.
    (tmp_path / "config.yaml").write_text(text)
    result = CliRunner().invoke(app, ["sweep", "--config", str(tmp_path / "config.yaml"), "--store",
                                      str(tmp_path / "results.sqlite"), "--quiet"])
    assert result.exit_code == 0, result.output
    assert f"run ids: {plan.run_ids[0]}" in result.output


def test_unset_batch_size_and_epochs_are_sized_per_run():
    spec = make_spec(dataset="heart", techniques=("baseline",), batch_size=(16, 32, 64))
    configs = expand(spec)
    n_train = prepared_data(spec).n_train
    steps = [math.ceil(n_train / config.batch_size) * config.epochs for config in configs]
    assert [config.batch_size for config in configs] == [16, 32, 64]
    assert len({config.epochs for config in configs}) > 1 and min(steps) >= 300  # each batch its own epochs
    (sized,) = expand(make_spec(dataset="heart", techniques=("baseline",)))  # nothing set: one sized run
    assert 32 <= sized.batch_size <= 512


# --- several values ---------------------------------------------------------------------------------------
def test_two_learning_rates_by_two_batch_sizes_are_four_runs_and_four_points(tmp_path):
    spec = make_spec(dataset="breast-cancer", techniques=("dp-sgd",), epsilons=(1.0, 2.0), seeds=(0, 1), epochs=1,
                     learning_rate=(0.001, 0.01), batch_size=(32, 64), accountant="rdp")
    configs = expand(spec)
    assert len(configs) == 2 * 2 * 2 * 2
    for epsilon in (1.0, 2.0):
        for seed in (0, 1):
            grid = {(c.learning_rate, c.batch_size) for c in configs if c.target_epsilon == epsilon and c.seed == seed}
            assert grid == {(0.001, 32), (0.001, 64), (0.01, 32), (0.01, 64)}
    at_one = make_spec(**{**spec.to_mapping(), "epsilons": [1.0], "seeds": [0]})
    with open_store(tmp_path / "results.sqlite") as store:
        report = run_sweep(at_one, store=store)
        assert report.trained == 4 and report.failed == 0
        runs = store.dataframe()
    assert runs["point_id"].nunique() == 4  # four frontier points, never pooled
    assert set(zip(runs["learning_rate"], runs["batch_size"])) == {(0.001, 32), (0.001, 64), (0.01, 32), (0.01, 64)}
    # A run of the grid exports to a one-run spec that plans to that very run.
    config = configs[3]
    assert expand(spec_for_run(config, get_dataset_info("breast-cancer"))) == [config]


def test_cli_takes_several_learning_rates_and_refuses_bad_values_in_one_line(tmp_path):
    store = tmp_path / "results.sqlite"
    base = ["sweep", "--dataset", "breast-cancer", "--technique", "baseline", "--epochs", "1", "--store", str(store),
            "--quiet"]
    result = CliRunner().invoke(app, [*base, "--lr", "0.001,0.01"])
    assert result.exit_code == 0, result.output
    assert "2 trained" in result.output
    with open_store(store, create=False) as opened:
        assert sorted(record["learning_rate"] for record in opened.records()) == [0.001, 0.01]
    for flag, value, said in (("--lr", "0.001,fast", "--lr must be comma-separated numbers, got 'fast'"),
                              ("--lr", "0", "--lr must be <= 10 and > 0"),
                              ("--batch-size", "32,0", "--batch-size must be >= 1, got 0"),
                              ("--epochs", "2.5", "--epochs must be comma-separated whole numbers, got '2.5'")):
        refused = CliRunner().invoke(app, [*base, flag, value])
        assert refused.exit_code == 2 and said in refused.output
        assert len(refused.output.strip().splitlines()) == 1, refused.output
    with pytest.raises(ConfigError, match="learning_rate.*must be a number"):
        spec_from_mapping({"learning_rate": [0.001, "x"]})
    with pytest.raises(ConfigError, match="batch_size.*is empty"):
        spec_from_mapping({"batch_size": []})


# --- the random search, per target epsilon -----------------------------------------------------------------
def _grid_configs(epsilons=(0.5, 4.0)):
    spec = make_spec(dataset="breast-cancer", techniques=("baseline", "dp-sgd"), epsilons=epsilons, epochs=1,
                     learning_rate=(0.001, 0.01), batch_size=(32, 64), clipping_norms=(0.5, 1.0), accountant="rdp",
                     random_trials=3.0)
    return spec, expand(spec)


def test_each_epsilon_draws_its_own_number_of_trials_from_its_own_grid():
    spec, configs = _grid_configs()
    identifier = search_id(spec)
    counts = []
    for _ in range(3000):
        runs, draw = draw_search(spec, configs)
        assert [run for run in runs if run.target_epsilon is None] == [c for c in configs if c.target_epsilon is None]
        for trial in draw.trials:  # every trial at epsilon e is in e's search
            assert trial.search == per_epsilon_id(identifier, trial.target_epsilon)
            assert search_epsilon(trial.search) == trial.target_epsilon
        per = Counter(trial.target_epsilon for trial in draw.trials)
        counts.append((per[0.5], per[4.0]))
    counts = np.array(counts, dtype=float)  # (draws, epsilons)
    # Each epsilon: Poisson with the full mean (a search mixing epsilons gave each a share of it), independently.
    assert counts.mean(axis=0) == pytest.approx([3.0, 3.0], abs=0.2)
    assert counts.var(axis=0) == pytest.approx([3.0, 3.0], abs=0.4)
    assert abs(np.corrcoef(counts.T)[0, 1]) < 0.08
    # Every configuration of an epsilon's grid can be drawn (learning rate, batch size, clipping norm).
    runs, draw = draw_search(spec.replace(random_trials=200.0), configs)
    assert len({(t.learning_rate, t.batch_size, t.max_grad_norm) for t in draw.trials if t.target_epsilon == 0.5}) == 8


def test_a_kept_draw_is_resumed_as_it_was_and_older_draws_over_every_epsilon_still_read():
    spec, configs = _grid_configs()
    runs, draw = draw_search(spec, configs, randomness=ReplayableRandomness(1))
    kept = [trial.to_dict() for trial in draw.trials]
    again, resumed = draw_search(spec, configs, stored=kept)
    assert again == runs and resumed.trials == draw.trials
    assert search_scopes({draw.search_id: (3.0, kept)}) == {name: 3.0 for name in {t.search for t in draw.trials}}
    # A draw kept before searches were per epsilon: one search, named by the spec's id, over every epsilon.
    older = [{**values, "search": draw.search_id} for values in kept]
    assert search_scopes({draw.search_id: (3.0, older)}) == {draw.search_id: 3.0}
    assert search_epsilon(draw.search_id) is None


def _tuning_reference(record, mean_trials: float, delta: float) -> float:
    """dp-accounting directly: repeat-and-select over the run's own DP-SGD event."""
    event = dp_event.SelfComposedDpEvent(dp_event.PoissonSampledDpEvent(
        record["sample_rate"], dp_event.GaussianDpEvent(record["noise_multiplier"])), record["steps"])
    accountant = rdp_privacy_accountant.RdpAccountant(list(ORDERS))
    accountant.compose(dp_event.RepeatAndSelectDpEvent(event, mean_trials, math.inf))
    return accountant.get_epsilon(delta)


def test_decide_figure_for_a_search_run_is_its_own_epsilons_search(tmp_path, monkeypatch):
    # A replayable draw (tests only) so that each epsilon surely has trials: seed 0 draws 2 and 2 at mean 2.
    monkeypatch.setattr(search_module, "SecretRandomness", lambda: ReplayableRandomness(0))
    workspace = Workspace.at(tmp_path / "results.sqlite")
    spec = make_spec(dataset="breast-cancer", techniques=("baseline", "dp-sgd"), epsilons=(0.5, 4.0), epochs=1,
                     batch_size=64, accountant="rdp", random_trials=2.0)
    with open_store(workspace.store_path) as store:
        report = run_sweep(spec, store=store)
    assert report.failed == 0
    records = services.records(workspace)
    trials = [r for r in records if r["search"] is not None]
    assert Counter(r["target_epsilon"] for r in trials) == {0.5: 2, 4.0: 2}
    scopes = services.searches(workspace)
    identifier = search_id(spec)
    assert scopes == {per_epsilon_id(identifier, 0.5): 2.0, per_epsilon_id(identifier, 4.0): 2.0}
    assert services.plan(spec, workspace).run_ids == report.run_ids  # a rerun resumes the draw

    at_half = [r for r in trials if r["target_epsilon"] == 0.5]
    scope = at_half[0]["search"]
    summary = services.decide(workspace, at_half[0]["run_id"], scope=scope)
    expected = _tuning_reference(at_half[0], 2.0, 1e-5)
    assert summary.tuning_epsilon == pytest.approx(expected, rel=1e-9)
    assert summary.search_epsilon == 0.5 and summary.search_trials == 2.0
    # A search mixing both epsilons would have charged the larger budget's curve.
    mixed = tuning_aware_epsilon(trials, mean_trials=2.0, delta=1e-5)
    assert summary.tuning_epsilon < mixed / 2
    assert summary.headline_epsilon == min(summary.tuning_epsilon, summary.composition.epsilon)
    # A run of another epsilon's search cannot borrow this search's figure.
    other = next(r for r in trials if r["target_epsilon"] == 4.0)
    with pytest.raises(ConfigError, match="not a trial of the random search"):
        services.decide(workspace, other["run_id"], scope=scope)
    from engine.present.sentences import decision_sentences

    if summary.headline_basis == "random search":
        assert "at target ε = 0.5" in decision_sentences(summary)["search"]


def test_a_launched_search_is_kept_before_its_worker_starts(tmp_path):
    from engine.jobs.launch import _keep_search

    workspace = Workspace.at(tmp_path / "results.sqlite")
    spec, _ = _grid_configs(epsilons=(1.0,))
    plan = services.plan(spec, workspace)
    _keep_search(plan, workspace.store_path)
    again = services.plan(spec, workspace)
    assert again.run_ids == plan.run_ids and again.search.trials == plan.search.trials
