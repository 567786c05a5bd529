"""Noise calibration with a cache: PRV calibration takes seconds, and a sweep asks the same question
for every clipping norm and seed at one epsilon."""

from __future__ import annotations

import json

import opacus

from engine.privacy.accounting import NOISE_SEARCH, RELATIVE_TOLERANCE, noise_for


def calibration_key(*, target_epsilon: float, delta: float, sample_rate: float, steps: int, accountant: str) -> str:
    return json.dumps({
        "target_epsilon": target_epsilon, "delta": delta, "sample_rate": sample_rate, "steps": steps,
        "accountant": accountant, "tolerance": RELATIVE_TOLERANCE, "opacus": opacus.__version__,
        "search": NOISE_SEARCH,
    }, sort_keys=True)


def calibrated_noise(*, target_epsilon: float, delta: float, sample_rate: float, steps: int, accountant: str,
                     cache=None) -> float:
    """noise_for(...), answered from `cache` (get_noise/put_noise) when it was computed before."""
    key = calibration_key(target_epsilon=target_epsilon, delta=delta, sample_rate=sample_rate, steps=steps,
                          accountant=accountant)
    if cache is not None and (known := cache.get_noise(key)) is not None:
        return known
    noise_multiplier = noise_for(target_epsilon=target_epsilon, delta=delta, sample_rate=sample_rate,
                                 steps=steps, accountant=accountant)
    if cache is not None:
        cache.put_noise(key, noise_multiplier)
    return noise_multiplier
