"""The batched DP-SGD path (issue 14): K configurations of one sweep in one pass, each still its own run.

Exactness against Opacus on one batch (per-sample norms, the clipped and noised gradient, one Adam step), the
accounting against the per-run path, configurations that do not disturb each other, and a batched sweep against a
per-run sweep of the same grid through the runner.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from opacus import GradSampleModule
from opacus.optimizers import DPOptimizer

from conftest import QUICK
from engine.models.loss import cross_entropy
from engine.privacy.randomness import ReplayableRandomness, SecretRandomness
from engine.runner.records import open_store
from engine.techniques import batched_dp_sgd as batched
from engine.techniques import scoring_tap
from engine.techniques.base import RunContext
from engine.techniques.dp_sgd import DPSGD
from engine.techniques.training import model_for, seed_everything
from engine_support import expand, make_spec, plan_sweep, prepared_data, run_sweep, sweep_per_run_and_batched

ROOT = Path(__file__).resolve().parents[1]


def _configs(**values):
    return expand(make_spec(**{**QUICK, "techniques": ("dp-sgd",), **values}))


def _opacus_step(model, x, y, *, clip, noise_multiplier, expected_batch, lr, seed, weights=None):
    """One Opacus DP-SGD step (GradSampleModule + DPOptimizer + Adam) on the batch (x, y): per-sample norms,
    the noised gradient (p.grad) and the parameters after the step."""
    module = GradSampleModule(model)
    optimizer = DPOptimizer(torch.optim.Adam(module.parameters(), lr=lr), noise_multiplier=noise_multiplier,
                            max_grad_norm=clip, expected_batch_size=expected_batch,
                            generator=torch.Generator().manual_seed(seed))
    loss = cross_entropy(weights)(module(x), y)
    loss.backward()
    norms = torch.stack([p.grad_sample.reshape(len(x), -1).norm(dim=1) for p in module.parameters()], 1).norm(dim=1)
    optimizer.step()
    return norms, [p.grad.clone() for p in module.parameters()], [p.detach().clone() for p in module.parameters()]


@pytest.mark.parametrize("model_name, weights", [("mlp", None), ("logreg", None), ("mlp", (0.6, 1.0))])
def test_one_batched_step_equals_opacus(model_name, weights):
    config = _configs(model=model_name)[0]
    data = prepared_data(config)
    x, y = torch.from_numpy(data.x_train[:37]), torch.from_numpy(data.y_train[:37])  # (B, d), (B,)
    clip, sigma, expected, lr = 0.7, 1.3, 40, 0.01
    seed_everything(3)
    model = model_for(config, data)
    net = batched.StackedNet.from_models([model])  # K = 1, copied before Opacus moves the model
    norms, grads, after = _opacus_step(model, x, y, clip=clip, noise_multiplier=sigma, expected_batch=expected,
                                       lr=lr, seed=11, weights=weights)

    class_w = torch.tensor(weights) if weights else torch.ones(2)
    sums, ours = batched.clipped_gradients(net, x[None], y[None], class_w[y][None], torch.tensor([clip]))
    torch.testing.assert_close(ours[0], norms, atol=1e-5, rtol=1e-5)
    noised = batched.noised_gradients(sums, torch.tensor([sigma * clip]), torch.tensor([float(expected)]),
                                      torch.Generator().manual_seed(11))  # the same injected noise generator
    for mine, theirs in zip(noised, grads):
        torch.testing.assert_close(mine[0], theirs, atol=1e-6, rtol=1e-5)
    moved = batched.StackedAdam(net.parameters(), torch.tensor([lr])).step(net.parameters(), noised,
                                                                          torch.tensor([True]))
    for mine, theirs in zip(moved, after):
        torch.testing.assert_close(mine[0], theirs, atol=1e-6, rtol=1e-5)


def test_padding_and_empty_batches_add_nothing_but_noise():
    config = _configs(model="mlp")[0]
    data = prepared_data(config)
    seed_everything(0)
    net = batched.StackedNet.from_models([model_for(config, data), model_for(config, data)])
    x = torch.from_numpy(data.x_train[:10]).expand(2, 10, -1).clone()  # (2, 10, d)
    y = torch.from_numpy(data.y_train[:10]).expand(2, 10).clone()  # (2, 10)
    present = torch.zeros(2, 10)
    present[0, :6] = 1  # config 0: six real rows and four padding rows; config 1: an empty batch
    sums, norms = batched.clipped_gradients(net, x, y, present, torch.tensor([1.0, 1.0]))
    alone, _ = batched.clipped_gradients(batched.StackedNet([w[:1] for w in net.weights], [b[:1] for b in net.biases]),
                                         x[:1, :6], y[:1, :6], torch.ones(1, 6), torch.tensor([1.0]))
    for padded, exact in zip(sums, alone):
        torch.testing.assert_close(padded[:1], exact)
        assert torch.count_nonzero(padded[1]) == 0
    assert torch.count_nonzero(norms[1]) == 0
    index, mask = batched.poisson_batches(50, torch.tensor([0.5, 0.0]), torch.tensor([True, True]),
                                          torch.Generator().manual_seed(1))
    assert mask[1].sum() == 0 and index.shape == mask.shape and mask[0].sum() > 0
    assert len(set(index[0][mask[0]].tolist())) == int(mask[0].sum())  # each row at most once


def test_configurations_do_not_disturb_each_other():
    """Three configurations in one step: the middle one with a huge noise std and its own clip and learning rate;
    the outer ones come out exactly as if each were trained alone."""
    config = _configs(model="mlp")[0]
    data = prepared_data(config)
    seed_everything(0)
    models = [model_for(config, data) for _ in range(3)]
    net = batched.StackedNet.from_models(models)
    x = torch.from_numpy(data.x_train[:30]).reshape(3, 10, -1)  # (3, 10, d): each its own rows
    y = torch.from_numpy(data.y_train[:30]).reshape(3, 10)  # (3, 10)
    clip, lr = torch.tensor([0.5, 1.0, 2.0]), torch.tensor([1e-3, 5e-2, 1e-2])
    sums, _ = batched.clipped_gradients(net, x, y, torch.ones(3, 10), clip)
    grads = batched.noised_gradients(sums, torch.tensor([0.0, 1e6, 0.0]), torch.tensor([10.0] * 3),
                                     torch.Generator().manual_seed(0))
    moved = batched.StackedAdam(net.parameters(), lr).step(net.parameters(), grads, torch.tensor([True] * 3))
    for k in (0, 2):
        own = batched.StackedNet.from_models([models[k]])
        own_sums, _ = batched.clipped_gradients(own, x[k:k + 1], y[k:k + 1], torch.ones(1, 10), clip[k:k + 1])
        own_grads = batched.noised_gradients(own_sums, torch.tensor([0.0]), torch.tensor([10.0]),
                                             torch.Generator().manual_seed(5))
        own_moved = batched.StackedAdam(own.parameters(), lr[k:k + 1]).step(own.parameters(), own_grads,
                                                                            torch.tensor([True]))
        for mine, alone in zip(moved, own_moved):
            torch.testing.assert_close(mine[k:k + 1], alone)
    # A configuration that has taken its steps does not move.
    still = batched.StackedAdam(net.parameters(), lr).step(net.parameters(), grads, torch.tensor([True, False, True]))
    for before, after in zip(net.parameters(), still):
        assert torch.equal(before[1], after[1])


def test_accounting_equals_the_per_run_path():
    configs = _configs(epsilons=(1.0, 4.0), clipping_norms=(0.5,), batch_size=100, epochs=3)
    data = prepared_data(configs[0])
    results = dict(batched.train_batched(configs, data, context=RunContext(device="cpu",
                                                                           randomness=ReplayableRandomness(1))))
    for config in configs:
        per_run = DPSGD().run(config, data, context=RunContext(device="cpu"))
        mine = results[config]
        assert (mine.noise_multiplier, mine.steps, mine.sample_rate, mine.epsilon) == \
            (per_run.noise_multiplier, per_run.steps, per_run.sample_rate, per_run.epsilon)
        assert mine.epsilon <= config.target_epsilon and mine.extra["batched_configs"] == 2


def test_own_batch_size_epochs_and_progress():
    configs = [*_configs(batch_size=50, epochs=2, seeds=(0,)), *_configs(batch_size=150, epochs=3, seeds=(1,))]
    data = prepared_data(configs[0])
    seen: dict = {}
    results = dict(batched.train_batched(configs, data, context=RunContext(device="cpu"),
                                         on_progress=lambda c, f: seen.setdefault(c, []).append(f)))
    for config in configs:
        per_epoch = -(-data.n_train // config.batch_size)
        assert results[config].steps == config.epochs * per_epoch
        assert results[config].sample_rate == 1 / per_epoch
        assert seen[config] == [(e + 1) / config.epochs for e in range(config.epochs)]
        assert 0.5 < results[config].accuracy <= 1.0


def test_switch_and_fallbacks(monkeypatch):
    technique = DPSGD()
    config = _configs(model="mlp")[0]
    monkeypatch.delenv(batched.ENVIRONMENT_VARIABLE, raising=False)
    assert technique.batch_key(config) is not None  # on by default
    assert technique.batch_key(_configs(model="mlp", seeds=(5,), epsilons=(8.0,))[0]) == technique.batch_key(config)
    cnn = config.__class__(**{**config.__dict__, "model": "cnn", "dataset": "mnist"})
    assert technique.batch_key(cnn) is None  # the CNN trains per run through Opacus
    for off in ("0", "false", "off"):
        monkeypatch.setenv(batched.ENVIRONMENT_VARIABLE, off)
        assert technique.batch_key(config) is None  # the off switch: every run alone through Opacus
    # A white-box audit's optimizer hook means Opacus, per run, even when switched on.
    monkeypatch.setenv(batched.ENVIRONMENT_VARIABLE, "1")
    hooked = []
    data = prepared_data(config)
    [(_, result)] = list(technique.run_batch([config], data, context=RunContext(device="cpu",
                                                                                dp_optimizer_hook=hooked.append)))
    assert hooked and "batched_configs" not in result.extra


def test_batched_sweep_equals_per_run_sweep(tmp_path, monkeypatch):
    """heart, 2 epsilons x 2 clipping norms x 2 seeds through the runner: identical epsilons, accuracy within
    seed noise, every run its own record."""
    spec = make_spec(dataset="heart", techniques=("dp-sgd",), epsilons=(1.0, 8.0), clipping_norms=(0.5, 2.0),
                     seeds=(0, 1), epochs=4, batch_size=64, learning_rate=0.01, accountant="rdp")
    per_run, together = sweep_per_run_and_batched(spec, tmp_path, monkeypatch)
    for run_id in per_run:
        assert together[run_id]["epsilon"] == per_run[run_id]["epsilon"]
        assert together[run_id]["noise_multiplier"] == per_run[run_id]["noise_multiplier"]
        assert abs(together[run_id]["accuracy"] - per_run[run_id]["accuracy"]) < 0.15
        assert (together[run_id].get("extra") or {}).get("batched_configs") == 8
    mean = lambda runs: statistics.mean(r["accuracy"] for r in runs.values())  # noqa: E731
    assert abs(mean(together) - mean(per_run)) < 0.04


def test_poisson_samples_keep_each_row_with_its_own_rate():
    """The geometric-gap draw is Bernoulli(q_k) per row and configuration: every row's inclusion frequency and the
    batch sizes' mean and variance match n q and n q (1 - q); rows are increasing, q = 0 and q = 1 are exact."""
    n, draws = 200, 3000
    rates = torch.tensor([0.0, 0.02, 0.25, 1.0])
    generator = torch.Generator().manual_seed(7)  # a test's own generator: the product's is secret
    counts, sizes = torch.zeros(4, n), torch.zeros(draws, 4)
    for draw in range(draws):
        index, present = batched.poisson_batches(n, rates, torch.tensor([True] * 4), generator)  # (4, B_max) each
        assert bool(((index[:, 1:] > index[:, :-1]) | ~present[:, 1:]).all())  # increasing, padding after
        counts.scatter_add_(1, index, present.float())  # padding adds nothing
        sizes[draw] = present.sum(1)
    frequency = counts / draws  # (4, n)
    assert frequency[0].max() == 0 and frequency[3].min() == 1
    for k in (1, 2):
        q = float(rates[k])
        spread = (q * (1 - q) / draws) ** 0.5  # one row's inclusion frequency: binomial standard error
        assert (frequency[k] - q).abs().max() < 5 * spread
        assert abs(sizes[:, k].mean() - n * q) < 5 * (n * q * (1 - q) / draws) ** 0.5
        assert sizes[:, k].var() == pytest.approx(n * q * (1 - q), rel=0.15)
    index, present = batched.poisson_batches(n, rates, torch.tensor([True, True, False, True]), generator)
    assert present[2].sum() == 0  # a configuration that has taken its steps draws nothing


