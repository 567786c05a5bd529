"""fed-dp-sgd's clients of a round trained in one stacked pass (issue 14, engine/federated/batched_clients.py).

Exactness against Opacus' DPOptimizer client by client (norms, clipped and noised gradient, Adam), clients that do
not disturb each other, secret randomness, and a fed-dp-sgd sweep batched against the per-client Opacus path.
"""

from __future__ import annotations

import copy
import statistics

import numpy as np
import pytest
import torch
from opacus import GradSampleModule
from opacus.optimizers import DPOptimizer

from engine.federated import batched_clients
from engine.federated.batched_clients import BatchedClientsTrainer
from engine.federated.local import ClientData, LocalOptions, ParamLayout
from engine.models.loss import cross_entropy
from engine.privacy.randomness import ReplayableRandomness, SecretRandomness
from engine.techniques.training import model_for, seed_everything
from engine_support import expand, make_spec, prepared_data, sweep_per_run_and_batched

CLIP, SIGMA, LR = 0.7, 1.3, 0.01


@pytest.fixture(scope="module")
def table():
    """breast-cancer's training rows, an mlp at its initialisation, and the rows of three unequal clients."""
    config = expand(make_spec(dataset="breast-cancer", techniques=("fed-dp-sgd",), epsilons=(2.0,), seeds=(0,),
                              accountant="rdp"))[0]
    data = prepared_data(config)
    seed_everything(3)
    model = model_for(config, data)
    clients = ClientData(data.x_train, data.y_train, [np.arange(0, 60), np.arange(60, 200), np.arange(200, 290)])
    return model, ParamLayout(model), clients


def _trainer(model, layout, randomness, sample_rate=0.2, steps_per_epoch=1):
    return BatchedClientsTrainer(model, layout, noise_multiplier=SIGMA, max_grad_norm=CLIP, sample_rate=sample_rate,
                                 steps_per_epoch=steps_per_epoch, randomness=randomness)


def _opacus_client(model, layout, global_vector, data, batches, *, rows, sample_rate, noise, weights):
    """DPSGDTrainer's steps for one client (GradSampleModule + DPOptimizer over Adam) on the given batches: the last
    step's per-sample norms and noised gradients (by name), and the client's update."""
    module = GradSampleModule(copy.deepcopy(model), loss_reduction="mean")
    local = layout.load(module._module, global_vector)
    optimizer = DPOptimizer(torch.optim.Adam(module.parameters(), lr=LR), noise_multiplier=SIGMA, max_grad_norm=CLIP,
                            expected_batch_size=sample_rate * rows, generator=noise)
    criterion = cross_entropy(weights)
    for batch in batches:
        optimizer.zero_grad(set_to_none=True)
        scores = module(data.x[batch])
        loss = criterion(scores, data.y[batch]) if len(batch) else scores.sum() * 0.0
        loss.backward()
        norms = torch.stack([p.grad_sample.flatten(1).norm(dim=1) for p in module.parameters()], 1).norm(dim=1)
        optimizer.step()
    grads = {name: p.grad.clone() for name, p in zip(layout.names, module.parameters())}
    return norms, grads, layout.model_vector(local) - global_vector


