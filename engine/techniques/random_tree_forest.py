"""A differentially private forest whose rows are assigned to trees independently at random.

diffprivlib's RandomForestClassifier splits the rows between trees by position (`shuffle=False`, the default)
or by one shared permutation: adding a row then moves other rows between trees, and the parallel-composition
argument behind "each tree at the full epsilon" does not hold. Here every row joins one tree drawn uniformly
and independently (secretly, engine.privacy.randomness), so a neighbouring table differs in one tree's rows
only and the forest is epsilon-DP at each tree's epsilon. Each tree is diffprivlib's DecisionTreeClassifier
(data-independent random splits within public bounds, leaf labels by permute-and-flip); the forest predicts
the mean of its trees' class probabilities (post-processing).
"""

from __future__ import annotations

import math

import numpy as np
from diffprivlib import BudgetAccountant
from diffprivlib.models.forest import DecisionTreeClassifier

ROWS_PER_LEAF = 10  # a depth whose leaves hold about this many rows each on average: deeper trees are mostly empty
MAX_DEPTH = 8


def depth_for(n_rows: int, n_trees: int) -> int:
    """A depth that fits the data: 2^depth leaves for n / trees rows, about ROWS_PER_LEAF each (1 to MAX_DEPTH).
    Uses only the number of rows, which DP-SGD's sampling rate treats as public too."""
    per_tree = n_rows / n_trees
    return int(min(MAX_DEPTH, max(1, math.floor(math.log2(max(2.0, per_tree / ROWS_PER_LEAF))))))


class IndependentAssignmentForest:
    """`n_trees` DP decision trees on a random, independent partition of the rows; epsilon-DP as a whole."""

    def __init__(self, *, n_trees: int, max_depth: int, epsilon: float, bounds, classes: np.ndarray,
                 random_state: np.random.RandomState, accountant: BudgetAccountant):
        self.n_trees, self.max_depth, self.epsilon = n_trees, max_depth, epsilon
        self.bounds, self.classes_ = bounds, np.asarray(classes)
        self.random_state, self.accountant = random_state, accountant

    def fit(self, x: np.ndarray, y: np.ndarray) -> "IndependentAssignmentForest":
        assignment = self.random_state.randint(self.n_trees, size=len(x))  # (n,) a tree per row, independently
        lower, upper = self.bounds
        self.trees_ = []
        for tree_index in range(self.n_trees):
            rows = assignment == tree_index
            x_tree, y_tree = x[rows], y[rows]
            if len(x_tree) == 0:  # no row drew this tree: fit it on one public row (the bounds' centre)
                x_tree, y_tree = ((np.asarray(lower) + np.asarray(upper)) / 2)[None, :], self.classes_[:1]
            tree = DecisionTreeClassifier(max_depth=self.max_depth, epsilon=self.epsilon, bounds=self.bounds,
                                          classes=self.classes_, random_state=self.random_state,
                                          accountant=BudgetAccountant())  # each tree its own: they run in parallel
            self.trees_.append(tree.fit(x_tree, y_tree))
        self.accountant.spend(self.epsilon, 0.0)  # the trees see disjoint rows: parallel composition, epsilon once
        return self

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        return np.mean([tree.predict_proba(x) for tree in self.trees_], axis=0)  # (n, classes)
