"""Scoring a trained model: test metrics at a decision threshold chosen on the validation rows.

A model's decisions use a threshold chosen on validation rows (held out of training), not 0.5: on imbalanced
tables a 0.5 threshold often predicts the commonest class for everyone. Accuracy and balanced accuracy are each
measured at the threshold that maximises it on the validation rows; the run's decision threshold is the one of
the objective that fits the label: balanced accuracy when the positive class is rare or its rate unknown,
accuracy when the catalogue declares a balanced label (`label.expected_positive_rate`, public knowledge). The
test rows only report.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import accuracy_score, balanced_accuracy_score, roc_auc_score

from engine.data import DatasetInfo, PreparedDataset
from engine.techniques import scoring_tap

BALANCED_RANGE = (0.35, 0.65)  # a declared positive rate in this range counts as a balanced label
MAX_CANDIDATE_THRESHOLDS = 256


def decision_objective(info: DatasetInfo | None) -> str:
    """'accuracy' for a label declared balanced, else 'balanced_accuracy' (rare positives, or rate unknown)."""
    rate = (info.label or {}).get("expected_positive_rate") if info is not None else None
    if rate is not None and BALANCED_RANGE[0] <= float(rate) <= BALANCED_RANGE[1]:
        return "accuracy"
    return "balanced_accuracy"


def _objective_at(labels: np.ndarray, positive_scores: np.ndarray, candidates: np.ndarray,
                  objective: str) -> np.ndarray | None:
    """`objective` at every candidate threshold at once (T,), with the very counts and divisions of scikit-learn's
    accuracy_score / balanced_accuracy_score (so equal to them bit for bit); None unless the labels are 0/1 with both
    classes present (then the scorer itself is called per threshold)."""
    labels = np.asarray(labels)
    positive = labels == 1  # (n,)
    n_positive = int(positive.sum())
    n_negative = len(labels) - n_positive
    if n_positive == 0 or n_negative == 0 or int(np.count_nonzero(labels == 0)) != n_negative:
        return None
    predicted = positive_scores[None, :] >= candidates[:, None]  # (T, n)
    true_positives = (predicted & positive).sum(axis=1)  # (T,)
    true_negatives = (~predicted & ~positive).sum(axis=1)  # (T,)
    if objective == "balanced_accuracy":
        return (true_negatives / n_negative + true_positives / n_positive) / 2  # mean of the per-class recalls
    return (true_positives + true_negatives) / len(labels)


def choose_threshold(labels: np.ndarray, positive_scores: np.ndarray, objective: str) -> float:
    """The probability threshold on the positive class that maximises `objective` on these (validation) rows;
    ties go to the threshold closest to 0.5."""
    scorer = balanced_accuracy_score if objective == "balanced_accuracy" else accuracy_score
    candidates = np.unique(np.quantile(positive_scores, np.linspace(0, 1, MAX_CANDIDATE_THRESHOLDS)))
    candidates = np.union1d(candidates, [0.5])
    values = _objective_at(labels, positive_scores, candidates, objective)  # 256 scorer calls took ~0.2-0.4 s
    best, best_value = 0.5, -np.inf
    for at, threshold in enumerate(candidates):
        value = values[at] if values is not None else scorer(labels, (positive_scores >= threshold).astype(int))
        if value > best_value + 1e-12 or (abs(value - best_value) <= 1e-12 and abs(threshold - 0.5) < abs(best - 0.5)):
            best, best_value = float(threshold), value
    return best


def _decisions(scores: np.ndarray, threshold: float | None) -> np.ndarray:
    if threshold is None:
        return scores.argmax(axis=1)
    return (scores[:, 1] >= threshold).astype(int)


def _roc_auc(labels: np.ndarray, scores: np.ndarray, n_classes: int) -> float | None:
    try:
        if n_classes == 2:
            return float(roc_auc_score(labels, scores[:, 1]))
        return float(roc_auc_score(labels, scores, multi_class="ovr", average="macro"))
    except ValueError:  # one class only: no ROC AUC
        return None


def score_metrics(test_scores: np.ndarray, data: PreparedDataset,
                  validation_scores: np.ndarray | None = None) -> dict[str, float | None]:
    """Test metrics (accuracy, balanced_accuracy, roc_auc), validation metrics (val_*) and the decision threshold,
    from class scores (n, classes). Each thresholded metric is measured at the threshold that maximises it on the
    validation rows; `decision_threshold` is the one for the label's objective. Several classes: arg-max."""
    scoring_tap.report(test_scores)  # an audit reads the model's scores here (engine.techniques.scoring_tap)
    has_validation = validation_scores is not None and data.y_val is not None and len(data.y_val) > 0
    thresholds = {"accuracy": None, "balanced_accuracy": None}
    if data.n_classes == 2 and has_validation:
        thresholds = {name: choose_threshold(data.y_val, validation_scores[:, 1], name) for name in thresholds}
    scorers = {"accuracy": accuracy_score, "balanced_accuracy": balanced_accuracy_score}
    result: dict[str, float | None] = {}
    for split, labels, scores in (("", data.y_test, test_scores), ("val_", data.y_val, validation_scores)):
        if split and not has_validation:
            continue
        for name, scorer in scorers.items():
            result[f"{split}{name}"] = float(scorer(labels, _decisions(scores, thresholds[name])))
        result[f"{split}roc_auc"] = _roc_auc(labels, scores, data.n_classes)
    result["decision_threshold"] = thresholds[decision_objective(data.info)]
    return result