@pytest.mark.parametrize("weights", [None, (0.6, 1.0)])
def test_one_client_step_equals_opacus(table, weights):
    """K = 1, one step, injected generators: per-sample norms to 1e-5, the clipped and noised gradient and the Adam
    update equal DPOptimizer's on the same Poisson batch and noise."""
    model, layout, data = table
    global_vector = layout.model_vector(model)
    trainer = _trainer(model, layout, ReplayableRandomness(0))
    options = LocalOptions(epochs=1, batch_size=32, learning_rate=LR, class_weights=weights)
    training = trainer.start(global_vector, [1], data, options)
    index, present = training.sample(torch.Generator().manual_seed(1))  # (1, B_max) each
    norms, grads = training.step(index, present, [torch.Generator().manual_seed(11)])
    batch = index[0][present[0]]
    assert 10 < len(batch) < 50 and len(set(batch.tolist())) == len(batch)  # about q x 140 rows of client 1's own
    assert set(batch.tolist()) <= set(range(60, 200))
    theirs_norms, theirs_grads, theirs_update = _opacus_client(
        model, layout, global_vector, data, [batch], rows=140, sample_rate=0.2,
        noise=torch.Generator().manual_seed(11), weights=weights)
    torch.testing.assert_close(norms[0][present[0]], theirs_norms, atol=1e-5, rtol=1e-5)
    for name, mine in zip(trainer.names, grads):
        torch.testing.assert_close(mine[0], theirs_grads[name], atol=1e-6, rtol=1e-5)
    np.testing.assert_allclose(trainer.updates(training, global_vector)[0], theirs_update, atol=1e-6, rtol=1e-5)


def test_empty_samples_still_step_with_noise_only(table):
    """Every client drew no row (B_max = 0): each still steps, its noise over its expected batch, as DPOptimizer's
    step on an empty batch."""
    model, layout, data = table
    global_vector = layout.model_vector(model)
    trainer = _trainer(model, layout, ReplayableRandomness(0))
    training = trainer.start(global_vector, [0, 2], data, LocalOptions(epochs=1, batch_size=32, learning_rate=LR))
    empty = torch.zeros((2, 0), dtype=torch.long)  # (K, 0)
    _, grads = training.step(empty, empty.bool(), [torch.Generator().manual_seed(s) for s in (21, 22)])
    updates = trainer.updates(training, global_vector)
    for slot, (client, seed) in enumerate(((0, 21), (2, 22))):
        _, theirs_grads, theirs_update = _opacus_client(
            model, layout, global_vector, data, [empty[0]], rows=data.size(client), sample_rate=0.2,
            noise=torch.Generator().manual_seed(seed), weights=None)
        for name, mine in zip(trainer.names, grads):
            torch.testing.assert_close(mine[slot], theirs_grads[name], atol=1e-6, rtol=1e-5)
        np.testing.assert_allclose(updates[slot], theirs_update, atol=1e-6, rtol=1e-5)
        assert np.abs(updates[slot]).max() > 0


@pytest.mark.parametrize("per_pass", [3, 2])
def test_every_client_of_a_round_equals_its_own_opacus_run(table, monkeypatch, per_pass):
    """train() on three unequal clients, 2 local epochs of 2 steps, replayed generators: each client's update is what
    DPOptimizer gives on its own rows with its own expected batch (q x its rows) and its own noise; also when memory
    holds only two clients and the round trains in two passes."""
    model, layout, data = table
    global_vector = layout.model_vector(model)
    options = LocalOptions(epochs=2, batch_size=32, learning_rate=LR)
    clients = [0, 1, 2]
    trainer = _trainer(model, layout, ReplayableRandomness(7), steps_per_epoch=2)
    if per_pass < len(clients):
        one = trainer.bytes_per_client(clients, data)
        monkeypatch.setattr(batched_clients, "free_bytes", lambda device: int(2.5 * one / batched_clients.MEMORY_SHARE))
    assert min(trainer.clients_per_pass(clients, data), len(clients)) == per_pass
    updates = trainer.train(global_vector, clients, data, options, seed=0, round_index=0)
    replay = ReplayableRandomness(7)  # the trainer's draws in its order: the samples, then each client's noise
    sampling = replay.torch_generator()
    noise = [replay.torch_generator() for _ in clients]
    batches: dict[int, list] = {client: [] for client in clients}
    for start in range(0, len(clients), per_pass):  # each pass draws its clients' samples, step by step
        part = clients[start:start + per_pass]
        drawing = _trainer(model, layout, replay).start(global_vector, part, data, options)
        for _ in range(4):
            index, present = drawing.sample(sampling)  # (len(part), B_max) each
            for slot, client in enumerate(part):
                batches[client].append(index[slot][present[slot]])
    for slot, client in enumerate(clients):
        _, _, theirs = _opacus_client(model, layout, global_vector, data, batches[client], rows=data.size(client),
                                      sample_rate=0.2, noise=noise[slot], weights=None)
        np.testing.assert_allclose(updates[slot], theirs, atol=2e-6, rtol=1e-4)


