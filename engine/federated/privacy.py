"""Differential privacy for federated runs, with the unit of privacy explicit.

Record level (`fed-dp-sgd`): every client trains with Opacus DP-SGD on its own records. All clients use
the same Poisson rate q = 1 / ceil(n_smallest / B), the same steps per local epoch and the same noise
multiplier, so each client's mechanism is the same subsampled Gaussian and one (sigma, q, steps) triple
bounds them all; a client takes steps only in rounds it is picked, and the record's `steps` is the
largest count any client took. Clients hold disjoint records, so they compose in parallel: the run's
epsilon is the worst client's. Sizes (n_train, client sizes) are treated as public, as Opacus does with n.

Client level (`dp-fedavg`, McMahan et al. 2018): each round every client joins with probability
q = clients_per_round / n_clients (Poisson), clips its update to L2 norm S, and the server adds
N(0, (z S)^2) to the sum and divides by the expected count q n_clients (fixed denominator). That is a
Poisson-subsampled Gaussian mechanism repeated `rounds` times at the level of whole clients.

Both are accounted by engine.privacy (Opacus PRV or RDP), never estimated.
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

from engine.federated.costs import COUNT_BYTES, model_bytes
from engine.federated.local import ClientData, LocalOptions, ParamLayout
from engine.federated.strategies import ClientUpdate, Message, StrategyWrapper
from engine.privacy.accounting import epsilon_for
from engine.privacy.calibration import calibrated_noise

FEW_CLIENTS = 100  # client-level DP over fewer clients than this gets a warning


# --- record level: fed-dp-sgd ---------------------------------------------------------------------------
def record_level_plan(sizes: list[int], batch_size: int, local_epochs: int, rounds: int) -> tuple[float, int, int]:
    """(sample rate q, steps per local epoch, planned steps per client if picked every round)."""
    steps_per_epoch = max(1, math.ceil(min(sizes) / batch_size))
    return 1.0 / steps_per_epoch, steps_per_epoch, rounds * local_epochs * steps_per_epoch


class DPSGDTrainer:
    """Each selected client runs Opacus DP-SGD (GradSampleModule + DPOptimizer over Adam) on its own rows."""

    def __init__(self, model: nn.Module, layout: ParamLayout, *, noise_multiplier: float, max_grad_norm: float,
                 sample_rate: float, steps_per_epoch: int):
        self.layout = layout
        self.module = GradSampleModule(copy.deepcopy(model), loss_reduction="mean")
        self.noise_multiplier, self.max_grad_norm = noise_multiplier, max_grad_norm
        self.sample_rate, self.steps_per_epoch = sample_rate, steps_per_epoch

    def train(self, global_vector: np.ndarray, clients: list[int], data: ClientData, options: LocalOptions,
              seed: int, round_index: int) -> np.ndarray:
        updates = np.zeros((len(clients), self.layout.dim))  # (K, dim)
        criterion = nn.CrossEntropyLoss()
        for slot, client in enumerate(clients):
            model = self.layout.load(self.module._module, global_vector)
            self.module.train()
            rows = data.indices[client]
            sampler = np.random.default_rng([seed, 0xD95, round_index, client])
            noise = torch.Generator(device=data.device).manual_seed(int(sampler.integers(2 ** 62)))
            optimizer = DPOptimizer(torch.optim.Adam(self.module.parameters(), lr=options.learning_rate),
                                    noise_multiplier=self.noise_multiplier, max_grad_norm=self.max_grad_norm,
                                    expected_batch_size=self.sample_rate * len(rows), generator=noise)
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="Full backward hook is firing")
                for _ in range(options.epochs * self.steps_per_epoch):
                    batch = rows[sampler.random(len(rows)) < self.sample_rate]  # Poisson sampling within the client
                    if len(batch) == 0:  # an empty draw releases nothing; the step is still accounted
                        continue
                    index = torch.as_tensor(batch, device=data.device)
                    optimizer.zero_grad(set_to_none=True)
                    criterion(self.module(data.x[index]), data.y[index]).backward()
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


# --- client level: dp-fedavg ---------------------------------------------------------------------------
class ClientLevelDP(StrategyWrapper):
    """Client-side fixed clipping, Poisson client sampling, Gaussian noise on the sum (server side)."""

    def __init__(self, strategy, *, clip: float, noise_multiplier: float, sample_rate: float, n_clients: int):
        super().__init__(strategy)
        self.clip, self.noise_multiplier = clip, noise_multiplier
        self.sample_rate, self.n_clients = sample_rate, n_clients
        self.clipped = self.uploads = 0

    def configure_fit(self, round_index, rng):
        return [int(c) for c in np.flatnonzero(rng.random(self.n_clients) < self.sample_rate)]

    def client_message(self, update: ClientUpdate, round_index: int) -> Message:
        norm = float(np.linalg.norm(update.delta))
        self.uploads += 1
        self.clipped += int(norm > self.clip)
        clipped = update.delta * min(1.0, self.clip / norm) if norm > 0 else update.delta
        return Message(update.client, clipped, 1.0, model_bytes(update.delta.size) + COUNT_BYTES)

    def message_bound(self) -> float:
        return float(self.n_clients)  # weights are 1; vectors are clipped to S

    def server_update(self, total, total_weight, params, rng):
        noisy = total + rng.normal(0.0, self.noise_multiplier * self.clip, size=total.shape)
        return params + noisy / (self.sample_rate * self.n_clients)

    def describe(self) -> dict:
        return {**self.strategy.describe(), "dp": "client-level", "clipped_fraction": self.clipped / max(1, self.uploads)}


def client_level_noise(*, target_epsilon: float, delta: float, clients_per_round: int, n_clients: int, rounds: int,
                       accountant: str, cache=None) -> tuple[float, float]:
    """(noise multiplier z, client sampling rate q) so that `rounds` rounds spend at most the target."""
    sample_rate = clients_per_round / n_clients
    return calibrated_noise(target_epsilon=target_epsilon, delta=delta, sample_rate=sample_rate, steps=rounds,
                            accountant=accountant, cache=cache), sample_rate


def client_level_warning(*, n_clients: int, noise_multiplier: float, sample_rate: float, dim: int,
                         epsilon: float) -> str | None:
    """Plain words for the dashboard when client-level DP over few clients cannot mean much."""
    expected = sample_rate * n_clients
    ratio = noise_multiplier * math.sqrt(dim) / expected  # noise norm on the mean update / the largest update
    if n_clients >= FEW_CLIENTS and ratio < 1:
        return None
    return (f"Client-level DP over {n_clients} clients: epsilon {epsilon:.3g} protects whole clients, and each "
            f"round's noise on the averaged update is about {ratio:.0f}x the largest update a client may send "
            f"(noise multiplier {noise_multiplier:.2f}, {dim} parameters, {expected:g} clients per round). With a "
            f"handful of silos either the model is mostly noise or the epsilon is too large to mean much; client-"
            f"level DP needs hundreds to thousands of clients. For a few hospitals or banks use record-level DP "
            f"(fed-dp-sgd).")
