"""The audit's statistics against an independent implementation and against what they must guarantee."""

import json
import math
from pathlib import Path

import numpy as np
import pytest

from engine.audit.statistics import (_largest_refuted_epsilon, area_under_curve, clopper_pearson, epsilon_lower_bound,
                                     one_run_p_value, true_positive_rate_at)

FIXTURE = json.loads((Path(__file__).parent / "fixtures" / "one_run_reference.json").read_text())


@pytest.mark.parametrize("case", FIXTURE["cases"], ids=lambda case: case["name"])
def test_one_run_bound_agrees_with_jax_privacy_on_the_same_inputs(case):
    """jax-privacy 2.0's CanaryScoreAuditor.epsilon_one_run (run by benchmarks/one_run_reference.py in its own
    venv) at each of our thresholds, and our bound, which is the best of those."""
    in_scores, out_scores = np.array(case["in_scores"]), np.array(case["out_scores"])
    m = len(in_scores) + len(out_scores)
    ours = []
    for threshold in case["thresholds"]:
        guesses = int(np.sum(np.concatenate([in_scores, out_scores]) >= threshold))
        correct = int(np.sum(in_scores >= threshold))
        ours.append(_largest_refuted_epsilon(canaries=m, guesses=guesses, correct=correct, delta=case["delta"],
                                             significance=case["significance"]))
    np.testing.assert_allclose(ours, case["reference_epsilon"], atol=1e-4)
    bound = epsilon_lower_bound(in_scores, out_scores, delta=case["delta"], confidence=case["confidence"])
    assert bound.epsilon == pytest.approx(max(case["reference_epsilon"]), abs=1e-4)
    # jax-privacy's AUC is that of the ROC's convex hull (randomised thresholds allowed): never below ours.
    assert area_under_curve(in_scores, out_scores).value <= case["reference_auc"] + 1e-12


def test_pure_dp_p_value_is_the_binomial_tail_of_theorem_3_1():
    # 10 guesses, all right, epsilon 0: probability 2^-10.
    assert one_run_p_value(0.0, canaries=100, guesses=10, correct=10, delta=0.0) == pytest.approx(2 ** -10)
    # delta only ever weakens the refutation
    assert one_run_p_value(1.0, canaries=100, guesses=10, correct=9, delta=1e-3) > \
        one_run_p_value(1.0, canaries=100, guesses=10, correct=9, delta=0.0)


def test_the_bound_is_valid_under_a_mechanism_that_is_exactly_epsilon_dp():
    """Randomised response at epsilon 1 on each canary's bit is 1-DP: the 95% lower bound may reach 1 in at most
    5% of repetitions (the mechanism is the worst case the bound allows, so it does in a few)."""
    rng = np.random.default_rng(7)
    keep = math.exp(1) / (1 + math.exp(1))
    bounds = []
    for _ in range(40):
        included = rng.random(1000) < 0.5
        reported = np.where(rng.random(1000) < keep, included, ~included).astype(float) + rng.random(1000) * 1e-3
        bounds.append(epsilon_lower_bound(reported[included], reported[~included], delta=0.0).epsilon)
    assert np.mean(np.array(bounds) >= 1.0) <= 0.05
    assert np.mean(bounds) > 0.3  # and it is not vacuous


def test_tpr_at_fpr_and_its_interval():
    rng = np.random.default_rng(3)
    out_scores = rng.normal(size=5000)
    in_scores = rng.normal(size=5000) + 2.0
    rate = true_positive_rate_at(in_scores, out_scores, 0.01, epsilon=1.0, delta=1e-5)
    assert rate.achieved_fpr <= 0.01
    expected = 1 - __import__("scipy").stats.norm.cdf(__import__("scipy").stats.norm.ppf(0.99) - 2.0)  # ~0.37
    assert rate.tpr.low < expected < rate.tpr.high
    assert rate.bound == pytest.approx(math.e * 0.01 + 1e-5)
    assert not rate.within_bound  # TPR ~0.37 far above e x 1% + delta
    assert true_positive_rate_at(in_scores, out_scores, 0.01, epsilon=None, delta=None).within_bound


def test_clopper_pearson_edges():
    assert clopper_pearson(0, 50, 0.95).low == 0.0
    assert clopper_pearson(50, 50, 0.95).high == 1.0
    interval = clopper_pearson(10, 100, 0.95)
    assert interval.low < 0.1 < interval.high


def test_auc_interval_covers_the_truth():
    rng = np.random.default_rng(11)
    auc = area_under_curve(rng.normal(size=400) + 1.0, rng.normal(size=400))
    truth = __import__("scipy").stats.norm.cdf(1 / math.sqrt(2))  # ~0.76
    assert auc.low < truth < auc.high
    assert auc.high - auc.low < 0.1
