"""An independent check of every privacy figure in a store, recomputed from the stored parameters.

For each private run of the subsampled-Gaussian kind (DP-SGD, fed-dp-sgd, dp-fedavg, the DP-SGD-trained
hybrids), Google's dp-accounting PLD accountant recomputes epsilon from (noise multiplier, sampling rate,
steps, delta) through its own DpEvent path; the stored figure (Opacus PRV or RDP) must not lie below it by more
than PRV's numerical error, nor above the run's target. Pure epsilon-DP runs must not exceed their target. The
composed figure of each dataset is recomputed with dp-accounting's accountant over DpEvents, independently of
engine.privacy.composition, and must agree.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from dp_accounting import dp_event
from dp_accounting.pld import pld_privacy_accountant

from engine.privacy.composition import compose_runs, run_mechanism

UNDERSTATEMENT_TOLERANCE = 0.03  # PRV's error bound is ~1% of epsilon here; 3% flags a real understatement
TARGET_TOLERANCE = 1e-9
COMPOSITION_TOLERANCE = 0.01
DISCRETISATION = 1e-4


@dataclass(frozen=True)
class Finding:
    run_id: str
    message: str


@dataclass
class Verification:
    checked: int = 0
    findings: list[Finding] = field(default_factory=list)
    compositions: dict[str, tuple[float, float]] = field(default_factory=dict)  # dataset -> (ours, independent)

    @property
    def ok(self) -> bool:
        return not self.findings


def _event(key: tuple):
    if key[0] == "gaussian":
        _, noise, rate, steps = key
        return dp_event.SelfComposedDpEvent(dp_event.PoissonSampledDpEvent(rate, dp_event.GaussianDpEvent(noise)), steps)
    _, epsilon, delta = key
    return dp_event.EpsilonDeltaDpEvent(epsilon, delta)


def independent_epsilon(key: tuple, delta: float) -> float:
    accountant = pld_privacy_accountant.PLDAccountant(value_discretization_interval=DISCRETISATION)
    accountant.compose(_event(key))
    return float(accountant.get_epsilon(delta))


def verify_records(records: list[dict[str, Any]]) -> Verification:
    result = Verification()
    by_dataset: dict[str, list[dict]] = defaultdict(list)
    for record in records:
        if record.get("status") != "ok":
            continue
        by_dataset[record.get("dataset")].append(record)
        mechanism = run_mechanism(record)
        if mechanism is None:
            continue
        result.checked += 1
        key, stored, target = mechanism[1], float(record["epsilon"]), record.get("target_epsilon")
        if target is not None and not (isinstance(target, float) and math.isnan(target)) and \
                stored > float(target) * (1 + TARGET_TOLERANCE):
            result.findings.append(Finding(record["run_id"], f"stored epsilon {stored:.4g} exceeds its target {target:g}"))
        if key[0] == "gaussian":
            delta = float(record.get("delta") or 0.0)
            recomputed = independent_epsilon(key, delta)
            if stored < recomputed * (1 - UNDERSTATEMENT_TOLERANCE):
                result.findings.append(Finding(record["run_id"], (
                    f"stored epsilon {stored:.4g} ({record.get('accountant')}) is below dp-accounting's PLD "
                    f"{recomputed:.4g} for noise {key[1]:.4g}, sampling rate {key[2]:.4g}, {key[3]} steps, delta "
                    f"{delta:g}: an understated guarantee")))
    for dataset, runs in by_dataset.items():
        deltas = [float(r.get("delta") or 0.0) for r in runs if run_mechanism(r) is not None]
        if not deltas:
            continue
        delta = max(deltas) or 1e-5
        ours = compose_runs(runs, delta=delta).epsilon
        accountant = pld_privacy_accountant.PLDAccountant(value_discretization_interval=DISCRETISATION)
        for record in runs:
            mechanism = run_mechanism(record)
            if mechanism is not None:
                accountant.compose(_event(mechanism[1]))
        independent = float(accountant.get_epsilon(delta))
        result.compositions[dataset] = (ours, independent)
        if abs(ours - independent) > COMPOSITION_TOLERANCE * max(independent, 1e-9) and ours < independent:
            result.findings.append(Finding(f"dataset {dataset}", (
                f"composed epsilon {ours:.4g} is below dp-accounting's independent {independent:.4g}")))
    return result
