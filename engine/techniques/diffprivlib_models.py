"""Classic central-DP models from diffprivlib: `dp-logreg`, `dp-naive-bayes`, `dp-forest`.

Each is pure epsilon-DP (delta = 0) and trains once on the whole training set; no clipping norm, no
epochs. Bounds and norms come from the public preprocessing (engine.techniques.estimators), never from the
rows, so diffprivlib has nothing to estimate and raises no PrivacyLeakWarning (the test suite turns that
warning into an error). Each run gets a fresh diffprivlib BudgetAccountant capped at the target epsilon;
the epsilon recorded is what that accountant says was spent.

Settings that are not sweep axes (C, the forest's size) are fixed below and recorded with every run.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Any, ClassVar

import numpy as np
from diffprivlib import BudgetAccountant
from diffprivlib.models import GaussianNB, LogisticRegression

from engine.config import RunConfig
from engine.data import PreparedDataset
from engine.data.attributes import attribute_layout, compact_bounds, compact_table
from engine.measure import PeakMemory, Stopwatch
from engine.techniques.base import Measurement, RunContext, RunProgress, RunResult, Technique
from engine.techniques.estimators import (evaluate_estimator, flat, fresh_accountant, public_bounds,
                                          public_data_norm, single_threaded_solvers, spent_epsilon)
from engine.techniques.random_tree_forest import IndependentAssignmentForest, depth_for

LOGREG_C = 1.0  # inverse L2 strength; objective perturbation needs the regulariser (diffprivlib's default)
LOGREG_MAX_ITER = 300  # Adult converges in under 200 iterations; 100 stopped early at epsilon 10
# diffprivlib's forest picks a random attribute and threshold per split and gives each tree a disjoint
# share of the rows. 10 trees of depth 8 over one column per original attribute did best among the few
# settings tried on Adult and Credit (benchmarks/README.md); one-hot columns left most splits on rare categories.
FOREST_TREES = 10  # the depth follows the data size (random_tree_forest.depth_for)


class DiffprivlibTechnique(Technique):
    """Fit one diffprivlib estimator on the training set and score it on the test set."""

    uses_epsilon = True
    uses_clipping = False
    pure_dp = True
    trust_model = "central"
    measurements = (Measurement("mechanism", str, "mechanism"),
                    Measurement("estimator", str, "estimator"))  # the model trained, not the sweep's `model`
    estimator_name: ClassVar[str]
    mechanism: ClassVar[str]

    @abstractmethod
    def build(self, config: RunConfig, data: PreparedDataset, accountant: BudgetAccountant,
              random_state: np.random.RandomState) -> Any:
        """The unfitted estimator, drawing from the secret `random_state` and spending through `accountant`."""

    def features(self, x: np.ndarray, data: PreparedDataset) -> np.ndarray:
        """What the estimator sees; the same transform is applied to the test set."""
        return flat(x)

    def fit(self, model: Any, x: np.ndarray, data: PreparedDataset) -> None:
        model.fit(x, data.y_train)

    def fixed_settings(self, model: Any) -> dict[str, Any]:
        """Fixed settings worth recording with the run (public by construction)."""
        return {}

    @abstractmethod
    def split(self, config: RunConfig, data: PreparedDataset) -> dict[str, float]:
        """How the model spends epsilon inside, as diffprivlib implements it (recorded; the accountant enforces)."""

    def run(self, config: RunConfig, data: PreparedDataset, *, context: RunContext,
            on_progress: RunProgress | None = None) -> RunResult:
        accountant = fresh_accountant(config.target_epsilon)
        model = self.build(config, data, accountant, context.randomness.random_state())
        with PeakMemory("cpu") as memory, Stopwatch() as clock, single_threaded_solvers():
            self.fit(model, self.features(data.x_train, data), data)
        metrics = evaluate_estimator(model, data, lambda x: self.features(x, data))
        if on_progress:
            on_progress(1.0)
        return RunResult(
            **metrics, train_seconds=clock.seconds, peak_memory_mb=memory.peak_mb, device="cpu",  # NumPy only
            epsilon=spent_epsilon(accountant),
            extra={"mechanism": self.mechanism, "estimator": self.estimator_name,
                   "epsilon_split": self.split(config, data), **self.fixed_settings(model)},
        )


class DPLogisticRegression(DiffprivlibTechnique):
    name = "dp-logreg"
    description = "diffprivlib LogisticRegression: objective perturbation (Chaudhuri et al. 2011), pure epsilon-DP."
    estimator_name = "diffprivlib LogisticRegression"
    fixed_model = "logreg"
    mechanism = ("objective perturbation: a random linear term (diffprivlib Vector mechanism) added to the "
                 "L2-regularised logistic loss, rows clipped to the public data_norm (Chaudhuri, Monteleoni & "
                 "Sarwate 2011); one-vs-rest with epsilon / classes each for more than two classes")

    def build(self, config, data, accountant, random_state):
        return LogisticRegression(epsilon=config.target_epsilon, data_norm=public_data_norm(data), C=LOGREG_C,
                                  max_iter=LOGREG_MAX_ITER, random_state=random_state, accountant=accountant)

    def split(self, config, data):
        classes = 1 if data.n_classes == 2 else data.n_classes  # OvR: parallel fits, sequential composition
        return {f"objective perturbation, class {c}": config.target_epsilon / classes for c in range(classes)}

    def fixed_settings(self, model):
        return {"data_norm": float(model.data_norm), "C": LOGREG_C}


class DPNaiveBayes(DiffprivlibTechnique):
    name = "dp-naive-bayes"
    description = "diffprivlib GaussianNB: noisy class counts, means and variances (Vaidya et al. 2013)."
    estimator_name = "diffprivlib GaussianNB"
    fixed_model = "naive-bayes"
    mechanism = ("noisy sufficient statistics: class counts by the truncated geometric mechanism (epsilon/3), "
                 "per-class feature means by truncated Laplace (epsilon/3 over the features) and variances by "
                 "bounded-domain Laplace (epsilon/3 over the features), public bounds (Vaidya et al. 2013)")

    def build(self, config, data, accountant, random_state):
        return GaussianNB(epsilon=config.target_epsilon, bounds=public_bounds(data), random_state=random_state,
                          accountant=accountant)

    def fit(self, model, x, data):
        # partial_fit with the catalogue's classes: fit() would read the class list from the private labels.
        model.partial_fit(x, data.y_train, classes=np.arange(data.n_classes))

    def split(self, config, data):
        third = config.target_epsilon / 3
        return {"class counts": third, "feature means": third, "feature variances": third}


class DPRandomForest(DiffprivlibTechnique):
    name = "dp-forest"
    description = ("A forest of diffprivlib DP decision trees, each row assigned to one tree independently at random: "
                   "epsilon covers the whole forest (parallel composition over the trees).")
    estimator_name = "forest of diffprivlib DecisionTreeClassifier"
    fixed_model = "forest"
    mechanism = ("random decision forest: every row joins one tree drawn uniformly and independently (secret "
                 "randomness), data-independent random splits within public bounds, leaf labels by permute-and-flip "
                 "(McKenna & Sheldon 2020) at the full epsilon per tree; neighbouring tables differ in one tree only")

    def features(self, x, data):
        if data.is_image:
            return flat(x)
        return compact_table(x, attribute_layout(data))  # (n, attributes): one column per original attribute

    def build(self, config, data, accountant, random_state):
        lower, upper = public_bounds(data) if data.is_image else compact_bounds(attribute_layout(data))
        return IndependentAssignmentForest(n_trees=FOREST_TREES, max_depth=depth_for(data.n_train, FOREST_TREES),
                                           epsilon=config.target_epsilon, bounds=(lower, upper),
                                           classes=np.arange(data.n_classes), random_state=random_state,
                                           accountant=accountant)

    def split(self, config, data):
        return {"leaf labels (permute-and-flip), one tree per row": config.target_epsilon}

    def fixed_settings(self, model):
        return {"n_estimators": model.n_trees, "max_depth": model.max_depth}