def test_noise_and_sampling_come_from_secret_randomness():
    """Two batched trainings of the same configurations and seeds differ (the noise and samples are secret, never
    the seed); replayable generators, a test's tool only, give identical ones."""
    configs = _configs(epsilons=(1.0,), epochs=1)
    data = prepared_data(configs[0])

    def weights(randomness):
        noises = batched._calibrate(configs, data, RunContext(device="cpu"))
        members = [batched._member(c, data, noise) for c, noise in zip(configs, noises)]
        training = batched._Pass(members, data, RunContext(device="cpu", randomness=randomness))
        with torch.no_grad():
            training.advance(None)
        return torch.cat([p.flatten() for p in training.net.parameters()])

    assert not torch.equal(weights(SecretRandomness()), weights(SecretRandomness()))
    assert torch.equal(weights(ReplayableRandomness(3)), weights(ReplayableRandomness(3)))


def test_each_run_is_yielded_when_it_finishes_and_passes_fit_in_memory(monkeypatch):
    """A 1-epoch run is scored and handed on while a 3-epoch run of the same pass is still training; a group larger
    than the memory allows trains in several passes, each run still its own result."""
    configs = [*_configs(epochs=1, seeds=(0,)), *_configs(epochs=3, seeds=(1,))]  # eps 1, 4 at each
    data = prepared_data(configs[0])
    events = []
    for config, outcome in batched.train_batched(configs, data, context=RunContext(device="cpu"),
                                                 on_progress=lambda c, f: events.append(("progress", c.epochs, f))):
        assert not isinstance(outcome, BaseException)
        events.append(("result", config.epochs, outcome.extra["batched_configs"]))
    first_long_epoch = events.index(("progress", 3, pytest.approx(1 / 3)))
    short_results = [at for at, event in enumerate(events) if event[:2] == ("result", 1)]
    long_second_epoch = events.index(("progress", 3, pytest.approx(2 / 3)))
    assert len(short_results) == 2 and all(first_long_epoch < at < long_second_epoch for at in short_results)

    one_config = batched._bytes_per_config(configs[0], data)
    monkeypatch.setattr(batched, "free_bytes", lambda device: int(2.5 * one_config / batched.MEMORY_SHARE))
    assert batched.configs_per_pass(configs, data, "cpu") == 2
    sizes = [outcome.extra["batched_configs"] for _, outcome in batched.train_batched(
        configs, data, context=RunContext(device="cpu"))]
    assert sorted(sizes) == [2, 2, 2, 2]


