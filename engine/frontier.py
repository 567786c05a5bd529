"""Privacy-utility frontiers: summaries over seeds and Pareto fronts (lower epsilon, higher metric)."""

from __future__ import annotations

import numpy as np
import pandas as pd

METRICS = ("accuracy", "balanced_accuracy", "roc_auc")
# A point of the grid: everything that defines a configuration except the seed.
POINT_COLUMNS = ["dataset", "technique", "model", "target_epsilon", "max_grad_norm", "delta", "accountant",
                 "epochs", "batch_size", "learning_rate"]


def summarise(runs: pd.DataFrame, metric: str = "accuracy") -> pd.DataFrame:
    """Mean and spread over seeds of each configuration's metric and reported epsilon (successful runs only)."""
    if metric not in METRICS:
        raise ValueError(f"Unknown metric {metric!r}: choose one of {', '.join(METRICS)}.")
    ok = runs[runs["status"] == "ok"]
    if ok.empty:
        return pd.DataFrame(columns=[*POINT_COLUMNS, "epsilon", f"{metric}_mean", f"{metric}_std", "seeds",
                                     "train_seconds"])
    grouped = ok.groupby(POINT_COLUMNS, dropna=False)
    summary = grouped.agg(
        epsilon=("epsilon", "max"),  # the worst (largest) epsilon over seeds: what we can promise
        metric_mean=(metric, "mean"), metric_std=(metric, "std"), seeds=("seed", "nunique"),
        train_seconds=("train_seconds", "mean"),
    ).reset_index()
    summary["metric_std"] = summary["metric_std"].fillna(0.0)
    return summary.rename(columns={"metric_mean": f"{metric}_mean", "metric_std": f"{metric}_std"})


def pareto_mask(epsilons: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """True where no other point has epsilon <= and score >= with at least one strictly better."""
    mask = np.ones(len(epsilons), dtype=bool)
    for i in range(len(epsilons)):
        better_or_equal = (epsilons <= epsilons[i]) & (scores >= scores[i])
        strictly = (epsilons < epsilons[i]) | (scores > scores[i])
        mask[i] = not np.any(better_or_equal & strictly)
    return mask


def pareto_front(summary: pd.DataFrame, metric: str = "accuracy") -> pd.DataFrame:
    """Private points on each (dataset, technique, model) front, sorted by epsilon; `on_front` marks them."""
    private = summary[summary["epsilon"].notna()].copy()
    private["on_front"] = False
    for _, index in private.groupby(["dataset", "technique", "model"]).groups.items():
        rows = private.loc[index]
        private.loc[index, "on_front"] = pareto_mask(rows["epsilon"].to_numpy(float), rows[f"{metric}_mean"].to_numpy(float))
    return private.sort_values(["dataset", "technique", "model", "epsilon"]).reset_index(drop=True)


def baselines(summary: pd.DataFrame) -> pd.DataFrame:
    """Non-private reference points (epsilon is null)."""
    return summary[summary["epsilon"].isna()].reset_index(drop=True)
