"""Random search, one per target epsilon: a secretly drawn number of trials, each a configuration drawn from that
epsilon's grid.

Papernot & Steinke (2022): when the number of trials K is random (here Poisson with mean `random_trials`) and
independent of the data, releasing only the best trial costs the tuning-aware epsilon (engine.privacy.tuning)
rather than the composition of every trial. The search is made per target epsilon: each epsilon of the spec gets
its own K, drawn independently, and its trials pick uniformly among the private configurations at that epsilon
(learning rate, batch size, epochs, clipping norm, technique options, seed), so the model released at epsilon e
was selected among trials at e only and costs e's tuning-aware figure, never one mixed with larger budgets. Each
per-epsilon search has its own id (`per_epsilon_id`), written in its trials' `search` field: it is what the
Decide page chooses within. K and the configurations are drawn from secret randomness (never the seed), and the
whole draw is kept in the store (under the spec's `search_id`) the first time the search trains, so rerunning the
same spec resumes the same searches instead of drawing new ones. Non-private runs (baselines) are unaffected.
Draws kept before searches were per epsilon (one search over every epsilon) are reused as they are.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass

from engine.config import RunConfig, SweepSpec
from engine.privacy.randomness import PrivacyRandomness, SecretRandomness

EPSILON_MARK = "@eps="  # per-epsilon search id: "<the spec's search id>@eps=<target epsilon>"


@dataclass(frozen=True)
class SearchDraw:
    search_id: str  # the spec's: the store keeps the whole draw under it
    mean_trials: float  # per target epsilon
    trials: tuple[RunConfig, ...]  # each a grid configuration with `search` (its per-epsilon search) and `trial` set


def search_id(spec: SweepSpec) -> str:
    """The same spec names the same search (so a rerun resumes it)."""
    return hashlib.sha256(json.dumps(spec.to_mapping(), sort_keys=True).encode()).hexdigest()[:12]


def per_epsilon_id(identifier: str, epsilon: float) -> str:
    """The id of the search at one target epsilon within the spec's search `identifier`."""
    return f"{identifier}{EPSILON_MARK}{float(epsilon)!r}"


def search_epsilon(identifier: str) -> float | None:
    """The target epsilon a per-epsilon search id names; None for a search over every epsilon (kept before)."""
    _, mark, epsilon = identifier.partition(EPSILON_MARK)
    return float(epsilon) if mark else None


def draw_search(spec: SweepSpec, configs: list[RunConfig], *, stored: list[dict] | None = None,
                randomness: PrivacyRandomness | None = None) -> tuple[list[RunConfig], SearchDraw | None]:
    """The grid's non-private runs plus the searches' trials (`stored`: a draw kept before, reused as is)."""
    if spec.random_trials is None:
        return configs, None
    identifier = search_id(spec)
    public = [config for config in configs if config.target_epsilon is None]
    by_epsilon: dict[float, list[RunConfig]] = {}
    for config in configs:
        if config.target_epsilon is not None:
            by_epsilon.setdefault(config.target_epsilon, []).append(config)
    if stored is not None:
        trials = tuple(RunConfig.from_dict(values) for values in stored)
    else:
        rng = (randomness or SecretRandomness()).numpy_generator()
        drawn = []
        for epsilon, private in by_epsilon.items():  # each epsilon its own K, drawn independently
            count = int(rng.poisson(spec.random_trials))
            picks = rng.integers(len(private), size=count)
            drawn += [dataclasses.replace(private[int(pick)], search=per_epsilon_id(identifier, epsilon), trial=index)
                      for index, pick in enumerate(picks)]
        trials = tuple(drawn)
    return [*public, *trials], SearchDraw(identifier, float(spec.random_trials), trials)


def search_scopes(draws: dict[str, tuple[float, list[dict]]]) -> dict[str, float]:
    """Every search one can choose within, id -> mean number of trials, from the store's draws
    (`draws`: the spec's search id -> (mean trials, the trials' RunConfig dicts)): a per-epsilon search for each
    epsilon a draw has trials at, or the draw itself where it was made before searches were per epsilon."""
    scopes: dict[str, float] = {}
    for identifier, (mean, trials) in draws.items():
        named = {values.get("search") for values in trials} - {None}
        for name in sorted(named or {identifier}):
            scopes[name] = mean
    return scopes