def test_killing_a_batched_sweep_keeps_every_finished_run(tmp_path):
    """A real sweep process (the CLI), batched: the 1-epoch runs are recorded when they end, while the 20,000-epoch
    runs of the same pass go on; SIGKILL then keeps them, and a rerun finds them cached."""
    store_path = tmp_path / "killed.sqlite"
    grid = dict(dataset="breast-cancer", techniques=("dp-sgd",), epsilons=(1.0, 4.0), clipping_norms=(1.0,),
                seeds=(0,), epochs=(1, 20000), batch_size=32, accountant="rdp")
    command = [sys.executable, "-m", "engine.cli", "sweep", "--dataset", "breast-cancer", "--technique", "dp-sgd",
               "--epsilon", "1,4", "--clip", "1", "--seeds", "0", "--epochs", "1,20000", "--batch-size", "32",
               "--accountant", "rdp", "--device", "cpu", "--quiet", "--store", str(store_path)]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               env={**os.environ, "PYTHONWARNINGS": "ignore", batched.ENVIRONMENT_VARIABLE: "1"})

    def finished() -> int:
        try:
            with sqlite3.connect(store_path, timeout=5) as db:
                return db.execute("SELECT count(*) FROM runs WHERE status = 'ok'").fetchone()[0]
        except sqlite3.DatabaseError:  # not created yet
            return 0

    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and process.poll() is None and finished() < 2:
            time.sleep(0.1)
        assert finished() == 2 and process.poll() is None, "the short runs were not recorded while the long ones trained"
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)
    with open_store(store_path) as store:
        assert store.integrity_check() == "ok"
        kept = store.records(status="ok")
        assert sorted(record["epochs"] for record in kept) == [1, 1]
        assert all(record["extra"]["batched_configs"] == 4 for record in kept)
    plan = plan_sweep(make_spec(**grid), store_path)
    assert len(plan.cached_ids) == 2 and len(plan.configs) == 4


