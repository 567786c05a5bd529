"""What local-dp's curator does with the randomised records it receives: post-processing only, no privacy cost.

The label randomisation is public (k-RR with a known flip matrix T), so the curator can undo it on average:

- `ForwardCorrectedLogisticRegression` models the TRUE label: P(reported | x) = T^T softmax(W x + b), fitted by
  maximum likelihood on the reported labels (the forward loss correction of Patrini et al. 2017; for k = 2 the
  channel of Natarajan et al. 2013). Its `predict_proba` is the estimated clean posterior P(true | x).
- `choose_thresholds` picks each objective's decision rule on RANDOMISED records only (raw ones, validation
  rows included, never reach the curator): the clean confusion counts are estimated without bias from the
  reported labels (inv(T^T) applied to each report), and the model must beat always predicting the commonest
  class by more than two standard errors of that estimate, else the rule IS that class: the trivial rate,
  said openly.
  The scores checked are out-of-fold (cross-fitted over training and validation reports): validation reports
  alone (138 on heart) were too few to confirm anything once k-RR's inversion had amplified their noise.

Numeric features stay as reported (bounded Laplace): the model is fitted on noisy features and applied to clean
test rows, so its coefficients are attenuated (regression dilution). That shrinks posteriors towards the prior,
which makes the accuracy rule (posterior >= 1/2) conservative; it is accepted, not corrected.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize
from scipy.special import log_softmax, softmax

from engine.privacy.local_randomisers import unbiased_one_hot

MAX_ITERATIONS = 500
INTERCEPT_BOUND = 30.0  # keeps the (unpenalised) intercept finite when the reports say nothing
MIN_RATE = 0.02  # a debiased positive rate is never taken as more extreme than this for a threshold
# How many standard errors of the estimate the model must beat the commonest class by. The estimate is made on
# randomised features, the test rows are clean: at 1 standard error, models ranking clean Adult rows backwards
# (ROC AUC 0.32 at epsilon 1) still passed, so 2.
EVIDENCE = {"accuracy": 2.0, "balanced_accuracy": 2.0}
OVERRIDE = 3.0  # standard errors by which the reports must contradict a declared rate to override it
FOLDS = 4  # cross-fitting folds for the out-of-fold check


class ForwardCorrectedLogisticRegression:
    """Multinomial logistic regression of the clean label, trained on labels that went through the channel `flip`
    (k, k), flip[true, reported]. L2 penalty as scikit-learn's: C * sum of losses + |W|^2 / 2, intercept free."""

    def __init__(self, flip: np.ndarray, C: float = 1.0, prior: np.ndarray | None = None):
        self.flip = np.asarray(flip, dtype=np.float64)
        self.C = C
        self.prior = prior  # where the intercept starts (the debiased class prior), else uniform

    def fit(self, x: np.ndarray, reported: np.ndarray) -> "ForwardCorrectedLogisticRegression":
        x = np.asarray(x, dtype=np.float64)  # (n, d)
        n, d = x.shape
        k = self.flip.shape[0]
        reported = np.asarray(reported, dtype=np.int64)
        channel = self.flip[:, reported].T  # (n, k): P(this report | true class c)

        def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
            weights, bias = theta[:d * k].reshape(d, k), theta[d * k:]
            logits = x @ weights + bias  # (n, k)
            clean = softmax(logits, axis=1)  # P(true = c | x)
            likelihood = np.maximum((clean * channel).sum(axis=1), 1e-300)  # P(report | x)
            loss = -np.log(likelihood).sum() * self.C + 0.5 * np.sum(weights ** 2)
            posterior = clean * channel / likelihood[:, None]  # P(true = c | x, report)
            grad_logits = (clean - posterior) * self.C  # d(-log likelihood)/d logits
            return loss, np.concatenate([(x.T @ grad_logits + weights).ravel(), grad_logits.sum(axis=0)])

        start = np.zeros(d * k + k)
        if self.prior is not None:
            start[d * k:] = np.log(np.clip(self.prior, 1e-3, None))
        bounds = [(None, None)] * (d * k) + [(-INTERCEPT_BOUND, INTERCEPT_BOUND)] * k
        solution = minimize(objective, start, jac=True, method="L-BFGS-B", bounds=bounds,
                            options={"maxiter": MAX_ITERATIONS, "gtol": 1e-6})
        self.coef_ = solution.x[:d * k].reshape(d, k).T  # (k, d) as scikit-learn lays it out
        self.intercept_ = solution.x[d * k:]
        self.classes_ = np.arange(k)
        self.n_iter_ = int(solution.nit)
        return self

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """(n, k) estimated CLEAN posteriors."""
        return softmax(np.asarray(x, dtype=np.float64) @ self.coef_.T + self.intercept_, axis=1)

    def predict_log_proba(self, x: np.ndarray) -> np.ndarray:
        return log_softmax(np.asarray(x, dtype=np.float64) @ self.coef_.T + self.intercept_, axis=1)


