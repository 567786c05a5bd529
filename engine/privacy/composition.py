"""What a whole search spent: every private run touched the same private data, so choosing the best of them
is covered only by composing all of them. Composed with Google's dp-accounting PLD accountant, each run as
its real mechanism: a Poisson-subsampled Gaussian repeated `steps` times for DP-SGD and its federated kin, the
worst-case privacy loss for its (epsilon, delta) for any other DP release (diffprivlib's models, local DP),
and any privacy a table's preprocessing spent (an uploaded table's DP bounds). A rho-zCDP release (DP synthetic
data) composes by adding rho: all of them together are converted once to (epsilon, delta / 2) by dp-accounting's
RDP accountant and enter the PLD as that (epsilon, delta) release, leaving the other half of delta to the rest.
(Composing each as its own (epsilon, delta) instead would sum their deltas past the target: epsilon = inf.)

At scale: runs of one mechanism (the same noise multiplier and sampling rate) compose as one self-composition
of their summed steps, pure runs of one epsilon as one self-composition of their count, and the result is
cached by that multiset of mechanisms, so a store of a thousand runs composes in a handful of PLD operations.
"""

from __future__ import annotations

import functools
import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterable

from dp_accounting.pld import common, privacy_loss_distribution

from engine.privacy.zcdp import epsilon_for_rho

ACCOUNTANT_NAME = "PLD (Google dp-accounting)"
VALUE_DISCRETIZATION = 1e-3  # pessimistic discretisation: an upper bound on epsilon, tight to ~0.1%


@dataclass(frozen=True)
class Composition:
    """The epsilon of releasing (any function of) all the private runs together, at `delta`."""

    epsilon: float
    delta: float
    n_private: int  # runs composed
    n_non_private: int  # runs without privacy (no guarantee at all: never release them)
    mechanisms: dict[str, int] = field(default_factory=dict)  # mechanism description -> runs
    accountant: str = ACCOUNTANT_NAME

    def __repr__(self) -> str:
        return (f"Composition(epsilon={self.epsilon:.4g}, delta={self.delta:g}, runs={self.n_private}, "
                f"accountant={self.accountant!r})")


def _is_number(value: Any) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def run_mechanism(record: dict[str, Any]) -> tuple[str, tuple] | None:
    """(description, key) of one stored run's mechanism, or None for a non-private run.

    key: ("gaussian", noise multiplier, sampling rate, steps), ("zcdp", rho) or ("dp", epsilon, delta)."""
    if _is_number(rho := record.get("synth_rho")) and _is_number(record.get("epsilon")):
        return "rho-zCDP release (DP synthetic data)", ("zcdp", float(rho))
    noise, rate, steps = record.get("noise_multiplier"), record.get("sample_rate"), record.get("steps")
    if _is_number(noise) and _is_number(rate) and _is_number(steps) and steps:
        # dp-fedavg records the same mechanism over whole clients (privacy_unit "client"); a client-level bound
        # also bounds any one record, so composing it with record-level runs stays valid.
        unit = "client-level, DP-FedAvg" if record.get("privacy_unit") == "client" else "DP-SGD"
        return f"subsampled Gaussian ({unit})", ("gaussian", float(noise), float(rate), int(steps))
    epsilon = record.get("epsilon")
    if not _is_number(epsilon):
        return None
    delta = float(record.get("delta") or 0.0)
    return (f"({'pure ' if delta == 0 else ''}epsilon{', delta' if delta else ''})-DP release",
            ("dp", float(epsilon), delta))


@functools.lru_cache(maxsize=256)
def _composed_epsilon(groups: tuple[tuple, ...], delta: float) -> float:
    """epsilon at `delta` of the mechanisms in `groups`: (("gaussian", sigma, q), total steps) and
    (("dp", epsilon, delta), count) pairs, each group one self-composition, and (("zcdp",), total rho)."""
    total = None
    for key, repeats in groups:
        if key[0] == "zcdp":
            # Every zCDP release at once: rho adds up; converted once, at half of delta.
            loss = privacy_loss_distribution.from_privacy_parameters(
                common.DifferentialPrivacyParameters(epsilon_for_rho(float(repeats), delta / 2), delta / 2),
                value_discretization_interval=VALUE_DISCRETIZATION)
            total = loss if total is None else total.compose(loss)
            continue
        if key[0] == "gaussian":
            _, noise, rate = key
            loss = privacy_loss_distribution.from_gaussian_mechanism(
                noise, sampling_prob=rate, value_discretization_interval=VALUE_DISCRETIZATION)
        else:
            # Any other (epsilon, delta)-DP release: the worst-case loss for those parameters (not a Laplace
            # stand-in, which would understate what a generic pure-epsilon mechanism can leak under composition).
            _, epsilon, run_delta = key
            loss = privacy_loss_distribution.from_privacy_parameters(
                common.DifferentialPrivacyParameters(epsilon, run_delta),
                value_discretization_interval=VALUE_DISCRETIZATION)
        loss = loss.self_compose(int(repeats))
        total = loss if total is None else total.compose(loss)
    return 0.0 if total is None else float(total.get_epsilon_for_delta(delta))


def compose_runs(records: Iterable[dict[str, Any]], delta: float,
                 extra_releases: Iterable[tuple[str, float, float]] = ()) -> Composition:
    """Compose every successful private run in `records` (and `extra_releases`: (description, epsilon, delta) of
    other releases on the same rows, such as a table's DP preprocessing) and report epsilon at `delta`."""
    groups: Counter = Counter()
    mechanisms: Counter = Counter()
    private = non_private = 0
    for record in records:
        if record.get("status") != "ok":
            continue
        mechanism = run_mechanism(record)
        if mechanism is None:
            non_private += 1
            continue
        private += 1
        description, key = mechanism
        mechanisms[description] += 1
        if key[0] == "gaussian":
            groups[key[:3]] += key[3]  # the same (sigma, q): one self-composition of all their steps
        elif key[0] == "zcdp":
            groups[("zcdp",)] += key[1]  # zCDP composes by adding rho
        else:
            groups[key] += 1
    for description, epsilon, release_delta in extra_releases:
        mechanisms[description] += 1
        groups[("dp", float(epsilon), float(release_delta))] += 1
    epsilon = _composed_epsilon(tuple(sorted(groups.items())), float(delta))
    return Composition(epsilon=epsilon, delta=delta, n_private=private, n_non_private=non_private,
                       mechanisms=dict(mechanisms))