def test_worker_processes_share_a_batched_group(tmp_path, monkeypatch):
    """With two worker processes on CPU, the sweep's batched group is cut in two passes, one per worker; every run
    is still its own record."""
    monkeypatch.delenv(batched.ENVIRONMENT_VARIABLE, raising=False)
    spec = make_spec(**{**QUICK, "techniques": ("dp-sgd",), "seeds": (0, 1)})  # 2 epsilons x 2 seeds
    with open_store(tmp_path / "results.sqlite") as store:
        report = run_sweep(spec, store=store, workers=2)
        assert report.trained == 4 and report.failed == 0
        records = store.records(status="ok")
    assert [record["extra"]["batched_configs"] for record in records] == [2, 2, 2, 2]


def test_a_step_where_no_configuration_drew_a_row_still_steps_and_runs_are_scored_one_at_a_time():
    """Batch size 1 (q = 1/n): most steps every configuration draws no row, and each still steps with noise only.
    Both runs end at the same step; each is scored just before it is handed on, so the runner checks each run's own
    test scores (the last the tap reported), never a neighbour's."""
    configs = _configs(batch_size=1, epochs=1, epsilons=(8.0,), seeds=(0, 1))
    data = prepared_data(configs[0])
    reports = []
    with scoring_tap.listening(lambda scores: reports.append(len(scores))):
        outcomes = []
        for config, outcome in batched.train_batched(configs, data, context=RunContext(device="cpu")):
            outcomes.append((outcome, len(reports)))
            reports.clear()
    assert [type(outcome) for outcome, _ in outcomes] == [batched.RunResult] * 2
    assert [scored for _, scored in outcomes] == [1, 1]  # one test-score report before each run is handed on
    assert all(outcome.steps == data.n_train for outcome, _ in outcomes)
