"""Privacy-utility frontiers: summaries over seeds and Pareto fronts (lower epsilon, higher metric)."""

from __future__ import annotations

import numpy as np
import pandas as pd

METRICS = ("accuracy", "balanced_accuracy", "roc_auc")
# A point of the grid: everything that defines a configuration except the seed.
POINT_COLUMNS = ["dataset", "technique", "model", "target_epsilon", "max_grad_norm", "delta", "accountant",
                 "epochs", "batch_size", "learning_rate"]
# Federated settings define a configuration too (a dirichlet run is not an iid run); absent from frames without them.
FEDERATED_POINT_COLUMNS = ["partition", "alpha", "n_clients", "clients_per_round", "rounds", "local_epochs",
                           "secure_aggregation", "dropout", "mu", "compression", "client"]


def point_columns(runs: pd.DataFrame) -> list[str]:
    """POINT_COLUMNS plus the federated settings present in `runs`."""
    return POINT_COLUMNS + [column for column in FEDERATED_POINT_COLUMNS if column in runs]


def summarise(runs: pd.DataFrame, metric: str = "accuracy") -> pd.DataFrame:
    """Mean and spread over seeds of each configuration's metric and reported epsilon (successful runs only)."""
    if metric not in METRICS:
        raise ValueError(f"Unknown metric {metric!r}: choose one of {', '.join(METRICS)}.")
    ok = runs[runs["status"] == "ok"]
    if ok.empty:
        return pd.DataFrame(columns=[*POINT_COLUMNS, "epsilon", f"{metric}_mean", f"{metric}_std", "seeds",
                                     "train_seconds"])
    grouped = ok.groupby(point_columns(ok), dropna=False)
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
    """Non-private reference points: the `baseline` technique (epsilon is null). Other runs without an epsilon
    (he-inference protects the record scored, not the training data) are not a reference line."""
    return summary[summary["epsilon"].isna() & (summary["technique"] == "baseline")].reset_index(drop=True)


ACCOUNTANT_NAMES = {"prv": "PRV", "rdp": "RDP"}
# Cost columns a run can carry; later techniques add bytes and latency. Label, unit.
COST_METRICS = {
    "train_seconds": ("training time", "s"),
    "peak_memory_mb": ("peak memory", "MB"),
}


def register_cost_metric(column: str, label: str, unit: str) -> None:
    """Techniques that measure another cost (bytes on the wire, latency) make it selectable."""
    COST_METRICS[column] = (label, unit)


def epsilon_label(accountant: str | None, delta: float | None) -> str:
    """'PRV accountant, δ = 1e-05': always said beside an epsilon."""
    if not accountant:
        return "no privacy"
    name = ACCOUNTANT_NAMES.get(accountant, accountant)
    return f"{name} accountant, δ = {delta:.0e}" if delta else f"{name}, pure ε (δ = 0)"


def numeric_runs(runs: pd.DataFrame) -> pd.DataFrame:
    """Numeric columns as floats (a store holding only baselines returns epsilon as objects)."""
    runs = runs.copy()
    for column in ("target_epsilon", "epsilon", "delta", "max_grad_norm", "learning_rate", *METRICS, *COST_METRICS):
        if column in runs:
            runs[column] = pd.to_numeric(runs[column], errors="coerce").astype(float)
    return runs


def frontier_view(runs: pd.DataFrame, dataset: str, metric: str = "accuracy",
                  techniques: list[str] | None = None, models: list[str] | None = None):
    """(private points with `on_front`, non-private baselines) for one dataset, filtered."""
    chosen = numeric_runs(runs[runs["dataset"] == dataset])
    if techniques is not None:
        chosen = chosen[chosen["technique"].isin(techniques) | chosen["epsilon"].isna()]
    if models is not None:
        chosen = chosen[chosen["model"].isin(models)]
    summary = summarise(chosen, metric)
    summary["epsilon"] = pd.to_numeric(summary["epsilon"], errors="coerce").astype(float)
    front = pareto_front(summary, metric)
    finite = np.isfinite(front["epsilon"].to_numpy(float)) & (front["epsilon"].to_numpy(float) > 0)
    return front[finite].reset_index(drop=True), baselines(summary)


def available_costs(runs: pd.DataFrame) -> list[str]:
    """Cost columns with at least one measured value."""
    return [column for column in COST_METRICS if column in runs and pd.to_numeric(runs[column], errors="coerce").notna().any()]


def cost_view(runs: pd.DataFrame, dataset: str, metric: str, cost: str) -> pd.DataFrame:
    """Mean metric and mean cost per configuration (private and non-private)."""
    chosen = numeric_runs(runs[(runs["dataset"] == dataset) & (runs["status"] == "ok")])
    grouped = chosen.groupby(point_columns(chosen), dropna=False)
    return grouped.agg(epsilon=("epsilon", "max"), metric_mean=(metric, "mean"), metric_std=(metric, "std"),
                       cost_mean=(cost, "mean"), seeds=("seed", "nunique")).reset_index()


def clipping_grid(runs: pd.DataFrame, dataset: str, technique: str, model: str, metric: str) -> pd.DataFrame:
    """Mean metric over seeds, rows = clipping norm C, columns = target epsilon (techniques that clip)."""
    chosen = numeric_runs(runs[(runs["dataset"] == dataset) & (runs["technique"] == technique)
                               & (runs["model"] == model) & (runs["status"] == "ok")])
    chosen = chosen[chosen["max_grad_norm"].notna()]
    return chosen.pivot_table(index="max_grad_norm", columns="target_epsilon", values=metric, aggfunc="mean")


def local_global_view(runs: pd.DataFrame, dataset: str, metric: str) -> pd.DataFrame:
    """Mean metric per (privacy model, technique, model, target epsilon) at the epsilons where both local and
    global DP runs exist: the gap local DP costs at equal budget. Empty when either side is missing."""
    ok = numeric_runs(runs[(runs["dataset"] == dataset) & (runs["status"] == "ok")])
    ok = ok[ok["privacy_model"].isin(["local", "global"]) & ok["target_epsilon"].notna()]
    shared = set(ok.loc[ok["privacy_model"] == "local", "target_epsilon"]) & set(
        ok.loc[ok["privacy_model"] == "global", "target_epsilon"])
    ok = ok[ok["target_epsilon"].isin(shared)]
    if ok.empty:
        return pd.DataFrame(columns=["privacy_model", "technique", "model", "target_epsilon", "metric_mean", "metric_std", "seeds"])
    grouped = ok.groupby(["privacy_model", "technique", "model", "target_epsilon"])
    table = grouped.agg(metric_mean=(metric, "mean"), metric_std=(metric, "std"), seeds=("seed", "nunique")).reset_index()
    table["metric_std"] = table["metric_std"].fillna(0.0)
    return table.sort_values(["target_epsilon", "privacy_model", "technique"]).reset_index(drop=True)
