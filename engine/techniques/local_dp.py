"""`local-dp`: every training (and validation) record is randomised by its owner before anyone else sees it;
the curator learns from the randomised reports alone, using what it knows about the randomisation. The test set
is never randomised: it only measures.

Each record's budget epsilon is split evenly over its attributes (the catalogue's original attributes, not
the one-hot columns) and its label; by sequential composition the record as a whole is epsilon-LDP:

- numeric attribute: the owner applies the public preprocessing (clip to the catalogue bounds, transform,
  scale to [-1, 1]) and randomises the result with the bounded-domain Laplace mechanism on [-1, 1]
  (diffprivlib LaplaceBoundedDomain). Randomising after the public transform keeps log-scaled amounts
  (Credit's bills and payments) meaningful; noise in raw units on [0, 1e6] would drown them.
- categorical attribute, missing flag, label: k-ary randomised response over the declared categories (plus
  "other" for a missing or undeclared value), i.e. diffprivlib ExponentialCategorical with unit utility.

The sampling is vectorised in engine.privacy.local_randomisers (tested against diffprivlib's mechanisms).
Everything after is post-processing of the reports and costs no privacy (engine.techniques.local_dp_learner):

- The model is a logistic regression (dp-logreg's family and regulariser, so the gap between `dp-logreg` and
  `local-dp` at equal epsilon is the price of not trusting the curator) of the TRUE label, fitted through the
  label's public k-RR flip matrix (forward correction). Why: an ordinary fit that takes the reports for clean
  labels scored below always-the-majority-class on imbalanced tables (issue 11: 0.45 against 0.85).
- The class prior is the unbiased k-RR frequency estimate, projected onto the simplex.
- Decisions (each metric's threshold) were chosen on RAW validation rows, which a local-DP curator never holds.
  They are now chosen on reports only: the Bayes rules of the corrected posterior, kept only if k-RR-corrected
  counts on out-of-fold reports show them beating the majority class by two standard errors; otherwise the run
  decides the majority class (debiased, or the catalogue's public rate when the reports cannot tell) and
  scores exactly the trivial rate. `extra["decisions"]` says which, and why.
- Numeric attributes keep their bounded-Laplace noise: fitted on noisy features and applied to clean test rows,
  the coefficients are attenuated (regression dilution). That is accepted, not corrected: it shrinks posteriors
  towards the prior, which makes the decisions more conservative.
- Validation metrics (val_*) are measured on the raw validation rows at the curator's own decisions: measuring
  only, like the test rows (the frontier compares configurations on them).
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import accuracy_score, balanced_accuracy_score, roc_auc_score

from engine.config import RunConfig
from engine.data import PreparedDataset
from engine.data.attributes import Attribute, attribute_layout, category_codes, one_hot
from engine.measure import PeakMemory, Stopwatch
from engine.privacy.local_randomisers import (bounded_laplace, debiased_frequencies, flip_matrix,
                                              k_randomised_response, keep_probability)
from engine.techniques import scoring_tap
from engine.techniques.base import Measurement, RunContext, RunProgress, RunResult, Technique
from engine.techniques.diffprivlib_models import LOGREG_C
from engine.techniques.estimators import equal_share, fresh_accountant, single_threaded_solvers, spent_epsilon
from engine.techniques.local_dp_learner import (FOLDS, ForwardCorrectedLogisticRegression, choose_thresholds,
                                               majority_class, out_of_fold_scores)
from engine.techniques.metrics import decision_objective

LABEL = "label"  # the label's key in the epsilon split
MECHANISM = ("local: bounded-domain Laplace on [-1, 1] per numeric attribute (diffprivlib LaplaceBoundedDomain); "
             "k-ary randomised response per categorical attribute, missing flag and the label (diffprivlib "
             "ExponentialCategorical, unit utility); epsilon split evenly over the record's attributes")
ESTIMATOR = ("logistic regression of the true label, forward-corrected for the label's known k-RR flip matrix "
             "(Patrini et al. 2017), trained on the randomised records; decisions checked on randomised records "
             "(out-of-fold, k-RR-corrected counts), else the majority class")


def epsilon_split(layout: tuple[Attribute, ...], epsilon: float) -> dict[str, float]:
    """Each attribute's share of a record's budget, label included: equal shares that sum to at most epsilon."""
    names = [attribute.name for attribute in layout] + [LABEL]
    return dict.fromkeys(names, equal_share(epsilon, len(names)))


def randomise_records(x: np.ndarray, y: np.ndarray, *, layout: tuple[Attribute, ...], n_classes: int,
                      split: dict[str, float], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """What the owners send: every attribute of every record randomised on its own share. New arrays."""
    noisy = np.empty_like(x)  # (n, d) encoded columns
    for attribute in layout:
        epsilon = split[attribute.name]
        if attribute.kind == "numeric":
            column = attribute.columns[0]
            noisy[:, column] = bounded_laplace(x[:, column], epsilon=epsilon, lower=-1.0, upper=1.0, rng=rng)
            continue
        codes = k_randomised_response(category_codes(x, attribute), epsilon=epsilon, n_values=attribute.n_values,
                                      rng=rng)
        if attribute.kind == "missing":
            noisy[:, attribute.columns[0]] = codes
        else:
            noisy[:, list(attribute.columns)] = one_hot(codes, attribute)
    for attribute in layout:  # post-processing: a value reported missing reads as the imputed lower bound
        if attribute.kind == "missing":
            numeric = attribute.name.removesuffix("=missing")
            column = next(a.columns[0] for a in layout if a.name == numeric)
            noisy[noisy[:, attribute.columns[0]] == 1, column] = -1.0
    labels = k_randomised_response(y, epsilon=split[LABEL], n_values=n_classes, rng=rng)
    return noisy.astype(x.dtype), labels.astype(y.dtype)


class LocalDP(Technique):
    name = "local-dp"
    description = ("Local DP: each record randomised by its owner (bounded Laplace, k-ary randomised response), "
                   "then a logistic regression that corrects for the known label randomisation is trained on what "
                   "they sent; decisions are chosen on randomised records only.")
    uses_epsilon = True
    pure_dp = True
    trust_model = "local"
    fixed_model = "logreg"  # the model trained on the randomised records
    measurements = (Measurement("mechanism", str, "mechanism"), Measurement("estimator", str, "estimator"))

    def run(self, config: RunConfig, data: PreparedDataset, *, context: RunContext,
            on_progress: RunProgress | None = None) -> RunResult:
        layout = attribute_layout(data)  # image datasets raise UnsupportedError here
        split = epsilon_split(layout, config.target_epsilon)
        accountant = fresh_accountant(config.target_epsilon)  # confirms the shares compose to the budget
        for share in split.values():
            accountant.spend(share, 0.0)
        # Each owner's randomisation must be secret even from whoever holds every record we keep: never the seed.
        rng = context.randomness.numpy_generator()
        k, label_epsilon = data.n_classes, split[LABEL]
        with PeakMemory("cpu") as memory, Stopwatch() as clock:
            x_sent, y_sent = randomise_records(data.x_train, data.y_train, layout=layout, n_classes=k,
                                               split=split, rng=rng)
            # Validation records are carved from the training records: their owners randomise them too (each
            # record once, on its whole budget). The curator holds only reports, and chooses from them alone.
            x_reports, y_reports = x_sent, y_sent
            if data.x_val is not None and data.y_val is not None and len(data.y_val):
                x_val_sent, y_val_sent = randomise_records(data.x_val, data.y_val, layout=layout, n_classes=k,
                                                           split=split, rng=rng)
                x_reports, y_reports = np.concatenate([x_sent, x_val_sent]), np.concatenate([y_sent, y_val_sent])
            if on_progress:
                on_progress(0.5)
            # Everything below is post-processing of the reports: it costs no privacy.
            flip = flip_matrix(label_epsilon, k)
            prior = debiased_frequencies(y_reports, epsilon=label_epsilon, n_values=k)
            with single_threaded_solvers():
                model = ForwardCorrectedLogisticRegression(flip, C=LOGREG_C, prior=prior).fit(x_sent, y_sent)
                decisions, majority, majority_source = _choose_decisions(
                    x_reports, y_reports, flip=flip, epsilon=label_epsilon, prior=prior, data=data,
                    rng=np.random.default_rng(config.seed))  # fold assignment: not privacy-relevant
        metrics = _measure(model, data, {name: rule["threshold"] for name, rule in decisions.items()})
        if on_progress:
            on_progress(1.0)
        objective = decision_objective(data.info)
        return RunResult(
            **metrics, decision_threshold=decisions[objective]["threshold"] if k == 2 else None,
            train_seconds=clock.seconds, peak_memory_mb=memory.peak_mb, device="cpu",  # NumPy only
            epsilon=spent_epsilon(accountant),
            # Only public quantities: everything here is computed from the randomised reports, never a true record.
            extra={"mechanism": MECHANISM, "estimator": ESTIMATOR, "epsilon_split": split,
                   "label_keep_probability": keep_probability(label_epsilon, k),
                   "debiased_class_prior": [round(float(value), 4) for value in prior],
                   "majority_class": majority, "majority_class_from": majority_source,
                   "decision_objective": objective, "decision_rule": decisions[objective]["rule"],
                   "decisions_chosen_on": (f"{len(y_reports)} randomised records ({len(y_reports) - len(y_sent)} "
                                           f"validation): {FOLDS}-fold out-of-fold scores, k-RR-corrected counts"),
                   "decisions": decisions},
        )


def _declared_rate(data: PreparedDataset) -> float | None:
    """The catalogue's published positive rate (public knowledge, not the rows), where it declares one."""
    rate = (data.info.label or {}).get("expected_positive_rate") if data.info is not None else None
    return None if rate is None else float(rate)


