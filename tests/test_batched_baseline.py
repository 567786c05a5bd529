"""The batched baseline path (issue 14): K non-private configurations of one sweep in one pass, each still its own run.

Exactness against the per-run path (train_baseline: its DataLoader's shuffles, its loss, torch's Adam), configurations
that do not disturb each other, a batched sweep against a per-run sweep through the runner, the switch and fallbacks,
the sweep estimate's batched passes.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

from conftest import QUICK
from engine import services
from engine.jobs import estimate as estimating
from engine.jobs import probe as probing
from engine.runner.records import open_store
from engine.techniques import batched_baseline as batched
from engine.techniques import batched_dp_sgd
from engine.techniques.base import RunContext
from engine.techniques.baseline import Baseline, train_baseline
from engine.techniques.class_weights import class_weights
from engine.techniques.training import seed_everything, train_loader
from engine.workspace import Workspace
from engine_support import expand, make_spec, prepared_data, sweep_per_run_and_batched

CPU = RunContext(device="cpu")


def _configs(**values):
    return expand(make_spec(**{**QUICK, "techniques": ("baseline",), **values}))


def _trained(configs, data) -> batched.StackedNet:
    """The pass's stacked weights once every configuration has taken its steps."""
    training = batched._Pass(list(configs), data, "cpu")
    with torch.no_grad():
        while training.advance(None):
            pass
    return training.net


def _assert_same_weights(net: batched.StackedNet, k: int, model, atol: float = 1e-6) -> None:
    alone = batched.StackedNet.from_models([model]) if not isinstance(model, batched.StackedNet) else model
    for mine, theirs in zip(net.parameters(), alone.parameters()):
        torch.testing.assert_close(mine[k], theirs[0], rtol=1e-5, atol=atol)


def test_each_epoch_is_the_per_run_loaders_shuffle():
    config = _configs(batch_size=50)[0]
    data = prepared_data(config)
    loader = train_loader(data, 50, seed_everything(7))
    generator = seed_everything(7)
    for _ in range(3):  # a fresh order each epoch, from the same generator
        order = batched.epoch_order(data.n_train, generator)
        batches = [features for features, _ in loader]
        assert [len(b) for b in batches] == [len(order[at:at + 50]) for at in range(0, data.n_train, 50)]
        assert torch.equal(torch.cat(batches), torch.from_numpy(data.x_train)[order])


@pytest.mark.parametrize("model_name, weighting", [("logreg", None), ("logreg", "balanced"), ("mlp", None),
                                                    ("mlp", "balanced")])
def test_one_configuration_equals_the_per_run_path(model_name, weighting):
    """K = 1: the batched weights are train_baseline's (same seed, same data), with and without class weights;
    the last batch of each epoch is short (breast-cancer's training rows are not a multiple of 50)."""
    config = _configs(model=model_name, epochs=3, batch_size=50,
                      **({"class_weighting": weighting} if weighting else {}))[0]
    data = prepared_data(config)
    assert data.n_train % 50 and (class_weights(config) is not None) == (weighting is not None)
    model, per_run = train_baseline(config, data, context=CPU)
    _assert_same_weights(_trained([config], data), 0, model)
    [(_, result)] = list(batched.train_batched([config], data, context=CPU))
    assert (result.accuracy, result.roc_auc, result.steps) == (per_run.accuracy, per_run.roc_auc, per_run.steps)
    assert result.extra == {"batched_configs": 1} and result.train_seconds > 0 and result.peak_memory_mb > 0


