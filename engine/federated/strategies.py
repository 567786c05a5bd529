"""Strategies in the shape of Flower's: a base loop runs the rounds, a strategy picks clients and turns
their updates into the next global model, and aggregation is a pure function.

A round: `configure_fit` picks clients -> they train locally (local.py) -> some drop out -> each
survivor's update becomes a `Message` on the client side (`client_message`) -> the messages travel and
are summed (`aggregate_fit`: in the clear here; SecureAggregation in secure_aggregation/strategy_wrapper.py
sums them without the server seeing any one of them) -> `server_update` turns (sum of vectors, sum of
weights) into parameters.

Privacy and secure aggregation WRAP a strategy (client_level_dp.ClientLevelDP(FedAvg(...)), as Flower's
DifferentialPrivacyClientSideFixedClipping(strategy, ...) does) instead of subclassing it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Callable, Sequence

import numpy as np

from engine.federated.costs import COUNT_BYTES, Traffic, model_bytes
from engine.federated.local import ClientData, LocalOptions


def aggregate(updates: Sequence[np.ndarray], weights: Sequence[float]) -> np.ndarray:
    """Weighted mean of client updates (FedAvg with weights = examples). Pure."""
    weights = np.asarray(weights, dtype=np.float64)
    stacked = np.stack([np.asarray(u, dtype=np.float64) for u in updates])  # (K, dim)
    return aggregate_sum(weights @ stacked, float(weights.sum()))


def aggregate_sum(total: np.ndarray, total_weight: float) -> np.ndarray:
    """The same weighted mean from the sum of weighted updates (all a secure aggregate reveals). Pure."""
    return total / total_weight if total_weight > 0 else np.zeros_like(total)


@dataclass(frozen=True)
class ClientUpdate:
    client: int
    delta: np.ndarray  # (dim,) float64: locally trained minus global parameters
    n_examples: int


@dataclass(frozen=True)
class Message:
    """What one client contributes to the sum: vector (dim,), scalar weight, and its size on the wire."""

    client: int
    vector: np.ndarray
    weight: float
    nbytes: int


class FedAvg:
    """McMahan et al. 2017: K clients per round, uniformly without replacement; mean weighted by examples."""

    def __init__(self, *, n_clients: int, clients_per_round: int, local: LocalOptions, sizes: Sequence[int]):
        self.n_clients, self.clients_per_round, self.local = n_clients, clients_per_round, local
        self.sizes = list(sizes)

    def configure_fit(self, round_index: int, rng: np.random.Generator) -> list[int]:
        if self.clients_per_round >= self.n_clients:
            return list(range(self.n_clients))
        return sorted(int(c) for c in rng.choice(self.n_clients, size=self.clients_per_round, replace=False))

    def local_options(self) -> LocalOptions:
        return self.local

    def client_message(self, update: ClientUpdate, round_index: int) -> Message:
        weight = float(update.n_examples)
        return Message(update.client, weight * update.delta, weight, model_bytes(update.delta.size) + COUNT_BYTES)

    def message_bound(self) -> float:
        """A public bound on |sum of message vectors| per coordinate over all clients, before clamping."""
        return float(sum(self.sizes))

    def aggregate_fit(self, round_index: int, messages: list[Message], dropped: list[int], params: np.ndarray,
                      traffic: Traffic, rng: np.random.Generator) -> np.ndarray:
        """Plain transport: every message reaches the server as sent, and is summed there."""
        for message in messages:
            traffic.send_up(round_index, message.client, message.nbytes)
        if not messages:
            return self.server_update(np.zeros_like(params), 0.0, params, rng)
        total = np.sum([m.vector for m in messages], axis=0)
        return self.server_update(total, float(sum(m.weight for m in messages)), params, rng)

    def server_update(self, total: np.ndarray, total_weight: float, params: np.ndarray,
                      rng: np.random.Generator) -> np.ndarray:
        return params + aggregate_sum(total, total_weight)

    def describe(self) -> dict:
        return {"strategy": "fedavg"}


class FedProx(FedAvg):
    """Li et al. 2020: FedAvg whose clients add mu/2 ||w - w_global||^2 to their loss (heterogeneous silos)."""

    def __init__(self, *, mu: float, **kwargs):
        super().__init__(**kwargs)
        self.local = replace(self.local, mu=mu)

    def describe(self) -> dict:
        return {"strategy": "fedprox", "mu": self.local.mu}


class StrategyWrapper:
    """Delegates everything to the wrapped strategy; wrappers override what they change."""

    def __init__(self, strategy):
        self.strategy = strategy

    def configure_fit(self, round_index, rng):
        return self.strategy.configure_fit(round_index, rng)

    def local_options(self):
        return self.strategy.local_options()

    def client_message(self, update, round_index):
        return self.strategy.client_message(update, round_index)

    def message_bound(self):
        return self.strategy.message_bound()

    def aggregate_fit(self, round_index, messages, dropped, params, traffic, rng):
        # The transport of the wrapped strategy, but the server update of this (outer) one.
        for message in messages:
            traffic.send_up(round_index, message.client, message.nbytes)
        total = np.sum([m.vector for m in messages], axis=0) if messages else np.zeros_like(params)
        return self.server_update(total, float(sum(m.weight for m in messages)), params, rng)

    def server_update(self, total, total_weight, params, rng):
        return self.strategy.server_update(total, total_weight, params, rng)

    def describe(self) -> dict:
        return self.strategy.describe()


@dataclass
class FederatedHistory:
    params: np.ndarray  # final global parameters (dim,)
    traffic: Traffic
    participation: np.ndarray  # (n_clients,) rounds in which each client trained
    selected_per_round: list[int] = field(default_factory=list)
    survivors_per_round: list[int] = field(default_factory=list)
    round_metrics: list[float] = field(default_factory=list)


def run_rounds(strategy, trainer, data: ClientData, *, params: np.ndarray, rounds: int, seed: int,
               dropout: float = 0.0, on_round: Callable[[int, np.ndarray], float | None] | None = None
               ) -> FederatedHistory:
    """The base loop. `dropout`: each selected client fails after training (before its upload) with this chance."""
    select_rng = np.random.default_rng([seed, 0x5E1EC7])
    drop_rng = np.random.default_rng([seed, 0xD409])
    server_rng = np.random.default_rng([seed, 0x5E4FE4])
    traffic = Traffic()
    history = FederatedHistory(params=params, traffic=traffic, participation=np.zeros(len(data.indices), dtype=int))
    for round_index in range(rounds):
        clients = strategy.configure_fit(round_index, select_rng)
        for client in clients:
            traffic.send_down(round_index, client, model_bytes(params.size))
        updates = (trainer.train(params, clients, data, strategy.local_options(), seed, round_index)
                   if clients else np.zeros((0, params.size)))  # (K, dim)
        history.participation[clients] += 1
        drops = drop_rng.random(len(clients)) < dropout
        dropped = [c for c, gone in zip(clients, drops) if gone]
        messages = [strategy.client_message(ClientUpdate(c, updates[i], data.size(c)), round_index)
                    for i, c in enumerate(clients) if not drops[i]]
        params = strategy.aggregate_fit(round_index, messages, dropped, params, traffic, server_rng)
        history.selected_per_round.append(len(clients))
        history.survivors_per_round.append(len(messages))
        if on_round is not None:
            metric = on_round(round_index, params)
            if metric is not None:
                history.round_metrics.append(metric)
    history.params = params
    return history