def _choose_decisions(x_reports: np.ndarray, y_reports: np.ndarray, *, flip: np.ndarray, epsilon: float,
                      prior: np.ndarray, data: PreparedDataset, rng: np.random.Generator):
    """Each objective's decision rule, the commonest class and where it came from: from the randomised reports
    (training and validation records) only, never a raw record."""
    k = len(prior)
    if k != 2:  # several classes: the Bayes rule of the corrected posterior, unchecked
        rule = {"threshold": None, "rule": "arg-max of the corrected posterior"}
        return {"accuracy": rule, "balanced_accuracy": dict(rule)}, int(np.argmax(prior)), "debiased class prior"
    majority, source = majority_class(y_reports, epsilon=epsilon, declared_positive_rate=_declared_rate(data))
    scores = out_of_fold_scores(x_reports, y_reports, flip=flip, C=LOGREG_C, prior=prior, rng=rng)  # (n, 2)
    decisions = choose_thresholds(scores[:, 1], y_reports, epsilon=epsilon, prior=prior, majority=majority)
    return decisions, majority, source


def _measure(model, data: PreparedDataset, thresholds: dict[str, float | None]) -> dict[str, float | None]:
    """Accuracy and balanced accuracy at the curator's own rules, and ROC AUC, on the real test rows and (as a
    measurement only, like the test rows) the real validation rows: they choose nothing here."""
    test_scores = model.predict_proba(data.x_test)  # (n_test, classes)
    scoring_tap.report(test_scores)  # an audit reads the model's scores here, as score_metrics does
    result: dict[str, float | None] = {}
    for prefix, x, y in (("", data.x_test, data.y_test), ("val_", data.x_val, data.y_val)):
        if x is None or y is None or len(y) == 0:
            continue
        scores = test_scores if not prefix else model.predict_proba(x)
        for name, scorer in (("accuracy", accuracy_score), ("balanced_accuracy", balanced_accuracy_score)):
            threshold = thresholds[name]
            decided = scores.argmax(axis=1) if threshold is None else (scores[:, 1] >= threshold).astype(int)
            result[f"{prefix}{name}"] = float(scorer(y, decided))
        result[f"{prefix}roc_auc"] = _roc_auc(y, scores)
    return result


def _roc_auc(labels: np.ndarray, scores: np.ndarray) -> float | None:
    try:
        if scores.shape[1] == 2:
            return float(roc_auc_score(labels, scores[:, 1]))
        return float(roc_auc_score(labels, scores, multi_class="ovr", average="macro"))
    except ValueError:  # one class only
        return None