def out_of_fold_scores(x: np.ndarray, reported: np.ndarray, *, flip: np.ndarray, C: float, prior: np.ndarray,
                       rng: np.random.Generator, folds: int = FOLDS) -> np.ndarray:
    """(n, k) clean posteriors for every report from a model that never saw it (cross-fitting over `folds`)."""
    n = len(reported)
    fold = rng.permutation(n) % folds  # (n,) which fold each report is scored in
    scores = np.empty((n, flip.shape[0]))
    for index in range(folds):
        held = fold == index
        model = ForwardCorrectedLogisticRegression(flip, C=C, prior=prior).fit(x[~held], reported[~held])
        scores[held] = model.predict_proba(x[held])
    return scores


def estimated_scores(decisions: np.ndarray, true_estimates: np.ndarray) -> dict[str, tuple[float, np.ndarray]]:
    """Accuracy and balanced accuracy of `decisions` (n,) against labels known only through unbiased one-hot
    estimates (n, k): each (value, per-row influence), whose standard deviation / sqrt(n) is its standard error."""
    n, k = true_estimates.shape
    hit = true_estimates[np.arange(n), decisions]  # unbiased for 1{decision == true}
    accuracy = float(hit.mean())
    counts = np.maximum(true_estimates.sum(axis=0), 1.0)  # (k,) estimated class sizes, at least one row
    correct = np.array([hit[decisions == c].sum() for c in range(k)])  # estimated correct per class
    recall = np.clip(correct / counts, 0.0, 1.0)
    influence = sum((hit * (decisions == c) - recall[c] * true_estimates[:, c]) / (counts[c] / n) for c in range(k))
    return {"accuracy": (accuracy, hit - accuracy), "balanced_accuracy": (float(recall.mean()), influence / k)}


def majority_class(reported: np.ndarray, *, epsilon: float, declared_positive_rate: float | None) -> tuple[int, str]:
    """Binary labels: the commonest true class and where that came from. Without a declared rate, the debiased
    rate's. With one (the catalogue's published rate: public knowledge), the declared majority, unless the
    debiased rate (clipped to [0, 1]) sits on the other side of 1/2 and further than OVERRIDE standard errors
    from the declared rate (at a small label epsilon the error exceeds 0.5: heart at epsilon 1 is 0.76, and a
    debiased rate of -2.2 once overrode the declared 0.55 when the test was against 1/2)."""
    estimates = unbiased_one_hot(reported, epsilon=epsilon, n_values=2)[:, 1]  # unbiased for 1{true = 1}
    rate, error = float(estimates.mean()), float(estimates.std() / np.sqrt(max(len(estimates), 1)))
    debiased = f"debiased rate {rate:.3f} (standard error {error:.3f})"
    if declared_positive_rate is None:
        return int(rate > 0.5), debiased
    declared = int(float(declared_positive_rate) > 0.5)
    possible = min(max(rate, 0.0), 1.0)  # a rate is in [0, 1]: reports this noisy can never override
    if int(possible > 0.5) != declared and abs(possible - float(declared_positive_rate)) > OVERRIDE * error:
        return int(rate > 0.5), f"{debiased}, against the declared rate {float(declared_positive_rate):.2f}"
    return declared, f"declared positive rate {float(declared_positive_rate):.2f} ({debiased})"


def majority_threshold(majority: int) -> float:
    """A positive-class threshold under which every row is decided `majority` (scores are probabilities)."""
    return 0.0 if majority == 1 else float(np.nextafter(1.0, 2.0))


def choose_thresholds(positive_scores: np.ndarray, reported: np.ndarray, *, epsilon: float,
                      prior: np.ndarray, majority: int) -> dict[str, dict]:
    """Binary labels: for accuracy and for balanced accuracy, the positive-class threshold, chosen on randomised
    validation rows (`positive_scores` from their randomised features, `reported` their randomised labels).

    Candidates are the Bayes rules of the corrected posterior (1/2 for accuracy, the debiased positive rate for
    balanced accuracy, kept inside [MIN_RATE, 1 - MIN_RATE]). A candidate is kept only if its estimated gain
    over always deciding the `majority` class exceeds EVIDENCE[objective] standard errors (and its estimate is a
    possible value); otherwise the rule falls back to that class.
    """
    truth = unbiased_one_hot(reported, epsilon=epsilon, n_values=2)  # (n, 2)
    n = len(reported)
    constant = estimated_scores(np.full(n, majority), truth)
    bayes = {"accuracy": 0.5, "balanced_accuracy": float(np.clip(prior[1], MIN_RATE, 1.0 - MIN_RATE))}
    chosen = {}
    for objective, threshold in bayes.items():
        value, influence = estimated_scores((positive_scores >= threshold).astype(np.int64), truth)[objective]
        base, base_influence = constant[objective]
        error = float(np.std(influence - base_influence) / np.sqrt(max(n, 1)))
        gain = value - base
        # the estimate must also be a possible value: k-RR inversion at a small label epsilon amplifies the noise
        learned = n > 1 and gain > EVIDENCE[objective] * error and 0.0 <= value <= 1.0
        chosen[objective] = {
            "threshold": threshold if learned else majority_threshold(majority),
            "rule": "corrected posterior" if learned else f"fell back to the majority class ({majority})",
            "estimated_gain": round(gain, 4), "standard_error": round(error, 4),
            "estimated_value": round(value if learned else base, 4)}
    return chosen
