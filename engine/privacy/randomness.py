"""Secret randomness for every privacy-relevant draw: DP noise, Poisson sampling, local randomisation,
diffprivlib's mechanisms, client sampling.

A guarantee holds only against someone who cannot replay the draws behind it. Every record and export holds
the run's `seed`, so nothing privacy-relevant may come from it: each draw here is seeded from the operating
system's entropy (`secrets`), fresh for every generator, and never recorded. The seed keeps what is not
privacy-relevant (model initialisation, the simulated federated partition, the replicate index).

`SecretRandomness` is the only source the product uses (RunContext's default). `ReplayableRandomness` exists
for tests that must compare against a reference bit for bit (it makes the guarantee void, so the runner never
constructs it).

What this does not defend against: the generators are Mersenne Twister / Philox seeded with 128 (numpy) or 64
(torch) secret bits, not a CSPRNG per draw, and the Gaussian samples are ordinary floating-point samples, so
the floating-point attacks on naive noise sampling (Mironov 2012) that Opacus' `secure_mode` (torchcsprng,
not installable with torch 2.13) partly addresses are not addressed here; nor are timing side channels.
"""

from __future__ import annotations

import secrets
from typing import Protocol

import numpy as np
import torch


class PrivacyRandomness(Protocol):
    """Where a technique gets the generators for its privacy-relevant draws."""

    def torch_generator(self, device: str = "cpu") -> torch.Generator: ...

    def numpy_generator(self) -> np.random.Generator: ...

    def random_state(self) -> np.random.RandomState: ...


class SecretRandomness:
    """Every generator seeded afresh from the operating system's entropy; nothing about it is recorded."""

    def torch_generator(self, device: str = "cpu") -> torch.Generator:
        return torch.Generator(device=device).manual_seed(secrets.randbits(64))

    def numpy_generator(self) -> np.random.Generator:
        return np.random.default_rng(secrets.randbits(128))

    def random_state(self) -> np.random.RandomState:
        """For diffprivlib, which takes a RandomState: a Mersenne Twister seeded with 128 secret bits."""
        return np.random.RandomState(np.random.MT19937(np.random.SeedSequence(secrets.randbits(128))))


class ReplayableRandomness:
    """Tests only: generators derived from `seed`, so two runs draw the same noise. Voids every guarantee."""

    def __init__(self, seed: int):
        self.seed = seed
        self._calls = 0

    def _next(self) -> int:
        self._calls += 1
        return self.seed * 1_000_003 + self._calls

    def torch_generator(self, device: str = "cpu") -> torch.Generator:
        return torch.Generator(device=device).manual_seed(self._next())

    def numpy_generator(self) -> np.random.Generator:
        return np.random.default_rng(self._next())

    def random_state(self) -> np.random.RandomState:
        return np.random.RandomState(self._next() % 2**32)
