"""One function per rule of a gate policy. Each answers pass, fail or skip with one line: what was found, and
for a failure how to fix it. Privacy figures come from engine.gate.recompute (dp-accounting), never from the
stored numbers, which are only compared against them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

from packaging.specifiers import SpecifierSet
from packaging.version import InvalidVersion, Version

from engine.config import ACCOUNTANTS
from engine.gate.policy import GatePolicy
from engine.gate.recompute import Recomputed, run_epsilon

SECRET_NOISE_SINCE = Version("0.2.0")  # engine 0.2.0 drew every privacy-relevant sample from secret randomness
PASS, FAIL, SKIP = "pass", "fail", "skip"


@dataclass(frozen=True)
class RuleResult:
    rule: str
    status: str  # pass, fail or skip
    line: str  # one line: what was found (and, on a failure, how to fix it)


@dataclass(frozen=True)
class Evidence:
    """What the rules read: the decision record, its figures recomputed at the policy's delta, the training table
    rescanned (column -> why it looks like an identifier) and, for a filed record, whether its hash holds."""

    record: dict[str, Any]
    recomputed: Recomputed
    identifiers: dict[str, str]
    hash_holds: bool | None = None  # None: not a filed record (built from the store)

    @property
    def run_id(self) -> str:
        return self.record["run_id"]

    @property
    def private(self) -> bool:
        return bool(self.record["privacy"].get("private"))


Rule = Callable[[GatePolicy, Evidence], RuleResult]


def _no_guarantee(rule: str) -> RuleResult:
    return RuleResult(rule, SKIP, "no privacy guarantee to check (see the private rule)")


def record_hash(policy: GatePolicy, evidence: Evidence) -> RuleResult:
    if evidence.hash_holds is None:
        return RuleResult("record-hash", SKIP, "checked from the store, not from a filed record")
    if evidence.hash_holds:
        return RuleResult("record-hash", PASS, f"content hash {evidence.record.get('content_hash')} holds")
    return RuleResult("record-hash", FAIL, "the record's content differs from its content_hash (edited after export): "
                      "file the record exactly as `frontier export` wrote it, or export it again")


def private(policy: GatePolicy, evidence: Evidence) -> RuleResult:
    if evidence.private:
        return RuleResult("private", PASS, f"run {evidence.run_id} is differentially private ({evidence.record['technique']})")
    if not policy.require_private:
        return RuleResult("private", SKIP, "the policy allows a non-private run")
    return RuleResult("private", FAIL, f"run {evidence.run_id} ({evidence.record['technique']}) has no privacy guarantee: "
                      "deploy a private run (dp-sgd, dp-logreg, ...) chosen on the Decide page")


def secret_noise(policy: GatePolicy, evidence: Evidence) -> RuleResult:
    if not evidence.private:
        return _no_guarantee("secret-noise")
    if not policy.require_secret_noise:
        return RuleResult("secret-noise", SKIP, "the policy does not require secret noise")
    engine = str((evidence.record.get("versions") or {}).get("engine", "unknown"))
    try:
        secret = Version(engine) >= SECRET_NOISE_SINCE
    except InvalidVersion:
        secret = False
    if secret:
        return RuleResult("secret-noise", PASS, f"engine {engine} draws noise and sampling from secret randomness")
    return RuleResult("secret-noise", FAIL, f"run {evidence.run_id} was trained by engine {engine}, which drew noise from "
                      f"the recorded seed (replayable): retrain it with engine >= {SECRET_NOISE_SINCE}")


def max_epsilon(policy: GatePolicy, evidence: Evidence) -> RuleResult:
    if not evidence.private:
        return _no_guarantee("max-epsilon")
    if policy.max_epsilon is None:
        return RuleResult("max-epsilon", SKIP, "no max_epsilon in the policy")
    epsilon = evidence.recomputed.run_epsilon
    said = f"epsilon {epsilon:.4g} at delta {policy.delta:g} (recomputed with dp-accounting)"
    if epsilon <= policy.max_epsilon:
        return RuleResult("max-epsilon", PASS, f"{said} <= {policy.max_epsilon:g}")
    return RuleResult("max-epsilon", FAIL, f"run {evidence.run_id}'s {said} exceeds max_epsilon {policy.max_epsilon:g}: "
                      "choose a run with a smaller epsilon")


def stored_epsilon(policy: GatePolicy, evidence: Evidence) -> RuleResult:
    """The stored epsilon against dp-accounting's figure at the run's own delta, and against its target."""
    if not evidence.private:
        return _no_guarantee("stored-epsilon")
    privacy = evidence.record["privacy"]
    stored, target = privacy.get("epsilon"), privacy.get("target_epsilon")
    own_delta = float(privacy.get("delta") or 0.0)
    recomputed = run_epsilon(privacy["mechanism"], own_delta) if own_delta > 0 or \
        privacy["mechanism"]["kind"] == "dp" else None
    if stored is None or (isinstance(stored, float) and math.isnan(stored)):
        return RuleResult("stored-epsilon", FAIL, f"run {evidence.run_id} records no epsilon: retrain it")
    if recomputed is not None and stored < recomputed * (1 - policy.epsilon_tolerance):
        return RuleResult("stored-epsilon", FAIL, (
            f"run {evidence.run_id}'s stored epsilon {stored:.4g} ({privacy.get('accountant')}) is below "
            f"dp-accounting's {recomputed:.4g} at delta {own_delta:g} for its recorded mechanism (tolerance "
            f"{policy.epsilon_tolerance:.0%}): an understated or altered figure; retrain the run and report the recomputed one"))
    if target is not None and not (isinstance(target, float) and math.isnan(target)) and stored > float(target) * (1 + 1e-9):
        return RuleResult("stored-epsilon", FAIL, f"run {evidence.run_id}'s stored epsilon {stored:.4g} exceeds its target "
                          f"{target:g}: retrain it")
    shown = f"{recomputed:.4g}" if recomputed is not None else "n/a"
    return RuleResult("stored-epsilon", PASS, f"stored {stored:.4g} agrees with dp-accounting's {shown} at delta {own_delta:g}")


def accountant(policy: GatePolicy, evidence: Evidence) -> RuleResult:
    if not evidence.private:
        return _no_guarantee("accountant")
    if policy.accountants is None:
        return RuleResult("accountant", SKIP, "no accountants in the policy")
    used = evidence.record["privacy"].get("accountant")
    if used in policy.accountants:
        return RuleResult("accountant", PASS, f"calibrated with {used}")
    # Only DP-SGD's accountant is a sweep setting; a technique with its own (dp-synthetic's zCDP) cannot be retrained
    # under another one.
    fix = f"retrain with --accountant {policy.accountants[0]}" if used in ACCOUNTANTS else \
        f"{evidence.record.get('technique')} is always accounted with {used}: allow it in the policy's accountants"
    return RuleResult("accountant", FAIL, f"run {evidence.run_id} was calibrated with {used!r}, not one of "
                      f"{', '.join(policy.accountants)}: {fix}")


def release_epsilon(policy: GatePolicy, evidence: Evidence) -> RuleResult:
    if not evidence.private:
        return _no_guarantee("release-epsilon")
    if policy.max_release_epsilon is None:
        return RuleResult("release-epsilon", SKIP, "no max_release_epsilon in the policy")
    found = evidence.recomputed
    figure, basis = found.composed_epsilon, "every private release on the data composed (PLD)"
    if policy.release_basis == "random-search" and found.tuning_epsilon is not None and found.tuning_epsilon < figure:
        figure, basis = found.tuning_epsilon, "tuning-aware, its random search (RDP repeat-and-select)"
    said = f"epsilon covering the release {figure:.4g} at delta {policy.delta:g}: {basis}, recomputed with dp-accounting"
    if figure <= policy.max_release_epsilon:
        return RuleResult("release-epsilon", PASS, f"{said} <= {policy.max_release_epsilon:g}")
    fix = ("choose within one random search (--random-trials) and set release_basis: random-search"
           if policy.release_basis == "composition" else "search over fewer or cheaper trials")
    return RuleResult("release-epsilon", FAIL, f"{said}, exceeds max_release_epsilon {policy.max_release_epsilon:g}: "
                      f"train fewer private runs on this data, or {fix}")


def _metric_mismatch(policy: GatePolicy, utility: dict[str, Any], rule: str) -> RuleResult | None:
    if policy.metric is not None and policy.metric != utility.get("metric"):
        return RuleResult(rule, FAIL, f"the record reports {utility.get('metric')}, the policy asks {policy.metric}: "
                          f"export it with --metric {policy.metric}")
    return None


def utility(policy: GatePolicy, evidence: Evidence) -> RuleResult:
    if policy.min_metric is None:
        return RuleResult("utility", SKIP, "no min_metric in the policy")
    values = evidence.record["utility"]
    mismatch = _metric_mismatch(policy, values, "utility")
    if mismatch:
        return mismatch
    value = values.get("test_mean")
    said = f"test {values['metric']} {value:.4f} over {values.get('seeds')} seed(s)" if value is not None else \
        f"no test {values['metric']}"
    if value is not None and value >= policy.min_metric:
        return RuleResult("utility", PASS, f"{said} >= {policy.min_metric:g}")
    return RuleResult("utility", FAIL, f"run {evidence.run_id}'s {said} is below min_metric {policy.min_metric:g}: "
                      "choose a more accurate configuration, or a larger epsilon")


def margin_over_trivial(policy: GatePolicy, evidence: Evidence) -> RuleResult:
    if policy.min_margin_over_trivial is None:
        return RuleResult("margin-over-trivial", SKIP, "no min_margin_over_trivial in the policy")
    values = evidence.record["utility"]
    mismatch = _metric_mismatch(policy, values, "margin-over-trivial")
    if mismatch:
        return mismatch
    margin = values.get("margin_over_trivial")
    if margin is None:
        return RuleResult("margin-over-trivial", FAIL, f"no trivial reference for {values['metric']}: export with "
                          "--metric balanced_accuracy")
    said = (f"test {values['metric']} {values['test_mean']:.4f} is {margin:+.4f} over always predicting the commonest "
            f"class ({values['trivial']:.4f})")
    if margin >= policy.min_margin_over_trivial:
        return RuleResult("margin-over-trivial", PASS, f"{said} >= {policy.min_margin_over_trivial:g}")
    return RuleResult("margin-over-trivial", FAIL, f"run {evidence.run_id}'s {said}, below min_margin_over_trivial "
                      f"{policy.min_margin_over_trivial:g}: the model barely learned; choose another configuration")


def data_derived_bounds(policy: GatePolicy, evidence: Evidence) -> RuleResult:
    dataset = evidence.record["dataset"]
    derived = sorted(set(dataset.get("data_derived_bounds") or ()) |
                     {column["name"] for column in dataset.get("columns") or () if column.get("source") == "data"})
    if not derived:
        return RuleResult("data-derived-bounds", PASS, "every bound and category list is public or a DP estimate")
    if policy.allow_data_derived_bounds:
        return RuleResult("data-derived-bounds", SKIP, f"allowed by the policy: {', '.join(derived)}")
    return RuleResult("data-derived-bounds", FAIL, (
        f"{len(derived)} column(s) of {dataset['name']} have bounds read from the private rows, not covered by "
        f"epsilon ({', '.join(derived[:5])}{', ...' if len(derived) > 5 else ''}): declare public bounds (frontier "
        "upload --schema) or let them be DP estimates (--undeclared dp)"))


def identifier_columns(policy: GatePolicy, evidence: Evidence) -> RuleResult:
    found = evidence.identifiers
    if not found:
        return RuleResult("identifier-columns", PASS, "no training column of the table looks like an identifier")
    if policy.allow_identifier_columns:
        return RuleResult("identifier-columns", SKIP, f"allowed by the policy: {', '.join(found)}")
    first, why = next(iter(found.items()))
    return RuleResult("identifier-columns", FAIL, (
        f"{len(found)} training column(s) look like identifiers: {', '.join(found)} ({first}: {why}): drop them "
        "(register the table again without keep_identifiers) and retrain"))


def audit(policy: GatePolicy, evidence: Evidence) -> RuleResult:
    if not evidence.private:
        return _no_guarantee("audit")
    found = evidence.record.get("audit")
    if found is None:
        if policy.require_audit:
            return RuleResult("audit", FAIL, f"run {evidence.run_id}'s point was never audited: run `frontier audit "
                              f"{evidence.run_id}` (and export with --include-audit)")
        return RuleResult("audit", SKIP, "no audit required and none recorded")
    bound, epsilon = found.get("epsilon_lower_bound"), evidence.recomputed.run_epsilon
    if found.get("breach") or (bound is not None and bound > epsilon):
        shown = f"{bound:.4g}" if bound is not None else "a measured lower bound"
        return RuleResult("audit", FAIL, f"the {found['attack']} audit measured epsilon >= {shown}, above the run's "
                          f"{epsilon:.4g}: a bug or a broken assumption; do not deploy, investigate the run")
    if policy.max_audit_lower_bound is not None:
        if bound is None:
            return RuleResult("audit", FAIL, "the record carries the audit's verdict but not its figures: export with "
                              "--include-audit to check max_audit_lower_bound")
        if bound > policy.max_audit_lower_bound:
            return RuleResult("audit", FAIL, f"the {found['attack']} audit's epsilon lower bound {bound:.4g} exceeds "
                              f"max_audit_lower_bound {policy.max_audit_lower_bound:g}: choose a smaller epsilon")
    shown = f"lower bound {bound:.4g}" if bound is not None else "no breach"
    return RuleResult("audit", PASS, f"{found['attack']} audit: {shown}, within the run's epsilon {epsilon:.4g}")


def versions(policy: GatePolicy, evidence: Evidence) -> RuleResult:
    if not policy.versions:
        return RuleResult("versions", SKIP, "no versions in the policy")
    recorded = evidence.record.get("versions") or {}
    wrong = []
    for library, allowed in policy.versions.items():
        version = recorded.get(library)
        try:
            ok = version is not None and SpecifierSet(allowed).contains(Version(str(version)), prereleases=True)
        except InvalidVersion:
            ok = False
        if not ok:
            wrong.append(f"{library} {version or 'not recorded'} (allowed {allowed})")
    if not wrong:
        return RuleResult("versions", PASS, ", ".join(f"{name} {recorded.get(name)}" for name in policy.versions))
    return RuleResult("versions", FAIL, f"run {evidence.run_id} was trained with {'; '.join(wrong)}: retrain with the "
                      "allowed versions, or widen versions in the policy")


RULES: tuple[Rule, ...] = (record_hash, private, secret_noise, max_epsilon, stored_epsilon, accountant, release_epsilon,
                           utility, margin_over_trivial, data_derived_bounds, identifier_columns, audit, versions)


def check(policy: GatePolicy, evidence: Evidence) -> list[RuleResult]:
    return [rule(policy, evidence) for rule in RULES]
