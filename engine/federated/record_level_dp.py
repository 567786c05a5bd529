"""Record-level differential privacy for federated runs (`fed-dp-sgd`): every client trains with Opacus
DP-SGD on its own records, so the unit of privacy is one record. Table models train the round's clients as one
stacked pass instead (batched_clients.py): the same mechanism, client by client, in batched arithmetic.

All clients use the same Poisson rate q = 1 / ceil(n_smallest / B), the same steps per local epoch and the
same noise multiplier, so each client's mechanism is the same subsampled Gaussian and one (sigma, q, steps)
triple bounds them all; a client takes steps only in rounds it is picked, and the record's `steps` is the
largest count any client took. Clients hold disjoint records, so they compose in parallel: the run's
epsilon is the worst client's. Sizes (n_train, client sizes) are treated as public, as Opacus does with n.
Accounted by engine.privacy (Opacus PRV or RDP), never estimated.
"""

from __future__ import annotations

import copy
import math
import warnings

import numpy as np
import torch
from opacus import GradSampleModule
from opacus.optimizers import DPOptimizer
from torch import nn

from engine.federated.local import ClientData, LocalOptions, ParamLayout
from engine.models.loss import cross_entropy
from engine.privacy.accounting import epsilon_for
from engine.privacy.randomness import PrivacyRandomness


def record_level_plan(sizes: list[int], batch_size: int, local_epochs: int, rounds: int) -> tuple[float, int, int]:
    """(sample rate q, steps per local epoch, planned steps per client if picked every round)."""
    steps_per_epoch = max(1, math.ceil(min(sizes) / batch_size))
    return 1.0 / steps_per_epoch, steps_per_epoch, rounds * local_epochs * steps_per_epoch


class DPSGDTrainer:
    """Each selected client runs Opacus DP-SGD (GradSampleModule + DPOptimizer over Adam) on its own rows."""

    def __init__(self, model: nn.Module, layout: ParamLayout, *, noise_multiplier: float, max_grad_norm: float,
                 sample_rate: float, steps_per_epoch: int, randomness: PrivacyRandomness):
        """`randomness` (engine.privacy.randomness) draws every Poisson sample and all noise: never the seed."""
        self.layout = layout
        self.randomness = randomness
        self.module = GradSampleModule(copy.deepcopy(model), loss_reduction="mean")
        self.noise_multiplier, self.max_grad_norm = noise_multiplier, max_grad_norm
        self.sample_rate, self.steps_per_epoch = sample_rate, steps_per_epoch

    def train(self, global_vector: np.ndarray, clients: list[int], data: ClientData, options: LocalOptions,
              seed: int, round_index: int) -> np.ndarray:
        updates = np.zeros((len(clients), self.layout.dim))  # (K, dim)
        criterion = cross_entropy(options.class_weights, data.device)  # weighted: each row's loss, before clipping
        for slot, client in enumerate(clients):
            model = self.layout.load(self.module._module, global_vector)
            self.module.train()
            rows = data.indices[client]
            sampler = self.randomness.numpy_generator()
            noise = self.randomness.torch_generator(str(data.device))
            optimizer = DPOptimizer(torch.optim.Adam(self.module.parameters(), lr=options.learning_rate),
                                    noise_multiplier=self.noise_multiplier, max_grad_norm=self.max_grad_norm,
                                    expected_batch_size=self.sample_rate * len(rows), generator=noise)
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="Full backward hook is firing")
                for _ in range(options.epochs * self.steps_per_epoch):
                    batch = rows[sampler.random(len(rows)) < self.sample_rate]  # Poisson sampling within the client
                    index = torch.as_tensor(batch, device=data.device, dtype=torch.long)
                    optimizer.zero_grad(set_to_none=True)
                    scores = self.module(data.x[index])
                    # An empty draw still steps (noise only), as the accountant assumes: skipping it would show.
                    loss = criterion(scores, data.y[index]) if len(batch) else scores.sum() * 0.0
                    loss.backward()
                    optimizer.step()
            updates[slot] = self.layout.model_vector(model) - global_vector
        return updates


def record_level_epsilon(*, noise_multiplier: float, sample_rate: float, steps_per_client: list[int], delta: float,
                         accountant: str, epsilon_scale: float) -> tuple[float, list[float]]:
    """(run epsilon = the worst client's, each client's epsilon); disjoint clients compose in parallel."""
    known: dict[int, float] = {0: 0.0}
    for steps in sorted(set(steps_per_client)):
        if steps not in known:
            known[steps] = epsilon_for(noise_multiplier=noise_multiplier, sample_rate=sample_rate, steps=steps,
                                       delta=delta, accountant=accountant, epsilon_scale=epsilon_scale)
    per_client = [known[steps] for steps in steps_per_client]
    return max(per_client), per_client
