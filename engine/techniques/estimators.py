"""Plumbing shared by techniques built on scikit-learn-style estimators (diffprivlib models, local DP):
flat feature matrices, public bounds and norms, a fresh diffprivlib budget accountant, and test metrics.
"""

from __future__ import annotations

import math
import warnings
from contextlib import contextmanager
from typing import Iterator

import numpy as np
from diffprivlib import BudgetAccountant
from threadpoolctl import threadpool_limits

from engine.data import PreparedDataset
from engine.data.attributes import attribute_layout, max_row_norm
from engine.techniques.metrics import score_metrics


def flat(x: np.ndarray) -> np.ndarray:
    """(n, ...) -> (n, features) float64, the shape scikit-learn estimators take."""
    return np.asarray(x, dtype=np.float64).reshape(len(x), -1)


def public_bounds(data: PreparedDataset) -> tuple[np.ndarray, np.ndarray]:
    """Per encoded column (lower, upper), from the preprocessing alone: numeric and pixel columns were scaled
    to [-1, 1] with public bounds; one-hot and missing-flag columns are 0/1."""
    lower = -np.ones(data.n_features)
    upper = np.ones(data.n_features)
    if not data.is_image:
        for attribute in attribute_layout(data):
            if attribute.kind != "numeric":
                lower[list(attribute.columns)] = 0.0
    return lower, upper


def public_data_norm(data: PreparedDataset) -> float:
    """The largest L2 norm an encoded row can have (tables: one unit per attribute; images: sqrt(pixels))."""
    return float(np.sqrt(data.n_features)) if data.is_image else max_row_norm(attribute_layout(data))


def fresh_accountant(target_epsilon: float) -> BudgetAccountant:
    """A run's own diffprivlib accountant, capped at the target: a model that would overspend raises BudgetError."""
    return BudgetAccountant(epsilon=target_epsilon, delta=0.0)


def equal_share(epsilon: float, parts: int) -> float:
    """The largest equal share whose `parts` spends, summed in order as BudgetAccountant sums them, stay within
    epsilon. epsilon / parts can overshoot by one ulp, and diffprivlib's own `remaining(k)` can too (0.6.6)."""
    share = epsilon / parts
    while sum([share] * parts) > epsilon:
        share = math.nextafter(share, 0.0)
    return share


def spent_epsilon(accountant: BudgetAccountant) -> float:
    """Total epsilon the accountant recorded (basic sequential composition of pure-epsilon spends)."""
    epsilon, delta = accountant.total()
    assert delta == 0.0, "pure-epsilon techniques must not spend delta"
    return float(epsilon)


@contextmanager
def single_threaded_solvers() -> Iterator[None]:
    """Fit with one BLAS/OpenMP thread, quietly.

    These fits are many small matrix-vector products (Adult: 32k x 104, ~200 L-BFGS steps); with two BLAS
    threads on a busy 2-core machine each product waited on thread wake-ups: dp-logreg on Adult took 14.6 s,
    and 1.4 s with one thread (same result). Sweep workers are one process per core anyway.
    diffprivlib 0.6.6 passes `iprint` to SciPy's L-BFGS-B, which SciPy 1.17 deprecates: noise, not a problem.
    PrivacyLeakWarning is never silenced here (the test suite turns it into an error).
    """
    with threadpool_limits(limits=1), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*`disp` and `iprint` options", category=DeprecationWarning)
        yield


def evaluate_estimator(model, data: PreparedDataset, features=flat) -> dict[str, float | None]:
    """Test and validation metrics (never randomised rows) as training.evaluate gives them; `features` turns
    prepared rows into what the estimator sees."""
    def scores(x: np.ndarray) -> np.ndarray:
        probabilities = model.predict_proba(features(x))  # (n, classes the model saw)
        full = np.zeros((len(x), data.n_classes))
        full[:, np.asarray(model.classes_, dtype=np.int64)] = probabilities  # a class the model never saw scores 0
        return full

    validation = scores(data.x_val) if data.x_val is not None else None
    return score_metrics(scores(data.x_test), data, validation)
