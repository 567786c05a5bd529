"""Calibrated noise multipliers computed once, on the sweep's driver, and handed to workers that never open the store.

Today each technique calibrates inside its own `run` through engine.privacy.calibration, asking the run's
NoiseCache first (locally the store is that cache, shared by the sweep's worker processes through SQLite). A
Ray worker must not open the store, and a cluster must not calibrate the same question on every node. So the
driver learns each pending run's calibration question without knowing the technique: it starts the run with a
NoiseCache that records the first key asked and stops the run there (every calibrating technique asks before
it builds a model). It answers each distinct key once (from the store's cache, else PRV/RDP here, in threads, kept in the
store), and the workers get the answers as a plain dict (SharedNoise). A worker that meets a key the driver did
not foresee calibrates it itself and hands the answer back, for the driver to keep.

Only runs with an epsilon and an Opacus accountant are asked (the pure-DP and own-accountant ones calibrate nothing). A technique that
takes an epsilon but calibrates nothing this way is stopped at its first progress report or test scores, and its
other runs are not asked: at worst one of its runs trains here for nothing.
"""

from __future__ import annotations

import json
from typing import Iterable

from engine.config import ACCOUNTANTS, RunConfig
from engine.data import PreparedDataset
from engine.privacy.calibration import calibrated_noises
from engine.techniques import scoring_tap
from engine.techniques.base import RunContext
from engine.techniques.registry import create_technique


QUESTION = ("target_epsilon", "delta", "sample_rate", "steps", "accountant")  # calibrated_noise's arguments


class _Asked(BaseException):
    """Stops a run at its first calibration question (a BaseException: techniques catch Exception)."""


class _FirstQuestion:
    """A NoiseCache that remembers the first key asked and stops the run."""

    def __init__(self) -> None:
        self.key: str | None = None

    def get_noise(self, key: str) -> float | None:
        self.key = key
        raise _Asked

    def put_noise(self, key: str, noise_multiplier: float) -> None:  # never reached
        pass


def _stop(*_args) -> None:  # a technique that trains before (or without) calibrating: stopped when it reports
    raise _Asked


def asks_noise(config: RunConfig) -> bool:
    """Whether a run may calibrate Gaussian noise: an epsilon, accounted by an Opacus accountant."""
    return config.target_epsilon is not None and config.accountant in ACCOUNTANTS


def calibration_question(config: RunConfig, data: PreparedDataset) -> str | None:
    """The calibration key a run asks its NoiseCache first, or None (it asked none before reporting, or failed)."""
    catcher = _FirstQuestion()
    try:
        with scoring_tap.listening(_stop):
            create_technique(config.technique).run(config, data, on_progress=_stop,
                                                   context=RunContext(device="cpu", noise_cache=catcher))
    except _Asked:
        return catcher.key
    except Exception:  # the run fails for real where it trains, and is recorded failed there
        return None
    return None


def calibrate_once(configs: Iterable[RunConfig], data: PreparedDataset, cache) -> dict[str, float]:
    """Each distinct calibration question of `configs`, answered once (from `cache`, else computed and kept there)."""
    questions: set[str] = set()
    silent: set[str] = set()  # techniques whose first run asked nothing: their other runs are not asked
    for config in configs:
        if not asks_noise(config) or config.technique in silent:
            continue
        key = calibration_question(config, data)
        if key is None:
            silent.add(config.technique)
        else:
            questions.add(key)
    keys = sorted(questions)
    asked = [json.loads(key) for key in keys]
    noises = calibrated_noises([{name: question[name] for name in QUESTION} for question in asked], cache)
    # An unreachable epsilon is left to its runs: each calibrates where it trains and is recorded failed.
    return {key: noise for key, noise in zip(keys, noises) if not isinstance(noise, Exception)}


class SharedNoise:
    """The NoiseCache a worker gets: the driver's answers, plus what it had to calibrate itself (`computed`)."""

    def __init__(self, known: dict[str, float]):
        self.known = dict(known)
        self.computed: dict[str, float] = {}

    def get_noise(self, key: str) -> float | None:
        return self.known.get(key, self.computed.get(key))

    def put_noise(self, key: str, noise_multiplier: float) -> None:
        self.computed[key] = noise_multiplier
