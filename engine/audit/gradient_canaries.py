"""White-box canaries for DP-SGD: Dirac gradients inserted into Opacus' clipped sum (Steinke et al. 2023, §6).

Each of m canaries is a record whose clipped gradient is C times a unit vector on its own coordinate of the
parameter vector (a Dirac canary), included in the run with probability 1/2. Like every record under Poisson
sampling it joins each step's batch with the run's sample rate q, independently and secretly. Its gradient is
added to Opacus' clipped sum before the noise, which is the strongest record DP-SGD's guarantee must cover: a
gradient of norm C in any direction.

What the auditor observes is each step's released noisy sum minus the clipped sum of the real batch. DP-SGD's
analysis (the subsampled Gaussian mechanism) holds even for an adversary who knows every other record's
contribution, so this white-box view is within the threat model, and it leaves only what the guarantee is
about: canary i's coordinate reads b_t + z_t, b_t ~ Bernoulli(q) when it is included, z_t ~ N(0, sigma^2) (in
units of C). The score is the log-likelihood ratio of "included" over the steps,
sum_t log(1 - q + q exp((x_t - 1/2) / sigma^2)), the optimal test for that mixture (Neyman-Pearson), computed
with the optimizer's own noise multiplier. This tests the noise actually added and the accountant at the claimed
sample rate; the black-box audit tests the whole pipeline, the data loader's sampling included.
"""

from __future__ import annotations

import numpy as np
import torch

from engine.errors import ConfigError


class GradientCanaries:
    """Attach to a DPOptimizer (RunContext.dp_optimizer_hook); `scores` then holds each canary's statistic."""

    def __init__(self, m: int, *, sample_rate: float, rng: np.random.Generator):
        self.m = m
        self.sample_rate = sample_rate
        self.included = rng.random(m) < 0.5  # the secret coins: which canaries are in this run
        self._rng = rng
        self.scores = np.zeros(m)  # (m,) log-likelihood ratio of "included"
        self.steps = 0
        self.attached = False

    def __call__(self, optimizer) -> None:
        """The hook: wrap the optimizer's add_noise so each step inserts sampled canaries and reads them back."""
        params = [p for p in optimizer.params if p.requires_grad]
        sizes = [p.numel() for p in params]
        if self.m > sum(sizes):
            raise ConfigError(f"{self.m} gradient canaries need as many model parameters; this model has {sum(sizes)}: "
                              "use fewer --canaries.")
        flat = self._rng.choice(sum(sizes), self.m, replace=False)  # (m,) a coordinate of its own per canary
        owner = np.searchsorted(np.cumsum(sizes), flat, side="right")  # which parameter tensor holds it
        offsets = flat - np.concatenate([[0], np.cumsum(sizes)])[owner]
        where = [(index, torch.as_tensor(offsets[owner == index]), np.flatnonzero(owner == index))
                 for index in range(len(params)) if np.any(owner == index)]
        add_noise = optimizer.add_noise
        clip = optimizer.max_grad_norm

        def add_noise_with_canaries():
            sampled = self.included & (self._rng.random(self.m) < self.sample_rate)  # Poisson, like every record
            known = {}
            for index, coordinates, canaries in where:
                summed = params[index].summed_grad.view(-1)
                known[index] = summed[coordinates].clone()  # the real batch's clipped sum there
                summed[coordinates] += clip * torch.as_tensor(sampled[canaries], dtype=summed.dtype,
                                                              device=summed.device)
            add_noise()  # Opacus' own noise on the sum, real rows and canaries together
            observed = np.empty(self.m)
            for index, coordinates, canaries in where:
                released = params[index].grad.view(-1)[coordinates] - known[index]
                observed[canaries] = (released / clip).detach().cpu().numpy()
            self._update(observed, optimizer.noise_multiplier)

        optimizer.add_noise = add_noise_with_canaries
        self.attached = True

    def _update(self, observed: np.ndarray, noise_multiplier: float) -> None:
        variance = max(noise_multiplier, 1e-3) ** 2  # a (broken) sigma of 0 still gives a finite score
        q = self.sample_rate
        self.scores += np.logaddexp(np.log1p(-q), np.log(q) + (observed - 0.5) / variance)
        self.steps += 1
