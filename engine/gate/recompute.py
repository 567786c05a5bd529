"""Every privacy figure the gate checks, recomputed from the recorded mechanisms with Google's dp-accounting
through its DpEvent path, independently of the engine's own accounting (Opacus for a run, engine.privacy for
the composition and the tuning-aware figure): the gate never trusts a stored epsilon.

- A run of the subsampled-Gaussian kind: PLD over (noise multiplier, sampling rate, steps) at the asked delta.
- A rho-zCDP release (DP synthetic data): dp-accounting's RDP accountant over a ZCDpEvent; in a composition every
  zCDP release adds its rho, converted once at half of delta and composed as that (epsilon, delta) release.
- A pure or approximate (epsilon, delta)-DP release (diffprivlib's models, a table's DP preprocessing): its
  recorded epsilon is the mechanism's parameter; it composes as the worst-case loss for those parameters.
- The tuning-aware figure: RDP repeat-and-select (a Poisson number of trials) of each trial mechanism; the
  search's figure is at least the largest of them, equal when every trial shares one mechanism.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any, Iterable

from dp_accounting import dp_event
from dp_accounting.pld import common, pld_privacy_accountant, privacy_loss_distribution
from dp_accounting.rdp import rdp_privacy_accountant

DISCRETISATION = 1e-3  # PLD value grid: pessimistic (an upper bound, ~0.1% of epsilon here); 1e-4 took 13 s for 20 mechanisms


@dataclass(frozen=True)
class Recomputed:
    """Figures at the policy's delta (None: nothing to recompute, e.g. a non-private run)."""

    run_epsilon: float | None  # the chosen run's mechanism
    composed_epsilon: float | None  # every private release on the data
    tuning_epsilon: float | None  # releasing the best trial of its random search (None: no search, or not RDP)
    delta: float


def _gaussian(item: dict[str, Any]) -> dp_event.DpEvent:
    return dp_event.SelfComposedDpEvent(dp_event.PoissonSampledDpEvent(
        float(item["sampling_rate"]), dp_event.GaussianDpEvent(float(item["noise_multiplier"]))), int(item["steps"]))


def _release_key(item: dict[str, Any]) -> tuple:
    if item["kind"] == "zcdp":
        return ("zcdp", float(item["rho"]))
    if item["kind"] == "subsampled_gaussian":
        return ("gaussian", float(item["noise_multiplier"]), float(item["sampling_rate"]), int(item["steps"]))
    return ("dp", float(item["epsilon"]), float(item["delta"]), int(item.get("count", 1)))


@functools.lru_cache(maxsize=64)
def _composed_loss(keys: tuple[tuple, ...]):
    """The composed privacy loss distribution of these releases (cached: one gate asks it at several deltas)."""
    accountant = pld_privacy_accountant.PLDAccountant(value_discretization_interval=DISCRETISATION)
    for key in keys:
        if key[0] == "gaussian":
            _, noise, rate, steps = key
            accountant.compose(dp_event.SelfComposedDpEvent(
                dp_event.PoissonSampledDpEvent(rate, dp_event.GaussianDpEvent(noise)), steps))
    loss = accountant._pld  # noqa: SLF001 - the composed PLD, to compose the generic (epsilon, delta) releases onto
    for key in keys:
        if key[0] == "zcdp":
            continue  # composed at the asked delta (composed_epsilon)
        if key[0] == "dp":
            # No DpEvent exists for a generic (epsilon, delta) release: its worst-case privacy loss distribution.
            _, epsilon, delta, count = key
            release = privacy_loss_distribution.from_privacy_parameters(
                common.DifferentialPrivacyParameters(epsilon, delta), value_discretization_interval=DISCRETISATION)
            loss = loss.compose(release.self_compose(count) if count > 1 else release)
    return loss


def composed_epsilon(releases: Iterable[dict[str, Any]], delta: float) -> float:
    """epsilon at `delta` of composing `releases` (the record's mechanisms: Gaussian groups, (epsilon, delta)s)."""
    keys = tuple(sorted(_release_key(item) for item in releases))
    loss, rho = _composed_loss(keys), sum(key[1] for key in keys if key[0] == "zcdp")
    if rho:
        loss = loss.compose(privacy_loss_distribution.from_privacy_parameters(
            common.DifferentialPrivacyParameters(_zcdp_epsilon(rho, delta / 2), delta / 2),
            value_discretization_interval=DISCRETISATION))
    return float(loss.get_epsilon_for_delta(delta))


def _zcdp_epsilon(rho: float, delta: float) -> float:
    accountant = rdp_privacy_accountant.RdpAccountant()
    accountant.compose(dp_event.ZCDpEvent(rho))
    return float(accountant.get_epsilon(delta))


def run_epsilon(mechanism: dict[str, Any] | None, delta: float) -> float | None:
    if mechanism is None:
        return None
    if mechanism["kind"] == "subsampled_gaussian":
        return composed_epsilon([mechanism], delta)
    if mechanism["kind"] == "zcdp":
        return _zcdp_epsilon(float(mechanism["rho"]), delta)
    # A pure epsilon-DP run is (epsilon, 0)-DP at every delta; an approximate one only at deltas >= its own.
    return float(mechanism["epsilon"]) if float(mechanism["delta"]) <= delta else math.inf


def tuning_epsilon(tuning: dict[str, Any] | None, delta: float) -> float | None:
    """RDP repeat-and-select of each trial mechanism (Poisson(mean) trials); the largest, plus the table's DP
    preprocessing (basic composition). None where a trial has no DpEvent (a generic epsilon-DP release)."""
    if not tuning or not tuning.get("mean_trials") or not tuning.get("trial_mechanisms"):
        return None
    search_delta = delta - (float(tuning.get("preprocessing_delta") or 0.0))
    figures = []
    for item in tuning["trial_mechanisms"]:
        if item["kind"] != "subsampled_gaussian":
            return None
        accountant = rdp_privacy_accountant.RdpAccountant()
        accountant.compose(dp_event.RepeatAndSelectDpEvent(_gaussian(item), float(tuning["mean_trials"]), math.inf))
        figures.append(float(accountant.get_epsilon(search_delta)))
    return max(figures) + float(tuning.get("preprocessing_epsilon") or 0.0)


def recompute(record: dict[str, Any], delta: float) -> Recomputed:
    """The figures of a decision record at `delta`, from its recorded mechanisms only."""
    privacy = record["privacy"]
    if not privacy.get("private"):
        return Recomputed(None, None, None, delta)
    composed = privacy.get("composed") or {}
    releases = composed.get("releases") or [dict(privacy["mechanism"], runs=1)]
    return Recomputed(run_epsilon=run_epsilon(privacy["mechanism"], delta),
                      composed_epsilon=composed_epsilon(releases, delta),
                      tuning_epsilon=tuning_epsilon(privacy.get("tuning_aware"), delta), delta=delta)
