"""The trivial reference and "learned nothing": a model is a point on the frontier only if it beats always
predicting the commonest class.

Always predicting the training rows' commonest class scores its own accuracy (recorded with every run as
trivial_accuracy / trivial_val_accuracy), a balanced accuracy of 1 / classes and a ROC AUC of 0.5. A point
whose mean is not above that by more than its seed noise (twice the spread over seeds, and at least one point)
learned nothing: it is marked wherever it appears and never offered as a Decide candidate.

Configurations are compared on the validation rows (held out of training); the test rows only report the
chosen configuration. Runs recorded before validation rows existed are compared on their test figures.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

MIN_MARGIN = 0.01  # one point: a gain smaller than this is noise even with one seed
NOISE_MULTIPLE = 2.0  # a gain must exceed twice the spread over seeds


def selection_column(runs: pd.DataFrame, metric: str) -> str:
    """The column configurations are compared on: the validation metric when the runs have one."""
    validation = f"val_{metric}"
    if validation in runs and pd.to_numeric(runs[validation], errors="coerce").notna().any():
        return validation
    return metric


def split_name(column: str) -> str:
    return "validation" if column.startswith("val_") else "test"


def trivial_value(metric: str, row: dict | pd.Series, n_classes: int = 2, split: str = "validation") -> float | None:
    """What always predicting the commonest class scores on `metric` (row: a run record or a pooled point)."""
    if metric == "roc_auc":
        return 0.5
    if metric == "balanced_accuracy":
        return 1.0 / n_classes
    value = row.get("trivial_val_accuracy" if split == "validation" else "trivial_accuracy")
    if value is None or (isinstance(value, float) and np.isnan(value)):
        value = row.get("trivial_accuracy")
    return None if value is None or (isinstance(value, float) and np.isnan(value)) else float(value)


def learned_mask(mean: pd.Series, std: pd.Series, trivial: pd.Series) -> pd.Series:
    """True where the mean beats the trivial reference by more than its seed noise (unknown reference: True)."""
    margin = np.maximum(NOISE_MULTIPLE * std.fillna(0.0).to_numpy(float), MIN_MARGIN)
    known = trivial.notna()
    return pd.Series(~known.to_numpy() | (mean.to_numpy(float) - trivial.fillna(0).to_numpy(float) > margin),
                     index=mean.index)


def with_reference(points: pd.DataFrame, metric: str, split: str, n_classes: int = 2,
                   mean: str = "metric_mean", std: str = "metric_std") -> pd.DataFrame:
    """`points` with `trivial` (the reference for this metric and split) and `learned` columns."""
    points = points.copy()
    points["trivial"] = [trivial_value(metric, row, n_classes, split) for _, row in points.iterrows()]
    points["trivial"] = pd.to_numeric(points["trivial"], errors="coerce").astype(float)
    points["learned"] = learned_mask(points[mean], points[std], points["trivial"]) if len(points) else pd.Series(
        dtype=bool)
    return points
