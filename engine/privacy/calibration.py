"""Noise calibration with a cache: PRV calibration takes seconds, and a sweep asks the same question
for every clipping norm and seed at one epsilon."""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Sequence

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


def calibrated_noises(questions: Sequence[dict], cache=None) -> list[float | Exception]:
    """calibrated_noise(**question) for each question, or the error it raised (e.g. no noise reaches its epsilon).

    The questions `cache` does not answer are computed at once in threads, one per usable core: PRV's work is numpy
    that mostly releases the GIL (measured on this 2-core machine with an earlier, slower search: the standard adult
    grid's five epsilons took 8.0 s one after another, 5.9 s on two threads). `cache` (a store: one SQLite
    connection) is read and written from this thread only."""
    keys = [calibration_key(**question) for question in questions]
    answers: dict[str, float | Exception] = {}
    if cache is not None:
        answers = {key: known for key in set(keys) if (known := cache.get_noise(key)) is not None}
    missing = {key: question for key, question in zip(keys, questions) if key not in answers}

    def compute(question: dict) -> float | Exception:
        try:
            return noise_for(**question)
        except Exception as exc:  # handed back: one unreachable epsilon fails its runs only
            return exc

    threads = min(len(missing), len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count())
    if threads > 1:
        with ThreadPoolExecutor(threads, thread_name_prefix="calibration") as pool:
            computed = dict(zip(missing, pool.map(compute, missing.values())))
    else:
        computed = {key: compute(question) for key, question in missing.items()}
    for key, noise in computed.items():
        if cache is not None and not isinstance(noise, Exception):
            cache.put_noise(key, noise)
    answers.update(computed)
    return [answers[key] for key in keys]
