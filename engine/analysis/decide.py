"""Choosing a budget: rank points under constraints, and gather the numbers a decision rests on.

The sentences that explain a decision live in engine.present.sentences; this module only computes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import pandas as pd

from engine.analysis.frontier import METRICS, POINT_COLUMNS, pool_points, cost_metrics, numeric_runs
from engine.errors import ConfigError
from engine.privacy.composition import Composition, compose_runs

FALSE_POSITIVE_RATES = (0.001, 0.01, 0.05)  # where the membership-test bound is spelled out


@dataclass(frozen=True)
class DecisionConstraints:
    dataset: str
    metric: str = "accuracy"
    max_epsilon: float | None = None  # largest acceptable epsilon
    min_metric: float | None = None  # smallest acceptable metric value (e.g. accuracy 0.84)
    cost: str = "train_seconds"
    max_cost: float | None = None

    def validate(self) -> "DecisionConstraints":
        if self.metric not in METRICS:
            raise ConfigError(f"Unknown metric {self.metric!r}: choose one of {', '.join(METRICS)}.")
        costs = cost_metrics()
        if self.cost not in costs:
            raise ConfigError(f"Unknown cost {self.cost!r}: choose one of {', '.join(costs)}.")
        if self.max_epsilon is not None and not self.max_epsilon > 0:
            raise ConfigError(f"The largest acceptable epsilon must be positive, got {self.max_epsilon}.")
        if self.min_metric is not None and not 0 <= self.min_metric <= 1:
            raise ConfigError(f"The smallest acceptable {self.metric} must lie in [0, 1], got {self.min_metric}.")
        return self


def rank_candidates(runs: pd.DataFrame, constraints: DecisionConstraints) -> pd.DataFrame:
    """Private points (mean over seeds) that meet every constraint: best metric first, then lowest epsilon.

    `run_id` is the point's representative run (lowest seed), the one exported.
    """
    constraints.validate()
    ok = numeric_runs(runs[(runs["dataset"] == constraints.dataset) & (runs["status"] == "ok")])
    ok = ok[ok["epsilon"].notna()]
    if ok.empty:
        return pd.DataFrame(columns=["point_id", *POINT_COLUMNS, "epsilon", "metric_mean", "metric_std", "cost_mean",
                                     "seeds", "run_id"])
    table = pool_points(ok, constraints.metric, {"cost_mean": (constraints.cost, "mean")})
    keep = pd.Series(True, index=table.index)
    if constraints.max_epsilon is not None:
        keep &= table["epsilon"] <= constraints.max_epsilon
    if constraints.min_metric is not None:
        keep &= table["metric_mean"] >= constraints.min_metric
    if constraints.max_cost is not None:
        keep &= table["cost_mean"] <= constraints.max_cost
    ranked = table[keep].sort_values(["metric_mean", "epsilon"], ascending=[False, True])
    return ranked.reset_index(drop=True)


@dataclass(frozen=True)
class DecisionSummary:
    """The numbers a decision rests on; engine.present.sentences says them in words."""

    run: dict[str, Any]
    metric: str
    epsilon: float
    delta: float
    odds_factor: float  # e^epsilon
    membership_bounds: dict[float, float]  # false-positive rate -> largest possible true-positive rate
    metric_mean: float
    metric_std: float
    seeds: int
    baseline_mean: float | None
    baseline_std: float | None
    given_up_points: float | None  # (baseline - chosen) x 100
    composition: Composition


def membership_bound(epsilon: float, delta: float, false_positive_rate: float) -> float:
    """Largest true-positive rate any membership test can reach: min(1, e^eps x FPR + delta)."""
    return min(1.0, math.exp(epsilon) * false_positive_rate + delta)


def summarise_decision(runs: pd.DataFrame, records: list[dict[str, Any]], run_id: str,
                       metric: str = "accuracy") -> DecisionSummary:
    """The numbers for the point of `run_id` (its seeds pooled), against the baseline and against the composed
    cost of every private run on the same data (`records`: the store's records)."""
    runs = numeric_runs(runs)
    chosen = runs[runs["run_id"] == run_id]
    if chosen.empty:
        raise ConfigError(f"No run {run_id!r} in the store: pick one from the candidates table.")
    run = chosen.iloc[0].to_dict()
    if pd.isna(run.get("epsilon")):
        raise ConfigError("That run has no privacy guarantee (a non-private baseline): choose a private run.")
    same_point = runs[(runs["status"] == "ok") & (runs["point_id"] == run["point_id"])]
    epsilon = float(same_point["epsilon"].max())
    delta = float(run["delta"] or 0.0)
    values = same_point[metric]
    baseline = runs[(runs["dataset"] == run["dataset"]) & (runs["status"] == "ok") & runs["epsilon"].isna()
                    & (runs["technique"] == "baseline") & (runs["model"] == run["model"])]
    baseline_mean = float(baseline[metric].mean()) if not baseline.empty else None
    baseline_std = float(baseline[metric].std()) if len(baseline) > 1 else (0.0 if not baseline.empty else None)
    same_data = [r for r in records if r.get("dataset") == run["dataset"]
                 and r.get("dataset_fingerprint") == run.get("dataset_fingerprint")]
    composition = compose_runs(same_data, delta=delta if delta > 0 else 1e-5)
    return DecisionSummary(
        run=run, metric=metric, epsilon=epsilon, delta=delta, odds_factor=math.exp(epsilon),
        membership_bounds={fpr: membership_bound(epsilon, delta, fpr) for fpr in FALSE_POSITIVE_RATES},
        metric_mean=float(values.mean()), metric_std=float(values.std()) if len(values) > 1 else 0.0,
        seeds=int(same_point["seed"].nunique()), baseline_mean=baseline_mean, baseline_std=baseline_std,
        given_up_points=None if baseline_mean is None else (baseline_mean - float(values.mean())) * 100,
        composition=composition,
    )
