"""Privacy-utility frontiers: summaries over seeds and Pareto fronts (lower epsilon, higher metric).

A point of the frontier is one configuration, pooled over its seeds: the runs sharing a `point_id`
(RunConfig.point_key: every setting but the seed, the data's fingerprint and the engine version), so runs
that differ in any setting (hidden units, a subsample, a federated option) are never pooled.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from engine.analysis.reference import selection_column, split_name, with_reference
from engine.techniques.registry import all_measurements

METRICS = ("accuracy", "balanced_accuracy", "roc_auc")
# Columns describing a point, shown with it where present; the technique's own settings follow from the data.
POINT_COLUMNS = ["dataset", "technique", "model", "target_epsilon", "max_grad_norm", "delta", "accountant",
                 "epochs", "batch_size", "learning_rate", "hidden_units", "train_subsample"]
BASE_COSTS = {"train_seconds": ("training time", "s"), "peak_memory_mb": ("peak memory", "MB")}
NUMERIC_COLUMNS = ("target_epsilon", "epsilon", "delta", "max_grad_norm", "learning_rate", *METRICS,
                   *(f"val_{metric}" for metric in METRICS), "trivial_accuracy", "trivial_val_accuracy")
REFERENCE_COLUMNS = ("trivial_accuracy", "trivial_val_accuracy", "n_classes")


def cost_metrics() -> dict[str, tuple[str, str]]:
    """Selectable costs, column -> (label, unit): time and memory, and what each technique declares as a cost."""
    declared = {m.name: (m.label or m.name, m.unit) for m in all_measurements().values() if m.cost}
    return {**BASE_COSTS, **declared}


def setting_columns(runs: pd.DataFrame) -> list[str]:
    """Every configuration field the runs' records hold (the technique settings included), seed excepted."""
    keys: dict[str, None] = dict.fromkeys(POINT_COLUMNS)
    for config in runs.get("config", pd.Series(dtype=object)):
        if isinstance(config, dict):
            keys.update(dict.fromkeys(config))
    return [key for key in keys if key != "seed" and key in runs]


def numeric_runs(runs: pd.DataFrame) -> pd.DataFrame:
    """Numeric columns as floats (a store holding only baselines returns epsilon as objects); every run has a
    point_id (a record without one stands alone)."""
    runs = runs.copy()
    for column in (*NUMERIC_COLUMNS, *cost_metrics()):
        if column in runs:
            runs[column] = pd.to_numeric(runs[column], errors="coerce").astype(float)
    if "point_id" not in runs:
        runs["point_id"] = runs["run_id"] if "run_id" in runs else pd.Series(dtype=object)
    runs["point_id"] = runs["point_id"].fillna(runs["run_id"]) if "run_id" in runs else runs["point_id"]
    return runs


def pool_points(ok: pd.DataFrame, metric: str, extra: dict | None = None) -> pd.DataFrame:
    """One row per point: its settings (from the lowest seed), the worst epsilon, the mean and spread of the
    `metric` column (a metric name or its val_ column)."""
    ok = ok.sort_values("seed")
    descriptive = {column: (column, "first") for column in (*setting_columns(ok), *REFERENCE_COLUMNS)
                   if column in ok}
    aggregations = {**descriptive, "epsilon": ("epsilon", "max"),  # the worst (largest) epsilon: what we can promise
                    "metric_mean": (metric, "mean"), "metric_std": (metric, "std"), "seeds": ("seed", "nunique"),
                    "run_id": ("run_id", "first"), **(extra or {})}
    table = ok.groupby("point_id", dropna=False, sort=False).agg(**aggregations).reset_index()
    table["metric_std"] = table["metric_std"].fillna(0.0)
    return table


def summarise(runs: pd.DataFrame, metric: str = "accuracy") -> pd.DataFrame:
    """Mean and spread over seeds of each point's metric and reported epsilon (successful runs only), on the
    validation rows when the runs have them (`split` says which), with the trivial reference and `learned`."""
    if metric not in METRICS:
        raise ValueError(f"Unknown metric {metric!r}: choose one of {', '.join(METRICS)}.")
    ok = numeric_runs(runs[runs["status"] == "ok"])
    if ok.empty:
        return pd.DataFrame(columns=["point_id", *POINT_COLUMNS, "epsilon", f"{metric}_mean", f"{metric}_std",
                                     "seeds", "train_seconds", "run_id", "trivial", "learned", "split"])
    column = selection_column(ok, metric)
    summary = pool_points(ok, column, {"train_seconds": ("train_seconds", "mean")})
    summary = with_points_reference(summary, metric, split_name(column))
    return summary.rename(columns={"metric_mean": f"{metric}_mean", "metric_std": f"{metric}_std"})


def with_points_reference(points: pd.DataFrame, metric: str, split: str) -> pd.DataFrame:
    """Pooled points with `trivial`, `learned` and `split` (the rows the metric was measured on)."""
    n_classes = int(points["n_classes"].dropna().iloc[0]) if "n_classes" in points and points["n_classes"].notna().any() else 2
    points = with_reference(points, metric, split, n_classes)
    points["split"] = split
    return points