def test_configurations_with_their_own_settings_do_not_disturb_each_other():
    """Three configurations with different learning rates, batch sizes, epochs and seeds in one pass: each ends with
    the weights of its own per-run training, its own steps and progress, and is handed on when it ends."""
    base = _configs(model="mlp")[0]
    configs = [dataclasses.replace(base, learning_rate=0.05, batch_size=32, epochs=1, seed=0),  # 11 steps
               dataclasses.replace(base, learning_rate=0.001, batch_size=128, epochs=5, seed=1),  # 15 steps
               dataclasses.replace(base, learning_rate=0.01, batch_size=64, epochs=3, seed=2)]  # 18 steps
    data = prepared_data(base)
    net = _trained(configs, data)
    events = []
    results = {}
    for config, outcome in batched.train_batched(configs, data, context=CPU,
                                                 on_progress=lambda c, f: events.append((c.seed, f))):
        results[config] = outcome
        events.append((config.seed, "result"))
    for k, config in enumerate(configs):
        _assert_same_weights(net, k, _trained([config], data), atol=1e-7)  # as if trained alone in a pass
        model, per_run = train_baseline(config, data, context=CPU)
        # Against autograd's loop: Adam divides by the root of the second moment, so rounding differences in tiny
        # gradients grow (to ~1e-5 after 11 steps at learning rate 0.05, weights ~0.5).
        _assert_same_weights(net, k, model, atol=3e-5)
        assert results[config].steps == per_run.steps == config.epochs * -(-data.n_train // config.batch_size)
        assert results[config].accuracy == per_run.accuracy and results[config].extra["batched_configs"] == 3
        assert [f for seed, f in events if seed == config.seed][:-1] == [(e + 1) / config.epochs
                                                                      for e in range(config.epochs)]
    assert events.index((0, "result")) < events.index((1, 1.0)) and events.index((1, "result")) < events.index((2, 1.0))


def test_batched_sweep_equals_per_run_sweep(tmp_path, monkeypatch):
    """heart, 3 seeds x 2 epochs x 2 learning rates through the services (plan, run): the same runs recorded, and
    the same accuracy (deterministic: equal up to float rounding)."""
    spec = make_spec(dataset="heart", techniques=("baseline",), seeds=(0, 1, 2), epochs=(2, 3),
                     learning_rate=(0.005, 0.02), batch_size=64)
    per_run, together = sweep_per_run_and_batched(spec, tmp_path, monkeypatch)
    for run_id, alone in per_run.items():
        for metric in ("accuracy", "balanced_accuracy", "roc_auc", "val_accuracy"):
            assert together[run_id][metric] == pytest.approx(alone[metric], abs=1e-4), metric
        assert together[run_id]["steps"] == alone["steps"] and together[run_id]["epsilon"] is None
        assert (together[run_id].get("extra") or {}).get("batched_configs") == 12
        assert not (alone.get("extra") or {}).get("batched_configs")


def test_switch_and_fallbacks(monkeypatch):
    technique = Baseline()
    configs = _configs(seeds=(0, 1))
    data = prepared_data(configs[0])
    monkeypatch.delenv(batched_dp_sgd.ENVIRONMENT_VARIABLE, raising=False)
    assert technique.batch_key(configs[0]) is not None and technique.batch_key(configs[0]) == \
        technique.batch_key(configs[1])  # on by default, one key across seeds
    assert batched.trains_together(configs, data)
    assert not batched.trains_together(configs[:1], data)  # a lone run keeps the per-run path
    [(_, alone)] = list(technique.run_batch(configs[:1], data, context=CPU))
    assert "batched_configs" not in alone.extra
    images = _configs(dataset="mnist", model="cnn", train_subsample=200, seeds=(0, 1), epochs=1)
    assert technique.batch_key(images[0]) is None  # the CNN trains per run
    assert not batched.trains_together(images, prepared_data(images[0]))
    for off in ("0", "false", "off"):
        monkeypatch.setenv(batched_dp_sgd.ENVIRONMENT_VARIABLE, off)
        assert technique.batch_key(configs[0]) is None and not batched.trains_together(configs, data)
        results = [outcome for _, outcome in technique.run_batch(configs, data, context=CPU)]
        assert len(results) == 2 and all("batched_configs" not in result.extra for result in results)


def test_passes_fit_in_memory(monkeypatch):
    """A group larger than the memory allows trains in several passes, each run still its own result."""
    configs = _configs(seeds=(0, 1, 2, 3), epochs=1)
    data = prepared_data(configs[0])
    one = batched.bytes_per_config(configs[0], data)
    monkeypatch.setattr(batched_dp_sgd, "free_bytes", lambda device: int(2.5 * one / batched_dp_sgd.MEMORY_SHARE))
    sizes = [outcome.extra["batched_configs"] for _, outcome in batched.train_batched(configs, data, context=CPU)]
    assert sizes == [2, 2, 2, 2]


def test_the_estimate_times_baseline_groups_as_the_runners_passes(isolated_store, monkeypatch):
    """A batched baseline group is estimated as one pass of its models (probe_batched), and the runner then trains
    it as that pass; switched off, or a lone run, it is estimated run by run."""
    workspace = Workspace.at(isolated_store)
    workspace.folder.mkdir(parents=True)
    probed = []
    monkeypatch.setattr(estimating, "probe_batched",
                        lambda configs, data, device: probed.append(len(configs)) or probing.probe_batched(
                            configs, data, device))
    plan = services.plan(make_spec(dataset="heart", techniques=("baseline",), seeds=(0, 1, 2), epochs=2,
                                   learning_rate=(0.005, 0.02)), workspace)
    together = services.estimate(plan, workspace, device="cpu")
    assert probed == [6] and "baseline 6 runs in 1 batched pass (" in together.basis
    assert "a step for 6 models measured on this machine" in together.basis
    spread = services.estimate(plan, workspace, workers=2, device="cpu")  # the runner's cut: one part per worker
    assert "baseline 6 runs in 2 batched passes" in spread.basis and "a step for 3 models" in spread.basis
    lone = services.estimate(services.plan(make_spec(dataset="heart", techniques=("baseline",), epochs=2), workspace),
                             workspace, device="cpu")
    assert "batched" not in lone.basis and "ms a step (" in lone.basis
    monkeypatch.setenv(batched_dp_sgd.ENVIRONMENT_VARIABLE, "0")
    alone = services.estimate(plan, workspace, device="cpu")
    assert "batched" not in alone.basis and "ms a step (" in alone.basis
    monkeypatch.delenv(batched_dp_sgd.ENVIRONMENT_VARIABLE)
    report = services.run(plan, workspace, device="cpu")
    assert report.trained == 6 and not report.failed
    with open_store(workspace.store_path) as store:
        assert {record["extra"]["batched_configs"] for record in store.records(status="ok")} == {6}
