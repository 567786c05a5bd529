"""The validation-threshold search counts every candidate at once: it must pick exactly what scoring each candidate
with scikit-learn's scorers (the search as it was) picks, and its values must equal theirs bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, balanced_accuracy_score

from engine.techniques import metrics

# The reference scores one-class label sets too, where scikit-learn warns.
pytestmark = [pytest.mark.filterwarnings("ignore:y_pred contains classes not in y_true"),
              pytest.mark.filterwarnings("ignore:A single label was found")]
SCORERS = {"accuracy": accuracy_score, "balanced_accuracy": balanced_accuracy_score}


def _search_by_scorer(labels, positive_scores, objective):
    """The search scoring one candidate at a time with scikit-learn (the reference)."""
    scorer = SCORERS[objective]
    candidates = np.union1d(np.unique(np.quantile(positive_scores, np.linspace(0, 1, metrics.MAX_CANDIDATE_THRESHOLDS))),
                            [0.5])
    best, best_value = 0.5, -np.inf
    for threshold in candidates:
        value = scorer(labels, (positive_scores >= threshold).astype(int))
        if value > best_value + 1e-12 or (abs(value - best_value) <= 1e-12 and abs(threshold - 0.5) < abs(best - 0.5)):
            best, best_value = float(threshold), value
    return best


def _cases():
    rng = np.random.default_rng(20261203)
    for case in range(60):
        n = int(rng.integers(1, 400))
        labels = (rng.random(n) < rng.choice([0.0, 0.05, 0.3, 0.5, 0.9, 1.0])).astype(np.int64)
        scores = rng.random(n).astype(np.float32)
        if case % 3 == 0:
            scores = np.round(scores, 1).astype(np.float32)  # many ties
        if case % 7 == 0:
            scores[:] = np.float32(0.5)  # one value only
        yield labels, scores


@pytest.mark.parametrize("objective", sorted(SCORERS))
def test_threshold_search_equals_scoring_each_candidate(objective):
    for labels, scores in _cases():
        assert metrics.choose_threshold(labels, scores, objective) == _search_by_scorer(labels, scores, objective)
        candidates = np.union1d(np.unique(np.quantile(scores, np.linspace(0, 1, 256))), [0.5])
        values = metrics._objective_at(labels, scores, candidates, objective)
        if values is None:  # one class only: the scorer is called per candidate
            assert labels.min() == labels.max()
            continue
        expected = [SCORERS[objective](labels, (scores >= t).astype(int)) for t in candidates]
        assert values.tolist() == expected
