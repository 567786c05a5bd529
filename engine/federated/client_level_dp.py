"""Client-level differential privacy for federated runs (`dp-fedavg`, McMahan et al. 2018): the unit of
privacy is one whole client.

Each round every client joins with probability q = clients_per_round / n_clients (Poisson), clips its
update to L2 norm S, and the server adds N(0, (z S)^2) to the sum and divides by the expected count
q n_clients (fixed denominator). That is a Poisson-subsampled Gaussian mechanism repeated `rounds` times at
the level of whole clients, accounted by engine.privacy (Opacus PRV or RDP), never estimated.
"""

from __future__ import annotations

import math

import numpy as np

from engine.federated.costs import COUNT_BYTES, model_bytes
from engine.federated.strategies import ClientUpdate, Message, StrategyWrapper
from engine.privacy.calibration import calibrated_noise

FEW_CLIENTS = 100  # client-level DP over fewer clients than this gets a warning


class ClientLevelDP(StrategyWrapper):
    """Client-side fixed clipping, Poisson client sampling, Gaussian noise on the sum (server side)."""

    def __init__(self, strategy, *, clip: float, noise_multiplier: float, sample_rate: float, n_clients: int,
                 secret_rng: np.random.Generator):
        """`secret_rng` (engine.privacy.randomness) draws the client sample and the noise: never the run's seed."""
        super().__init__(strategy)
        self.clip, self.noise_multiplier = clip, noise_multiplier
        self.sample_rate, self.n_clients = sample_rate, n_clients
        self.secret_rng = secret_rng
        self.clipped = self.uploads = 0

    def configure_fit(self, round_index, rng):
        return [int(c) for c in np.flatnonzero(self.secret_rng.random(self.n_clients) < self.sample_rate)]

    def client_message(self, update: ClientUpdate, round_index: int) -> Message:
        norm = float(np.linalg.norm(update.delta))
        self.uploads += 1
        self.clipped += int(norm > self.clip)
        clipped = update.delta * min(1.0, self.clip / norm) if norm > 0 else update.delta
        return Message(update.client, clipped, 1.0, model_bytes(update.delta.size) + COUNT_BYTES)

    def message_bound(self) -> float:
        return float(self.n_clients)  # weights are 1; vectors are clipped to S

    def server_update(self, total, total_weight, params, rng):
        """Every round, an aborted or empty one too: the noisy sum over a fixed denominator."""
        noisy = total + self.secret_rng.normal(0.0, self.noise_multiplier * self.clip, size=total.shape)
        return params + noisy / (self.sample_rate * self.n_clients)

    def describe(self) -> dict:
        # The clipped fraction is computed from the raw updates and released without noise: a diagnostic, not covered
        # by epsilon (named so wherever it is shown).
        return {**self.strategy.describe(), "dp": "client-level",
                "clipped_fraction_not_private": self.clipped / max(1, self.uploads)}


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
