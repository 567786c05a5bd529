"""An independent check of every privacy figure in a store, recomputed from the stored parameters.

For each private run of the subsampled-Gaussian kind (DP-SGD, fed-dp-sgd, dp-fedavg, the DP-SGD-trained
hybrids), Google's dp-accounting PLD accountant recomputes epsilon from (noise multiplier, sampling rate,
steps, delta) through its own DpEvent path; the stored figure (Opacus PRV or RDP) must not lie below it by more
than PRV's numerical error, nor above the run's target. Pure epsilon-DP runs must not exceed their target. The
composed figure of each dataset is recomputed with dp-accounting's accountant over DpEvents, independently of
engine.privacy.composition, and must agree. A table's DP preprocessing (an upload's DP bounds and categories) is
part of every composition on it, in both.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Mapping

from dp_accounting import dp_event
from dp_accounting.pld import common, pld_privacy_accountant, privacy_loss_distribution
from dp_accounting.rdp import rdp_privacy_accountant

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
    preprocessing: dict[str, float] = field(default_factory=dict)  # dataset -> epsilon of its DP preprocessing

    @property
    def ok(self) -> bool:
        return not self.findings


def _event(key: tuple):
    """The DpEvent of a subsampled-Gaussian run ("gaussian", noise, rate, steps)."""
    _, noise, rate, steps = key
    return dp_event.SelfComposedDpEvent(dp_event.PoissonSampledDpEvent(rate, dp_event.GaussianDpEvent(noise)), steps)


def _independent_composition(keys: list[tuple], delta: float) -> float:
    """epsilon at `delta` of these mechanisms: Gaussian runs through dp-accounting's DpEvent path; any other
    (epsilon, delta) release (pure-DP runs, a table's DP preprocessing) as the worst-case loss for its parameters,
    since dp-accounting has no DpEvent for a generic (epsilon, delta) release; zCDP releases (DP synthetic data) by
    their summed rho through dp-accounting's RDP accountant, as one (epsilon, delta / 2) release."""
    accountant = pld_privacy_accountant.PLDAccountant(value_discretization_interval=DISCRETISATION)
    generic, rho = [], 0.0
    for key in keys:
        if key[0] == "gaussian":
            accountant.compose(_event(key))
        elif key[0] == "zcdp":
            rho += key[1]
        else:
            generic.append(key)
    if rho:
        zcdp = rdp_privacy_accountant.RdpAccountant()
        zcdp.compose(dp_event.ZCDpEvent(rho))
        generic.append(("dp", zcdp.get_epsilon(delta / 2), delta / 2))
    loss = accountant._pld  # noqa: SLF001 - the accountant's composed PLD, to compose the generic releases onto
    for _, epsilon, release_delta in generic:
        loss = loss.compose(privacy_loss_distribution.from_privacy_parameters(
            common.DifferentialPrivacyParameters(float(epsilon), float(release_delta)),
            value_discretization_interval=DISCRETISATION))
    return float(loss.get_epsilon_for_delta(delta))


def ledger_epsilon(ledger: Mapping[str, Any], delta: float) -> float:
    """A synthesizer's ledger through dp-accounting's RDP accountant: each measurement a Gaussian (sensitivity 1),
    each exponential-mechanism selection rho = epsilon^2 / 8 zCDP."""
    accountant = rdp_privacy_accountant.RdpAccountant()
    for measurement in ledger["measurements"]:
        accountant.compose(dp_event.GaussianDpEvent(float(measurement["sigma"])))
    for epsilon in ledger["selections"]:
        accountant.compose(dp_event.ZCDpEvent(float(epsilon) ** 2 / 8))
    return float(accountant.get_epsilon(delta))


def independent_epsilon(key: tuple, delta: float) -> float:
    accountant = pld_privacy_accountant.PLDAccountant(value_discretization_interval=DISCRETISATION)
    accountant.compose(_event(key))
    return float(accountant.get_epsilon(delta))


def verify_records(records: list[dict[str, Any]],
                   extra_releases: Mapping[str, list[tuple[str, float, float]]] | None = None) -> Verification:
    """`extra_releases`: per dataset, other DP releases on its rows (description, epsilon, delta), composed too."""
    result = Verification()
    extra_releases = extra_releases or {}
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
        ledger = (record.get("extra") or {}).get("synth_ledger") if isinstance(record.get("extra"), dict) else None
        if ledger is not None:  # dp-synthetic: epsilon recomputed from the zCDP ledger it recorded
            recomputed = ledger_epsilon(ledger, float(record.get("delta") or 0.0))
            if stored < recomputed * (1 - UNDERSTATEMENT_TOLERANCE):
                result.findings.append(Finding(record["run_id"], (
                    f"stored epsilon {stored:.4g} is below {recomputed:.4g}, dp-accounting's RDP composition of its "
                    f"{len(ledger['measurements'])} Gaussian measurements and {len(ledger['selections'])} selections")))
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
        extra = list(extra_releases.get(dataset) or ())
        ours = compose_runs(runs, delta=delta, extra_releases=extra).epsilon
        keys = [run_mechanism(record)[1] for record in runs if run_mechanism(record) is not None]
        independent = _independent_composition([*keys, *(("dp", e, d) for _, e, d in extra)], delta)
        if extra:
            result.preprocessing[dataset] = sum(epsilon for _, epsilon, _ in extra)
        result.compositions[dataset] = (ours, independent)
        if abs(ours - independent) > COMPOSITION_TOLERANCE * max(independent, 1e-9) and ours < independent:
            result.findings.append(Finding(f"dataset {dataset}", (
                f"composed epsilon {ours:.4g} is below dp-accounting's independent {independent:.4g}")))
    return result
