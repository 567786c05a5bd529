"""The tuning-aware figure: what releasing the best of a random search costs (Papernot & Steinke 2022,
"Hyperparameter tuning with Renyi differential privacy").

When the number of trials K is drawn at random (Poisson with mean mu) and every trial is a DP mechanism,
releasing only the best trial costs far less than composing all of them. Each trial here trains a configuration
drawn uniformly from its target epsilon's grid (engine.runner.search makes one search per target epsilon): a
mixture of those mechanisms, whose Renyi divergence at each order is at most the largest of theirs (joint
convexity), so the trial's RDP curve is the pointwise maximum of their curves. The caller passes the records of
one search (one target epsilon's trials; engine.analysis.decide), so a figure never mixes in larger budgets. dp-accounting's repeat-and-select transform turns it into the search's RDP, and its RDP-to-(eps, delta)
conversion gives the figure. A run's curve: the Poisson-subsampled Gaussian repeated `steps` times (dp-accounting
RDP), or, for a pure epsilon-DP release, min(epsilon, alpha epsilon^2 / 2) (pure DP implies (epsilon^2 / 2)-zCDP,
Bun & Steinke 2016, and D_alpha <= D_inf = epsilon).
"""

from __future__ import annotations

import math
from typing import Any, Iterable

import numpy as np
from dp_accounting import dp_event
from dp_accounting.rdp import rdp_privacy_accountant as rdp

from engine.privacy.composition import run_mechanism

ACCOUNTANT_NAME = "RDP repeat-and-select (Papernot & Steinke 2022, Google dp-accounting)"
POISSON_SHAPE = math.inf  # dp-accounting's shape for a Poisson number of trials
ORDERS = tuple([1 + x / 10.0 for x in range(1, 100)] + list(range(11, 64)) + list(range(64, 257, 8)))


def trial_rdp(record: dict[str, Any], orders=ORDERS) -> np.ndarray | None:
    """(len(orders),) RDP curve of one stored run's mechanism, or None for a non-private run."""
    mechanism = run_mechanism(record)
    if mechanism is None:
        return None
    key = mechanism[1]
    if key[0] == "gaussian":
        _, noise, rate, steps = key
        accountant = rdp.RdpAccountant(list(orders))
        accountant.compose(dp_event.PoissonSampledDpEvent(rate, dp_event.GaussianDpEvent(noise)), steps)
        return np.asarray(accountant._rdp, dtype=float)  # noqa: SLF001 - the curve behind get_epsilon
    if key[0] == "zcdp":
        return np.asarray(orders, dtype=float) * key[1]  # rho-zCDP: RDP of order alpha is alpha * rho
    _, epsilon, delta = key
    if delta > 0:
        return None  # an approximate-DP release has no RDP curve to offer: it cannot enter this figure
    return np.minimum(epsilon, np.asarray(orders) * epsilon ** 2 / 2)


def tuning_aware_epsilon(records: Iterable[dict[str, Any]], *, mean_trials: float, delta: float,
                         orders=ORDERS) -> float | None:
    """epsilon at `delta` of releasing the best of a Poisson(mean_trials) number of trials drawn from `records`'
    configurations; None when a private run of them has no RDP curve (an approximate-DP release)."""
    curves = []
    for record in records:
        if record.get("status") != "ok" or run_mechanism(record) is None:
            continue
        curve = trial_rdp(record, orders)
        if curve is None:
            return None
        curves.append(curve)
    if not curves:
        return 0.0
    worst = np.max(np.stack(curves), axis=0)  # (orders,) the mixture's curve is below the pointwise maximum
    searched = rdp._compute_rdp_repeat_and_select(list(orders), worst, mean_trials, POISSON_SHAPE)  # noqa: SLF001
    epsilon, _ = rdp.compute_epsilon(list(orders), searched, delta)
    return float(epsilon)
