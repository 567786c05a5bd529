"""Choosing a budget: rank points under constraints, and gather the numbers a decision rests on.

Points are ranked on the validation rows; the test rows report only the chosen point. A point that learned
nothing (engine.analysis.reference) is never a candidate. The figure that covers releasing the chosen model is
the composition of every private run on the dataset (any subsample or version of it), or, when the choice is
made within one random search (`scope`, one target epsilon's search), that search's tuning-aware epsilon. The sentences that explain a
decision live in engine.present.sentences; this module only computes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import pandas as pd

from engine.analysis.frontier import METRICS, POINT_COLUMNS, cost_metrics, numeric_runs, pool_points, with_points_reference
from engine.analysis.reference import selection_column, split_name, trivial_value
from engine.errors import ConfigError
from engine.privacy.composition import Composition, compose_runs
from engine.privacy.tuning import tuning_aware_epsilon
from engine.runner.search import search_epsilon

FALSE_POSITIVE_RATES = (0.001, 0.01, 0.05)  # where the membership-test bound is spelled out
DEFAULT_COMPOSITION_DELTA = 1e-5  # for a search of pure-DP runs only (delta 0): the composition still needs one


@dataclass(frozen=True)
class DecisionConstraints:
    dataset: str
    metric: str = "accuracy"
    max_epsilon: float | None = None  # largest acceptable epsilon
    min_metric: float | None = None  # smallest acceptable metric value (e.g. accuracy 0.84)
    max_points_lost: float | None = None  # at most this many points below the non-private baseline
    cost: str = "train_seconds"
    max_cost: float | None = None
    scope: str | None = None  # None: every run on the dataset; else one random search's id

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
        if self.max_points_lost is not None and not self.max_points_lost >= 0:
            raise ConfigError(f"The points one may lose must be >= 0, got {self.max_points_lost}.")
        return self


def in_scope(runs: pd.DataFrame, dataset: str, scope: str | None) -> pd.DataFrame:
    """The runs a choice is made among: the dataset's, or one search's trials (and the dataset's baselines)."""
    chosen = runs[runs["dataset"] == dataset]
    if scope is not None:
        search = chosen["search"] if "search" in chosen else pd.Series(None, index=chosen.index)
        chosen = chosen[(search == scope) | chosen["epsilon"].isna()]
    return chosen


def baseline_mean(runs: pd.DataFrame, dataset: str, model: str, column: str) -> tuple[float | None, float | None]:
    baseline = runs[(runs["dataset"] == dataset) & (runs["status"] == "ok") & runs["epsilon"].isna()
                    & (runs["technique"] == "baseline") & (runs["model"] == model)]
    if baseline.empty or column not in baseline or baseline[column].isna().all():
        return None, None
    values = baseline[column].dropna()
    return float(values.mean()), float(values.std()) if len(values) > 1 else 0.0


def rank_points(runs: pd.DataFrame, constraints: DecisionConstraints) -> pd.DataFrame:
    """Every private point on the dataset (in scope), pooled over seeds on the validation rows, with `learned`,
    `meets` (every constraint holds), `points_lost` and, for each, why it is not a candidate (`excluded`)."""
    constraints.validate()
    metric, cost = constraints.metric, constraints.cost
    ok = numeric_runs(in_scope(runs, constraints.dataset, constraints.scope))
    ok_all = numeric_runs(runs)
    ok = ok[(ok["status"] == "ok") & ok["epsilon"].notna()]
    if ok.empty:
        return pd.DataFrame(columns=["point_id", *POINT_COLUMNS, "epsilon", "metric_mean", "metric_std", "cost_mean",
                                     "seeds", "run_id", "trivial", "learned", "points_lost", "excluded", "split"])
    column = selection_column(ok, metric)
    table = with_points_reference(pool_points(ok, column, {"cost_mean": (cost, "mean")}), metric, split_name(column))
    lost = []
    for _, point in table.iterrows():
        reference, _ = baseline_mean(ok_all, constraints.dataset, point["model"], column)
        lost.append(None if reference is None else (reference - point["metric_mean"]) * 100)
    table["points_lost"] = pd.to_numeric(pd.Series(lost, index=table.index), errors="coerce")
    reasons = pd.Series("", index=table.index)
    reasons[~table["learned"].astype(bool)] = "learned nothing: no better than always predicting the commonest class"
    checks = [(constraints.max_epsilon, lambda: table["epsilon"] > constraints.max_epsilon, "epsilon above the limit"),
              (constraints.min_metric, lambda: table["metric_mean"] < constraints.min_metric, f"{metric} below the limit"),
              (constraints.max_points_lost, lambda: table["points_lost"] > constraints.max_points_lost,
               "loses more points than allowed against the baseline"),
              (constraints.max_cost, lambda: table["cost_mean"] > constraints.max_cost, "cost above the limit")]
    for limit, failed, reason in checks:
        if limit is not None:
            reasons[(reasons == "") & failed().fillna(False)] = reason
    table["excluded"] = reasons
    return table.sort_values(["metric_mean", "epsilon"], ascending=[False, True]).reset_index(drop=True)


def rank_candidates(runs: pd.DataFrame, constraints: DecisionConstraints) -> pd.DataFrame:
    """Private points that learned and meet every constraint: best validation metric first, then lowest epsilon.
    `run_id` is the point's representative run (lowest seed), the one exported."""
    ranked = rank_points(runs, constraints)
    return ranked[ranked["excluded"] == ""].reset_index(drop=True)


@dataclass(frozen=True)
class DecisionSummary:
    """The numbers a decision rests on; engine.present.sentences says them in words."""

    run: dict[str, Any]
    metric: str
    epsilon: float  # this configuration alone (the largest over its seeds)
    delta: float
    headline_epsilon: float  # what covers releasing the chosen model: composed or tuning-aware
    headline_basis: str  # "composition" or "random search"
    odds_factor: float  # e^headline_epsilon
    membership_bounds: dict[float, float]  # false-positive rate -> largest possible true-positive rate
    metric_mean: float  # on the test rows: the chosen point's report
    metric_std: float
    validation_mean: float | None  # what it was chosen on
    seeds: int
    trivial: float | None  # always predicting the commonest class, on the test rows
    baseline_mean: float | None  # non-private: covered by no epsilon
    baseline_std: float | None
    given_up_points: float | None  # (baseline - chosen) x 100 on the test rows
    composition: Composition
    tuning_epsilon: float | None = None  # the scope's search: releasing its best trial only
    search_trials: float | None = None  # its mean number of trials
    scope: str | None = None
    search_epsilon: float | None = None  # the target epsilon the scope's search was made at (None: an older search
    # over every epsilon of its grid)
    preprocessing_epsilon: float = 0.0  # the table's DP preprocessing (an upload's DP bounds), in both figures


def membership_bound(epsilon: float, delta: float, false_positive_rate: float) -> float:
    """Largest true-positive rate any membership test can reach: min(1, e^eps x FPR + delta)."""
    return min(1.0, math.exp(epsilon) * false_positive_rate + delta)


def summarise_decision(runs: pd.DataFrame, records: list[dict[str, Any]], run_id: str, metric: str = "accuracy", *,
                       scope: str | None = None, search_means: dict[str, float] | None = None,
                       extra_releases=()) -> DecisionSummary:
    """The numbers for the point of `run_id` (its seeds pooled) against the trivial reference and the baseline,
    and the figure that covers releasing it. `records`: the store's records; `extra_releases`: other DP releases
    on the same rows, (description, epsilon, delta), such as an uploaded table's DP preprocessing."""
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
    test = same_point[metric].dropna()
    validation_column = selection_column(same_point, metric)
    validation = same_point[validation_column].dropna() if validation_column != metric else pd.Series(dtype=float)
    baseline, baseline_std = baseline_mean(runs, run["dataset"], run["model"], metric)
    # Every run that touched any of these rows: the dataset under any fingerprint (subsamples, versions).
    same_data = [r for r in records if r.get("dataset") == run["dataset"]]
    composition_delta = delta if delta > 0 else DEFAULT_COMPOSITION_DELTA
    composition = compose_runs(same_data, delta=composition_delta, extra_releases=extra_releases)
    tuning = trials = None
    if scope is not None:
        if run.get("search") != scope:
            raise ConfigError(f"Run {run_id} is not a trial of the random search {scope}: its tuning-aware figure "
                              "covers only a model chosen among that search's trials. Choose among every run, or "
                              "pick one of the search's trials.")
        trials = (search_means or {}).get(scope)
        # The search the model was chosen in: per target epsilon, its trials are all at the run's own epsilon, so
        # the figure is that epsilon's search alone (engine.runner.search), never mixed with larger budgets.
        searched = [r for r in same_data if r.get("search") == scope]
        # The table's DP preprocessing shaped every trial: the chosen model's release composes with it (basic
        # composition: epsilons add, and its delta comes out of the search's).
        extra_epsilon = sum(float(e) for _, e, _ in extra_releases)
        search_delta = composition_delta - sum(float(d) for _, _, d in extra_releases)
        if trials is not None and searched and search_delta > 0:
            tuning = tuning_aware_epsilon(searched, mean_trials=trials, delta=search_delta)
            tuning = None if tuning is None else tuning + extra_epsilon
    # Both bound releasing the chosen model (the tuning-aware one only if nothing else of the search is released):
    # the smaller holds. With few trials, RDP's looseness can make the tuning-aware figure the larger.
    if tuning is not None and tuning < composition.epsilon:
        headline, basis = tuning, "random search"
    else:
        headline, basis = composition.epsilon, "composition"
    n_classes = int(run.get("n_classes") or 2) if not pd.isna(run.get("n_classes")) else 2
    return DecisionSummary(
        run=run, metric=metric, epsilon=epsilon, delta=delta, headline_epsilon=headline, headline_basis=basis,
        odds_factor=math.exp(headline),
        membership_bounds={fpr: membership_bound(headline, composition_delta, fpr) for fpr in FALSE_POSITIVE_RATES},
        metric_mean=float(test.mean()), metric_std=float(test.std()) if len(test) > 1 else 0.0,
        validation_mean=float(validation.mean()) if len(validation) else None,
        seeds=int(same_point["seed"].nunique()), trivial=trivial_value(metric, run, n_classes, "test"),
        baseline_mean=baseline, baseline_std=baseline_std,
        given_up_points=None if baseline is None else (baseline - float(test.mean())) * 100,
        composition=composition, tuning_epsilon=tuning, search_trials=trials, scope=scope,
        search_epsilon=search_epsilon(scope) if scope is not None else None,
        preprocessing_epsilon=sum(float(e) for _, e, _ in extra_releases),
    )