def pareto_mask(epsilons: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """True where no other point has epsilon <= and score >= with at least one strictly better."""
    mask = np.ones(len(epsilons), dtype=bool)
    for i in range(len(epsilons)):
        better_or_equal = (epsilons <= epsilons[i]) & (scores >= scores[i])
        strictly = (epsilons < epsilons[i]) | (scores > scores[i])
        mask[i] = not np.any(better_or_equal & strictly)
    return mask


def pareto_front(summary: pd.DataFrame, metric: str = "accuracy") -> pd.DataFrame:
    """Private points sorted by epsilon, with two fronts: `on_front`, each (dataset, technique, model)'s own line,
    and `on_global_front`, no point of any technique on the dataset has lower epsilon and a higher metric. A
    point that learned nothing is on neither."""
    private = summary[summary["epsilon"].notna()].copy()
    private["on_front"] = False
    private["on_global_front"] = False
    learned = private["learned"].astype(bool) if "learned" in private else pd.Series(True, index=private.index)
    mean = f"{metric}_mean"
    for keys, front in ((["dataset", "technique", "model"], "on_front"), ("dataset", "on_global_front")):
        for _, index in private[learned].groupby(keys).groups.items():
            rows = private.loc[index]
            private.loc[index, front] = pareto_mask(rows["epsilon"].to_numpy(float), rows[mean].to_numpy(float))
    return private.sort_values(["dataset", "technique", "model", "epsilon"]).reset_index(drop=True)


def baselines(summary: pd.DataFrame) -> pd.DataFrame:
    """Non-private reference points: the `baseline` technique (epsilon is null). Other runs without an epsilon
    (he-inference protects the record scored, not the training data) are not a reference line."""
    return summary[summary["epsilon"].isna() & (summary["technique"] == "baseline")].reset_index(drop=True)


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
    return [column for column in cost_metrics()
            if column in runs and pd.to_numeric(runs[column], errors="coerce").notna().any()]


def cost_view(runs: pd.DataFrame, dataset: str, metric: str, cost: str) -> pd.DataFrame:
    """Mean metric and mean cost per point (private and non-private)."""
    chosen = numeric_runs(runs[(runs["dataset"] == dataset) & (runs["status"] == "ok")])
    if chosen.empty:
        return pd.DataFrame(columns=["point_id", *POINT_COLUMNS, "epsilon", "metric_mean", "metric_std", "cost_mean",
                                     "seeds", "run_id", "trivial", "learned", "split"])
    column = selection_column(chosen, metric)
    return with_points_reference(pool_points(chosen, column, {"cost_mean": (cost, "mean")}), metric,
                                 split_name(column))


def clipping_grid(runs: pd.DataFrame, dataset: str, technique: str, model: str, metric: str) -> pd.DataFrame:
    """Mean metric over seeds, rows = clipping norm C, columns = target epsilon (techniques that clip)."""
    chosen = numeric_runs(runs[(runs["dataset"] == dataset) & (runs["technique"] == technique)
                               & (runs["model"] == model) & (runs["status"] == "ok")])
    chosen = chosen[chosen["max_grad_norm"].notna()]
    return chosen.pivot_table(index="max_grad_norm", columns="target_epsilon", values=selection_column(chosen, metric),
                              aggfunc="mean")


def clipped_models(runs: pd.DataFrame, dataset: str, technique: str, among: list[str]) -> list[str]:
    """The models of `among` that `technique` has successful clipped runs of on `dataset` (all of `among` if none)."""
    ran = runs[(runs["dataset"] == dataset) & (runs["technique"] == technique) & (runs["status"] == "ok")
               & runs["max_grad_norm"].notna()]["model"].unique()
    return [model for model in among if model in set(ran)] or list(among)


def local_global_view(runs: pd.DataFrame, dataset: str, metric: str) -> pd.DataFrame:
    """Mean metric per (trust model, technique, model, target epsilon) at the epsilons where both local and
    central DP runs exist: the gap local DP costs at equal budget. Empty when either side is missing."""
    ok = numeric_runs(runs[(runs["dataset"] == dataset) & (runs["status"] == "ok")])
    ok = ok[ok["trust_model"].isin(["local", "central"]) & ok["target_epsilon"].notna()]
    shared = set(ok.loc[ok["trust_model"] == "local", "target_epsilon"]) & set(
        ok.loc[ok["trust_model"] == "central", "target_epsilon"])
    ok = ok[ok["target_epsilon"].isin(shared)]
    if ok.empty:
        return pd.DataFrame(columns=["trust_model", "technique", "model", "target_epsilon", "metric_mean", "metric_std",
                                     "seeds"])
    grouped = ok.groupby(["trust_model", "technique", "model", "target_epsilon"])
    column = selection_column(ok, metric)
    table = grouped.agg(metric_mean=(column, "mean"), metric_std=(column, "std"), seeds=("seed", "nunique")).reset_index()
    table["metric_std"] = table["metric_std"].fillna(0.0)
    return table.sort_values(["target_epsilon", "trust_model", "technique"]).reset_index(drop=True)
