"""The statistics of an audit, from attack scores to figures with their uncertainty (numpy/scipy, no state).

Every attack ends in two score arrays: the scores of rows that were in the training set (`in_scores`) and of
rows that were not (`out_scores`), higher meaning "more likely in". From them:

- `epsilon_lower_bound`: the one-run bound of Steinke, Nasr & Jagielski 2023 ("Privacy auditing with one (1)
  training run", NeurIPS 2023): guess "in" for the r highest-scored rows, abstain on the rest, and find the
  largest epsilon that the number of correct guesses refutes at the given confidence (Theorem 5.2 for
  (epsilon, delta)-DP; Theorem 3.1 when delta = 0). r runs over a fixed grid chosen before looking at the
  scores, with a Bonferroni correction over the grid, so the bound holds at the stated confidence.
- `true_positive_rate_at`: the attack's TPR at a fixed FPR (threshold taken from the out-scores), with an
  exact binomial (Clopper-Pearson) interval for the TPR given that threshold, and the DP bound at the same
  FPR, TPR <= e^epsilon x FPR + delta (Kairouz, Oh & Viswanath 2015).
- `area_under_curve`: the ROC AUC with a percentile bootstrap interval (rows resampled within each side).

The one-run bound is checked against jax-privacy 2.0's `CanaryScoreAuditor.epsilon_one_run` on fixed inputs
(tests/test_audit_statistics.py; the reference's outputs come from benchmarks/one_run_reference.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import optimize, special, stats

from engine.analysis.decide import membership_bound

# Fractions of the m scored rows guessed "in" (abstaining on the rest): fixed before the scores are seen, so
# the Bonferroni correction over them is valid. Steinke et al. report bounds for guesses from 10 to m.
GUESS_FRACTIONS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)
BOOTSTRAP_RESAMPLES = 400  # for the AUC interval; the interval's own Monte-Carlo error is ~0.002 at that count
BOOTSTRAP_SEED = 0  # resampling scores is not privacy-relevant: a fixed seed makes the interval reproducible


@dataclass(frozen=True)
class Interval:
    value: float
    low: float
    high: float


@dataclass(frozen=True)
class OneRunBound:
    epsilon: float  # the lower bound: (epsilon, delta)-DP is refuted at the confidence for anything smaller
    guesses: int  # rows guessed "in" at the best grid point (the rest abstained)
    correct: int  # of those, truly in
    canaries: int  # m: every row scored
    confidence: float
    grid_size: int  # guess counts tried (Bonferroni)


@dataclass(frozen=True)
class RateAtFpr:
    fpr: float  # the false-positive rate asked for
    achieved_fpr: float  # out-rows above the threshold / out-rows (at most `fpr`)
    tpr: Interval  # Clopper-Pearson interval of the TPR at the threshold
    bound: float  # what (epsilon, delta)-DP allows at `fpr`: min(1, e^eps x fpr + delta); nan without epsilon
    fpr_high: float  # Clopper-Pearson upper limit of the threshold's true FPR (few out-rows: far above `fpr`)
    bound_high: float  # the DP bound at fpr_high: what the TPR's lower limit is held against

    @property
    def within_bound(self) -> bool:
        """The attack does not beat the DP bound at the confidence: TPR's lower limit <= the bound at the FPR's
        upper limit (Jagielski et al. 2020's test; true when there is no bound)."""
        return not self.tpr.low > self.bound_high


def one_run_p_value(epsilon: float, *, canaries: int, guesses: int, correct: int, delta: float) -> float:
    """Probability, under (epsilon, delta)-DP, of `correct` or more right among `guesses` guesses.

    Steinke et al. 2023, Theorem 5.2: with X ~ Binomial(r, e^eps / (1 + e^eps)) and v correct guesses,
    P[W >= v] <= P[X >= v] + 2 m delta max_{1<=i<=v} (P[X >= v - i] - P[X >= v]) / i. With delta = 0 this is
    Theorem 3.1, the binomial tail alone.
    """
    success = special.expit(epsilon)  # e^eps / (1 + e^eps): the best chance of a right guess under eps-DP

    def tail(at_least):  # P[X >= at_least]
        return stats.binom.sf(np.asarray(at_least) - 1, guesses, success)

    beta = float(tail(correct))
    if delta == 0 or correct == 0:
        return beta
    steps = np.arange(1, correct + 1)
    alpha = float(np.max((tail(correct - steps) - beta) / steps, initial=0.0))
    return min(1.0, beta + 2 * canaries * delta * alpha)


def _largest_refuted_epsilon(*, canaries: int, guesses: int, correct: int, delta: float, significance: float) -> float:
    """The largest epsilon whose p-value stays at or below `significance` (0 when even epsilon 0 is not refuted).
    The p-value grows with epsilon, so the root is unique."""
    def excess(epsilon: float) -> float:
        return significance - one_run_p_value(epsilon, canaries=canaries, guesses=guesses, correct=correct, delta=delta)

    if excess(0.0) <= 0:
        return 0.0
    high = 1.0
    while excess(high) > 0:
        high *= 2
        if high > 1e4:  # perfect guesses on a huge m: no finite refutation limit worth reporting
            return math.inf
    return float(optimize.brentq(excess, high / 2 if high > 1 else 0.0, high, xtol=1e-6))


def guess_counts(canaries: int) -> list[int]:
    """The grid of how many rows to guess "in": a fixed fraction list of m, deduplicated, at least one."""
    return sorted({max(1, int(round(fraction * canaries))) for fraction in GUESS_FRACTIONS})


def epsilon_lower_bound(in_scores: np.ndarray, out_scores: np.ndarray, *, delta: float,
                        confidence: float = 0.95) -> OneRunBound:
    """Steinke et al.'s one-run epsilon lower bound from the scores of included and excluded rows (one-sided:
    guesses are "in" or abstain). Guessing "in" means a score at or above the r-th highest score (ties join)."""
    in_scores, out_scores = np.asarray(in_scores, float), np.asarray(out_scores, float)
    canaries = len(in_scores) + len(out_scores)
    ranked = np.sort(np.concatenate([in_scores, out_scores]))[::-1]  # (m,) highest first
    counts = guess_counts(canaries)
    significance = (1 - confidence) / len(counts)  # Bonferroni over the grid
    best = OneRunBound(0.0, 0, 0, canaries, confidence, len(counts))
    for count in counts:
        threshold = ranked[count - 1]
        guesses = int(np.sum(ranked >= threshold))
        correct = int(np.sum(in_scores >= threshold))
        epsilon = _largest_refuted_epsilon(canaries=canaries, guesses=guesses, correct=correct, delta=delta,
                                           significance=significance)
        if epsilon > best.epsilon:
            best = OneRunBound(epsilon, guesses, correct, canaries, confidence, len(counts))
    return best


def clopper_pearson(successes: int, trials: int, confidence: float) -> Interval:
    """Exact two-sided binomial interval for successes / trials."""
    tail = (1 - confidence) / 2
    low = 0.0 if successes == 0 else float(stats.beta.ppf(tail, successes, trials - successes + 1))
    high = 1.0 if successes == trials else float(stats.beta.ppf(1 - tail, successes + 1, trials - successes))
    return Interval(successes / trials if trials else math.nan, low, high)


def true_positive_rate_at(in_scores: np.ndarray, out_scores: np.ndarray, fpr: float, *, epsilon: float | None,
                          delta: float | None, confidence: float = 0.95) -> RateAtFpr:
    """TPR of the test "score above t", t chosen so that at most fpr x |out| out-rows exceed it."""
    in_scores, out_scores = np.asarray(in_scores, float), np.asarray(out_scores, float)
    allowed = int(math.floor(fpr * len(out_scores)))  # out-rows that may score above the threshold
    ranked_out = np.sort(out_scores)[::-1]
    threshold = ranked_out[allowed] if allowed < len(ranked_out) else -math.inf
    true_positives = int(np.sum(in_scores > threshold))
    false_positives = int(np.sum(out_scores > threshold))
    fpr_high = clopper_pearson(false_positives, len(out_scores), confidence).high

    def bound(rate: float) -> float:
        return math.nan if epsilon is None else membership_bound(epsilon, delta or 0.0, rate)

    return RateAtFpr(fpr=fpr, achieved_fpr=false_positives / len(out_scores),
                     tpr=clopper_pearson(true_positives, len(in_scores), confidence), bound=bound(fpr),
                     fpr_high=fpr_high, bound_high=bound(fpr_high))


def area_under_curve(in_scores: np.ndarray, out_scores: np.ndarray, confidence: float = 0.95) -> Interval:
    """ROC AUC (ties count half) with a percentile bootstrap interval, each side resampled with replacement."""
    in_scores, out_scores = np.asarray(in_scores, float), np.asarray(out_scores, float)
    value = _auc_by_ranks(np.concatenate([in_scores, out_scores]), len(in_scores))
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    resampled = []
    for _ in range(BOOTSTRAP_RESAMPLES):
        scores = np.concatenate([rng.choice(in_scores, len(in_scores)), rng.choice(out_scores, len(out_scores))])
        resampled.append(_auc_by_ranks(scores, len(in_scores)))
    tail = (1 - confidence) / 2
    low, high = np.quantile(resampled, [tail, 1 - tail])
    return Interval(value, float(low), float(high))


def _auc_by_ranks(scores: np.ndarray, n_in: int) -> float:
    """Mann-Whitney AUC of the first n_in scores against the rest (average ranks for ties)."""
    ranks = stats.rankdata(scores)
    n_out = len(scores) - n_in
    return float((ranks[:n_in].sum() - n_in * (n_in + 1) / 2) / (n_in * n_out))
