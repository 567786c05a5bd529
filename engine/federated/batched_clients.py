"""fed-dp-sgd's selected clients of a round trained together in one stacked pass (issue 14).

`BatchedClientsTrainer` has DPSGDTrainer's contract (engine.federated.record_level_dp) and its mechanism, client by
client; only the arithmetic is shared: the K selected clients' models are stacked (batched_dp_sgd.StackedNet), all
starting from the round's global model, and one set of batched matrix products steps them all. Each client keeps:
- its own Poisson sample over its own rows, each kept independently with the run's rate q, from secret randomness
  (drawn for all clients at once over the largest client's row count, each client keeping the positions below its
  own row count: position j of client c is its j-th row, so every row of c is still kept with probability q);
- its clipping (the run's C, Opacus' factor min(1, C / (norm + 1e-6)), per-sample norms by ghost norms), with its
  rows' class weights and the plain mean of engine.models.loss;
- its own Gaussian noise, std sigma C, from its own secret generator, drawn per parameter in parameter order as
  Opacus' DPOptimizer draws it (torch.normal(0, sigma C, shape)), added to the clipped sum and divided by its
  expected batch size q x its row count, as DPOptimizer(expected_batch_size=q * len(rows)) does;
- its own Adam (the run's learning rate, fresh moments every round, as the per-client Opacus path makes a new
  torch.optim.Adam for each client), and the same number of local steps; an empty sample still steps (noise only).
Table models only (batched_dp_sgd.BATCHED_MODELS); FedDPSGD picks this trainer when batched_dp_sgd.batching_enabled().
A round with more selected clients than fit in memory trains them in several passes (clients_per_pass).
"""

from __future__ import annotations

import copy
from typing import Sequence

import numpy as np
import torch
from torch import nn

from engine.federated.local import ClientData, LocalOptions, ParamLayout
from engine.privacy.randomness import PrivacyRandomness
from engine.techniques.batched_dp_sgd import (MAX_CONFIGS_PER_PASS, MEMORY_SHARE, StackedAdam, StackedNet,
                                              clipped_gradients, free_bytes, linear_layers, poisson_batches)


