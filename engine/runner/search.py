"""Random search: a secretly drawn number of trials, each a configuration drawn from the grid.

Papernot & Steinke (2022): when the number of trials K is random (here Poisson with mean `random_trials`) and
independent of the data, releasing only the best trial costs the tuning-aware epsilon (engine.privacy.tuning)
rather than the composition of every trial. K and the configurations are drawn from secret randomness (never the
seed), and the draw is kept in the store the first time the search trains, so rerunning the same spec resumes
the same search instead of drawing a new one. Non-private runs (baselines) are unaffected.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass

from engine.config import RunConfig, SweepSpec
from engine.privacy.randomness import PrivacyRandomness, SecretRandomness


@dataclass(frozen=True)
class SearchDraw:
    search_id: str
    mean_trials: float
    trials: tuple[RunConfig, ...]  # each a grid configuration with `search` and `trial` set


def search_id(spec: SweepSpec) -> str:
    """The same spec names the same search (so a rerun resumes it)."""
    return hashlib.sha256(json.dumps(spec.to_mapping(), sort_keys=True).encode()).hexdigest()[:12]


def draw_search(spec: SweepSpec, configs: list[RunConfig], *, stored: list[dict] | None = None,
                randomness: PrivacyRandomness | None = None) -> tuple[list[RunConfig], SearchDraw | None]:
    """The grid's non-private runs plus the search's trials (`stored`: a draw kept before, reused as is)."""
    if spec.random_trials is None:
        return configs, None
    identifier = search_id(spec)
    private = [config for config in configs if config.target_epsilon is not None]
    public = [config for config in configs if config.target_epsilon is None]
    if stored is not None:
        trials = tuple(RunConfig.from_dict(values) for values in stored)
    else:
        rng = (randomness or SecretRandomness()).numpy_generator()
        count = int(rng.poisson(spec.random_trials)) if private else 0
        picks = rng.integers(len(private), size=count) if private else []
        trials = tuple(dataclasses.replace(private[int(pick)], search=identifier, trial=index)
                       for index, pick in enumerate(picks))
    return [*public, *trials], SearchDraw(identifier, float(spec.random_trials), trials)
