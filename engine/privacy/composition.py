"""What a whole sweep spent: every private run touched the same private data, so choosing the best of them
is covered only by composing all of them. Composed with Google's dp-accounting PLD accountant, each run as
its real mechanism (a Poisson-subsampled Gaussian repeated `steps` times for DP-SGD; the worst case
privacy loss for a given epsilon for pure epsilon-DP mechanisms)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterable

from dp_accounting.pld import common, privacy_loss_distribution

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


def run_privacy_loss(record: dict[str, Any]):
    """The privacy loss distribution of one stored run, or None for a non-private run."""
    noise, rate, steps = record.get("noise_multiplier"), record.get("sample_rate"), record.get("steps")
    if noise is not None and rate is not None and steps:
        # DP-SGD: `steps` Poisson-subsampled Gaussian steps (the mechanism Opacus accounts for).
        step = privacy_loss_distribution.from_gaussian_mechanism(
            float(noise), sampling_prob=float(rate), value_discretization_interval=VALUE_DISCRETIZATION)
        # dp-fedavg records the same mechanism over whole clients (privacy_unit "client"); a client-level bound
        # also bounds any one record, so composing it with record-level runs stays valid.
        unit = "client-level, DP-FedAvg" if record.get("privacy_unit") == "client" else "DP-SGD"
        return step.self_compose(int(steps)), f"subsampled Gaussian ({unit})"
    epsilon = record.get("epsilon")
    if epsilon is None or (isinstance(epsilon, float) and math.isnan(epsilon)):
        return None, "none"
    delta = float(record.get("delta") or 0.0)
    # Any other (epsilon, delta)-DP release: the worst-case loss for those parameters (not a Laplace stand-in,
    # which would understate what a generic pure-epsilon mechanism can leak under composition).
    parameters = common.DifferentialPrivacyParameters(float(epsilon), delta)
    loss = privacy_loss_distribution.from_privacy_parameters(parameters, value_discretization_interval=VALUE_DISCRETIZATION)
    return loss, f"({'pure ' if delta == 0 else ''}epsilon{', delta' if delta else ''})-DP release"


def compose_runs(records: Iterable[dict[str, Any]], delta: float) -> Composition:
    """Compose every successful private run in `records` and report epsilon at `delta`."""
    total, mechanisms, private, non_private = None, {}, 0, 0
    for record in records:
        if record.get("status") != "ok":
            continue
        loss, mechanism = run_privacy_loss(record)
        if loss is None:
            non_private += 1
            continue
        private += 1
        mechanisms[mechanism] = mechanisms.get(mechanism, 0) + 1
        total = loss if total is None else total.compose(loss)
    epsilon = 0.0 if total is None else float(total.get_epsilon_for_delta(delta))
    return Composition(epsilon=epsilon, delta=delta, n_private=private, n_non_private=non_private,
                       mechanisms=mechanisms)