def test_a_client_is_not_disturbed_by_another_in_the_pass(table):
    """Client 0's update after three steps is the same alone and beside client 1, given the same samples and noise."""
    model, layout, data = table
    global_vector = layout.model_vector(model)
    options = LocalOptions(epochs=1, batch_size=32, learning_rate=LR)
    trainer = _trainer(model, layout, ReplayableRandomness(0))
    alone, together = (trainer.start(global_vector, clients, data, options) for clients in ([0], [0, 1]))
    own_noise, pair_noise = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    other_noise = torch.Generator().manual_seed(6)
    sampling = torch.Generator().manual_seed(2)
    for _ in range(3):
        index, present = together.sample(sampling)  # (2, B_max): client 1 has more rows, so a wider sample
        own = int(present[0].sum())
        alone.step(index[:1, :own], present[:1, :own], [own_noise])
        together.step(index, present, [pair_noise, other_noise])
    mine, beside = trainer.updates(alone, global_vector), trainer.updates(together, global_vector)
    np.testing.assert_allclose(beside[0], mine[0], atol=1e-7, rtol=1e-6)
    assert np.abs(beside[1] - beside[0]).max() > 1e-3  # client 1 moved its own way


def test_noise_and_sampling_come_from_secret_randomness(table):
    """Two rounds from the same global model and seed differ (secret samples and noise); replayable generators, a
    test's tool only, give identical ones."""
    model, layout, data = table
    global_vector = layout.model_vector(model)
    options = LocalOptions(epochs=1, batch_size=32, learning_rate=LR)

    def updates(randomness):
        return _trainer(model, layout, randomness, steps_per_epoch=2).train(global_vector, [0, 1], data, options,
                                                                            seed=0, round_index=0)

    assert not np.array_equal(updates(SecretRandomness()), updates(SecretRandomness()))
    np.testing.assert_array_equal(updates(ReplayableRandomness(3)), updates(ReplayableRandomness(3)))


def test_batched_fed_dp_sgd_sweep_equals_the_opacus_path(tmp_path, monkeypatch):
    """breast-cancer, 4 clients, 2 epsilons x 2 seeds through engine.services, batched and with
    FRONTIER_BATCHED_DP_SGD=0: the same runs with identical epsilons and accounting, accuracy within seed noise and
    well above the majority class."""
    spec = make_spec(dataset="breast-cancer", techniques=("fed-dp-sgd",), epsilons=(2.0, 8.0), seeds=(0, 1),
                     n_clients=4, rounds=6, local_epochs=2, batch_size=32, learning_rate=0.01, accountant="rdp")
    data = prepared_data(spec)
    majority = np.bincount(data.y_test).max() / len(data.y_test)
    per_client, together = sweep_per_run_and_batched(spec, tmp_path, monkeypatch)
    for run_id, theirs in per_client.items():
        mine = together[run_id]
        for field in ("epsilon", "noise_multiplier", "sample_rate", "steps"):
            assert mine[field] == theirs[field]
        assert mine["extra"]["client_epsilon"] == theirs["extra"]["client_epsilon"]
        assert (mine["extra"]["trainer"], theirs["extra"]["trainer"]) == ("batched-clients", "opacus")
    for runs in (per_client, together):
        assert min(r["accuracy"] for r in runs.values()) > majority + 0.1
    mean = lambda runs: statistics.mean(r["accuracy"] for r in runs.values())  # noqa: E731
    assert abs(mean(together) - mean(per_client)) < 0.05