def client_samples(client_rows: torch.Tensor, sizes: torch.Tensor, sample_rate: float,
                   generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Each client's Poisson sample of its own rows: global row numbers (K, B_max), increasing per client, and a mask
    (K, B_max) of the real ones (padding points at client_rows[c, 0]). `client_rows` (K, n_max): client c's rows in
    its first sizes[c] places."""
    rates = torch.full((len(sizes),), sample_rate, dtype=torch.float64, device=sizes.device)  # (K,)
    active = torch.ones(len(sizes), dtype=torch.bool, device=sizes.device)  # (K,)
    positions, present = poisson_batches(client_rows.shape[1], rates, active, generator)  # (K, M) each
    present &= positions < sizes.unsqueeze(1)  # a client's kept positions past its own rows are not rows
    width = int(present.sum(1).max()) if len(sizes) else 0  # kept positions increase: the real ones are a prefix
    positions, present = positions[:, :width], present[:, :width]  # (K, B_max)
    return client_rows.gather(1, torch.where(present, positions, torch.zeros_like(positions))), present


def own_noise(sums: Sequence[torch.Tensor], noise_std: float, expected_batch: torch.Tensor,
              generators: Sequence[torch.Generator]) -> list[torch.Tensor]:
    """(sum_c + N(0, noise_std^2)) / expected_batch_c for each client c, its noise from its own generator, drawn as
    DPOptimizer draws it (one torch.normal per parameter, in parameter order; none when the std is 0)."""
    noised = []
    for total in sums:  # (K, ...)
        if noise_std == 0:
            noise = torch.zeros_like(total)
        else:
            noise = torch.stack([torch.normal(mean=0, std=noise_std, size=tuple(total.shape[1:]), device=total.device,
                                              generator=generator) for generator in generators])  # (K, ...)
        noised.append((total + noise) / expected_batch.view((-1,) + (1,) * (total.dim() - 1)))
    return noised


class ClientsRound:
    """The K selected clients of one round, their stacked models from one global vector, stepped together."""

    def __init__(self, net: StackedNet, rows: Sequence[np.ndarray], data: ClientData, x_squared: torch.Tensor, *,
                 max_grad_norm: float, noise_multiplier: float, sample_rate: float, options: LocalOptions):
        device, k = data.device, len(rows)
        self.net, self.data, self.sample_rate = net, data, sample_rate
        self.sizes = torch.as_tensor([len(own) for own in rows], dtype=torch.long, device=device)  # (K,)
        width = max(len(own) for own in rows)
        self.client_rows = torch.zeros((k, width), dtype=torch.long, device=device)  # (K, n_max): each client's rows
        for c, own in enumerate(rows):
            self.client_rows[c, :len(own)] = torch.as_tensor(own, dtype=torch.long, device=device)
        self.x_squared = x_squared  # (n,): ||x_i||^2 of every row of data.x
        self.class_weights = (torch.as_tensor(options.class_weights, dtype=torch.float32, device=device)
                              if options.class_weights is not None
                              else torch.ones(net.biases[-1].shape[1], device=device))  # (classes,)
        self.clip = torch.full((k,), max_grad_norm, dtype=torch.float32, device=device)  # (K,)
        self.noise_std = noise_multiplier * max_grad_norm
        self.expected_batch = (sample_rate * self.sizes.double()).float()  # (K,): q x the client's rows
        self.adam = StackedAdam(net.parameters(), torch.full((k,), options.learning_rate, device=device))
        self.everyone = torch.ones(k, dtype=torch.bool, device=device)  # (K,): every client takes every step

    def sample(self, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        return client_samples(self.client_rows, self.sizes, self.sample_rate, generator)

    def step(self, index: torch.Tensor, present: torch.Tensor,
             noise: Sequence[torch.Generator]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """One DP-SGD step of every client on its sample (index, present) (K, B_max); the per-sample norms (K, B_max)
        and the noised gradients (net.parameters() order), for the exactness tests."""
        rows = index.flatten()  # (K B_max,)
        x = self.data.x.index_select(0, rows).view(*index.shape, self.data.x.shape[1])  # (K, B_max, d); B_max may be 0
        y = self.data.y.index_select(0, rows).view(index.shape)  # (K, B_max)
        row_weights = self.class_weights[y] * present  # (K, B_max): class weight, 0 on padding
        sums, norms = clipped_gradients(self.net, x, y, row_weights, self.clip,
                                        self.x_squared.index_select(0, rows).view(index.shape))
        grads = own_noise(sums, self.noise_std, self.expected_batch, noise)
        self.net.set_parameters(self.adam.step(self.net.parameters(), grads, self.everyone))
        return norms, grads


class BatchedClientsTrainer:
    """DPSGDTrainer's mechanism for table models, the selected clients of a round trained as one stacked pass."""

    def __init__(self, model: nn.Module, layout: ParamLayout, *, noise_multiplier: float, max_grad_norm: float,
                 sample_rate: float, steps_per_epoch: int, randomness: PrivacyRandomness):
        """`randomness` (engine.privacy.randomness) draws every Poisson sample and all noise: never the seed."""
        self.layout, self.randomness = layout, randomness
        own = copy.deepcopy(model)
        names = {id(parameter): name for name, parameter in own.named_parameters()}
        # StackedNet.parameters() order (layer by layer, weight then bias) as the layout's names
        self.names = [names[id(tensor)] for layer in linear_layers(own) for tensor in (layer.weight, layer.bias)]
        self.widths = [layer.out_features for layer in linear_layers(own)]  # each layer's outputs
        if sorted(self.names) != sorted(layout.names):
            raise TypeError("The batched clients train stacks of linear layers only.")
        self.noise_multiplier, self.max_grad_norm = noise_multiplier, max_grad_norm
        self.sample_rate, self.steps_per_epoch = sample_rate, steps_per_epoch
        self._squared: tuple[ClientData, torch.Tensor] | None = None  # the rows' squared norms, once per run

    def squared_norms(self, data: ClientData) -> torch.Tensor:
        if self._squared is None or self._squared[0] is not data:
            self._squared = (data, data.x.flatten(1).square().sum(1))  # (n,)
        return self._squared[1]

    def stacked(self, global_vector: np.ndarray, k: int, device: str) -> StackedNet:
        """K copies of the global model."""
        params = self.layout.unflatten(global_vector, device)
        net = StackedNet(weights=[], biases=[])
        net.set_parameters([params[name].unsqueeze(0).repeat(k, *([1] * params[name].dim())) for name in self.names])
        return net

    def start(self, global_vector: np.ndarray, clients: list[int], data: ClientData,
              options: LocalOptions) -> ClientsRound:
        return ClientsRound(self.stacked(global_vector, len(clients), str(data.device)),
                            [data.indices[client] for client in clients], data, self.squared_norms(data),
                            max_grad_norm=self.max_grad_norm,
                            noise_multiplier=self.noise_multiplier, sample_rate=self.sample_rate, options=options)

    def updates(self, training: ClientsRound, global_vector: np.ndarray) -> np.ndarray:
        """(K, dim): each client's new parameters minus the global ones, in the layout's order."""
        return self.layout.flatten_stacked(dict(zip(self.names, training.net.parameters()))) - global_vector[None, :]

    def bytes_per_client(self, clients: list[int], data: ClientData) -> int:
        """A generous estimate of what one client adds to a pass, at the largest client: its sample well above
        q n_max rows, their activations and backprops, and the parameters, gradients, noise and Adam moments
        (float32, x 2 for a step's temporaries), as batched_dp_sgd estimates a configuration."""
        rows = self.sample_rate * max(data.size(client) for client in clients)
        rows += 6 * rows ** 0.5 + 16
        per_row = data.x.shape[1] + 1 + 4 * sum(self.widths)
        return int(2 * 4 * (rows * per_row + 7 * self.layout.dim))

    def clients_per_pass(self, clients: list[int], data: ClientData) -> int:
        """As many clients as MEMORY_SHARE of the device's free memory holds (batched_dp_sgd's rule), at least 1."""
        fits = MEMORY_SHARE * free_bytes(str(data.device)) // self.bytes_per_client(clients, data)
        return max(1, min(MAX_CONFIGS_PER_PASS, int(fits)))

    def train(self, global_vector: np.ndarray, clients: list[int], data: ClientData, options: LocalOptions,
              seed: int, round_index: int) -> np.ndarray:
        if not clients:
            return np.zeros((0, self.layout.dim))
        device = str(data.device)
        sampling = self.randomness.torch_generator(device)  # secret: every client's Poisson samples
        noise = [self.randomness.torch_generator(device) for _ in clients]  # secret: each client its own
        size, updates = self.clients_per_pass(clients, data), []
        for start in range(0, len(clients), size):  # clients are independent: a pass that fits, then the next
            with torch.no_grad():
                training = self.start(global_vector, clients[start:start + size], data, options)
                for _ in range(options.epochs * self.steps_per_epoch):
                    training.step(*training.sample(sampling), noise[start:start + size])
            updates.append(self.updates(training, global_vector))
        return np.concatenate(updates)
