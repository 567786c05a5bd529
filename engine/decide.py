"""Choosing a budget: rank configurations under constraints, and explain the choice to a compliance audience."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from engine.errors import ConfigError
from engine.frontier import COST_METRICS, METRICS, POINT_COLUMNS, epsilon_label, numeric_runs, point_columns
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
        if self.cost not in COST_METRICS:
            raise ConfigError(f"Unknown cost {self.cost!r}: choose one of {', '.join(COST_METRICS)}.")
        if self.max_epsilon is not None and not self.max_epsilon > 0:
            raise ConfigError(f"The largest acceptable epsilon must be positive, got {self.max_epsilon}.")
        if self.min_metric is not None and not 0 <= self.min_metric <= 1:
            raise ConfigError(f"The smallest acceptable {self.metric} must lie in [0, 1], got {self.min_metric}.")
        return self


def rank_candidates(runs: pd.DataFrame, constraints: DecisionConstraints) -> pd.DataFrame:
    """Private configurations (mean over seeds) that meet every constraint: best metric first, then lowest epsilon.

    `run_id` is the configuration's representative run (lowest seed), the one exported.
    """
    constraints.validate()
    metric, cost = constraints.metric, constraints.cost
    ok = numeric_runs(runs[(runs["dataset"] == constraints.dataset) & (runs["status"] == "ok")])
    ok = ok[ok["epsilon"].notna()]
    if ok.empty:
        return pd.DataFrame(columns=[*POINT_COLUMNS, "epsilon", "metric_mean", "metric_std", "cost_mean", "seeds", "run_id"])
    ok = ok.sort_values("seed")
    table = ok.groupby(point_columns(ok), dropna=False).agg(
        epsilon=("epsilon", "max"), metric_mean=(metric, "mean"), metric_std=(metric, "std"),
        cost_mean=(cost, "mean"), seeds=("seed", "nunique"), run_id=("run_id", "first"),
    ).reset_index()
    table["metric_std"] = table["metric_std"].fillna(0.0)
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
    """Everything the plain-language summary says, as numbers and as sentences."""

    run: dict[str, Any]
    metric: str
    epsilon: float
    delta: float
    accountant_label: str
    odds_factor: float  # e^epsilon
    membership_bounds: dict[float, float]  # false-positive rate -> largest possible true-positive rate
    metric_mean: float
    metric_std: float
    seeds: int
    baseline_mean: float | None
    baseline_std: float | None
    given_up_points: float | None  # (baseline - chosen) x 100
    composition: Composition
    sentences: dict[str, str] = field(default_factory=dict)


def membership_bound(epsilon: float, delta: float, false_positive_rate: float) -> float:
    """Largest true-positive rate any membership test can reach: min(1, e^eps x FPR + delta)."""
    return min(1.0, math.exp(epsilon) * false_positive_rate + delta)


def _percent(value: float) -> str:
    return f"{value * 100:.3g}%"


def summarise_decision(runs: pd.DataFrame, records: list[dict[str, Any]], run_id: str,
                       metric: str = "accuracy") -> DecisionSummary:
    """The compliance summary for the configuration of `run_id` (its seeds pooled), against the baseline and
    against the composed cost of every private run on the same data (`records`: the store's records)."""
    runs = numeric_runs(runs)
    chosen = runs[runs["run_id"] == run_id]
    if chosen.empty:
        raise ConfigError(f"No run {run_id!r} in the store: pick one from the candidates table.")
    run = chosen.iloc[0].to_dict()
    if pd.isna(run.get("epsilon")):
        raise ConfigError("That run has no privacy guarantee (a non-private baseline): choose a private run.")
    same_point = runs[(runs["status"] == "ok")]
    for column in point_columns(runs):
        value = run[column]
        same_point = same_point[same_point[column].isna()] if pd.isna(value) else same_point[same_point[column] == value]
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
    summary = DecisionSummary(
        run=run, metric=metric, epsilon=epsilon, delta=delta,
        accountant_label=epsilon_label(run.get("accountant"), delta), odds_factor=math.exp(epsilon),
        membership_bounds={fpr: membership_bound(epsilon, delta, fpr) for fpr in FALSE_POSITIVE_RATES},
        metric_mean=float(values.mean()), metric_std=float(values.std()) if len(values) > 1 else 0.0,
        seeds=int(same_point["seed"].nunique()), baseline_mean=baseline_mean, baseline_std=baseline_std,
        given_up_points=None if baseline_mean is None else (baseline_mean - float(values.mean())) * 100,
        composition=composition,
    )
    return _with_sentences(summary)


def _with_sentences(s: DecisionSummary) -> DecisionSummary:
    label = s.metric.replace("_", " ")
    bounds = "; ".join(f"at a false-positive rate of {_percent(fpr)}, at most {_percent(tpr)} true positives"
                       for fpr, tpr in s.membership_bounds.items())
    delta_text = f"except with probability δ = {s.delta:.0e}" if s.delta else "with no exception (δ = 0)"
    budget = (
        f"**What ε = {s.epsilon:.3g} means** ({s.accountant_label}). Whatever anyone believed before about whether "
        f"a given person's record was used to train this model, seeing the model can change those odds by at most "
        f"a factor of e^ε = **×{s.odds_factor:.3g}**, {delta_text}. Equivalently, no membership test — however "
        f"clever, whatever else its author knows — can have a true-positive rate above e^ε × its false-positive rate "
        f"+ δ: {bounds}. This covers the people in the training data; it says nothing about the records the model "
        f"later scores."
    )
    spread = f"± {s.metric_std * 100:.2g} points over {s.seeds} seed{'s' if s.seeds != 1 else ''}"
    if s.given_up_points is None:
        given_up = (f"**What was given up.** {label.capitalize()} {s.metric_mean:.4f} ({spread}). No non-private "
                    f"baseline of the same model was measured on this data, so the cost of privacy cannot be stated: "
                    f"add the `baseline` technique to a sweep.")
    else:
        direction = "below" if s.given_up_points >= 0 else "above"
        given_up = (
            f"**What was given up.** {abs(s.given_up_points):.2g} points of {label} {direction} the same model trained "
            f"without privacy: {s.metric_mean * 100:.2f}% ({spread}) against {s.baseline_mean * 100:.2f}% "
            f"(± {(s.baseline_std or 0) * 100:.2g} points). Differences smaller than the spread over seeds are noise."
        )
    c = s.composition
    search = (
        f"**What the search itself spent.** This run alone: ε = {s.epsilon:.3g} ({s.accountant_label}). The whole "
        f"sweep it was chosen from — {c.n_private} private run{'s' if c.n_private != 1 else ''} trained on the same "
        f"data — composed: ε = **{c.epsilon:.3g}** at δ = {c.delta:.0e} ({c.accountant}). The first figure applies "
        f"only if this configuration was fixed without looking at results on this data (chosen in advance, or tuned "
        f"on other data) and the model is trained once. Here it was picked by comparing runs trained on the same "
        f"private records, so the figure that holds for releasing the chosen model is the composed one — or retrain "
        f"this configuration once on fresh data, or tune on public data, to claim ε = {s.epsilon:.3g}."
    )
    if c.n_non_private:
        plural = c.n_non_private != 1
        search += (f" The {c.n_non_private} non-private baseline run{'s carry' if plural else ' carries'} no guarantee "
                   f"at all: use {'them' if plural else 'it'} for comparison only, never release {'them' if plural else 'it'}.")
    s.sentences.update(budget=budget, given_up=given_up, search=search, protects=protects_sentence(s.run))
    return s


def protects_sentence(run: dict[str, Any]) -> str:
    """What the chosen technique protects, and what it leaves open, in plain words."""
    technique, unit = run.get("technique", ""), run.get("privacy_unit")
    if isinstance(run.get("protects"), str) and run["protects"]:
        covered = run["protects"]
    elif run.get("privacy_model") == "local":
        covered = ("each person's record before it leaves them: it is randomised at the source, so no one — not even "
                   "whoever trains the model — sees the raw values")
    elif isinstance(unit, str) and unit:
        covered = (f"where the raw data lives (it never leaves each silo), and with DP every {unit} whose data "
                   f"trained the model ({unit}-level ε)")
    else:
        covered = "the people in the training data (record-level ε): what the released model reveals about any one of them"
    return (f"**What {technique} protects.** {covered[0].upper() + covered[1:]}. It does not hide the record being "
            f"scored from whoever runs the model (encrypted inference does that), nor keep raw data in its silo "
            f"(federated learning does that)." if "scored" not in covered else
            f"**What {technique} protects.** {covered[0].upper() + covered[1:]}.")
