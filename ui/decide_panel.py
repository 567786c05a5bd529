"""The Decide page's pieces: the constraints, the candidates table (the choice follows the run id, never the row
position), the points that are not candidates and why, and the headline figures of a decision."""

from __future__ import annotations

import hashlib

import pandas as pd
import streamlit as st

from engine.analysis.decide import DecisionConstraints, DecisionSummary
from engine.present.labels import METRIC_LABELS, epsilon_label, search_label

CHOSEN_KEY = "decide_run_id"


def constraints_form(dataset: str, metric: str, costs: list[str], costs_known: dict, searches: dict) -> DecisionConstraints:
    label = METRIC_LABELS[metric]
    scopes = [None, *sorted(searches)]
    scope = st.selectbox("Choose among", scopes, key="decide_scope",
                         format_func=lambda s: "every run on this dataset" if s is None else
                         search_label(s, searches[s]),
                         help="Choosing within one random search lets you claim its tuning-aware ε (Papernot & Steinke "
                              "2022); choosing among every run costs their composition.")
    with st.container(horizontal=True):
        max_epsilon = st.number_input("Largest acceptable ε (0 = any)", min_value=0.0, value=0.0, step=0.5,
                                      key="decide_max_epsilon", help="Smaller ε is stronger privacy.")
        min_metric = st.number_input(f"Smallest acceptable {label} (0 = any)", min_value=0.0, max_value=1.0,
                                     value=0.0, step=0.01, format="%.3f", key="decide_min_metric")
        max_lost = st.number_input("Lose at most (points against the baseline, 0 = any)", min_value=0.0, value=0.0,
                                   step=0.5, key="decide_max_points_lost",
                                   help=f"Points of {label} (×100) below the same model trained without privacy.")
        cost = st.selectbox("Cost", costs, format_func=lambda column: costs_known[column][0], key="decide_cost")
        max_cost = st.number_input(f"Largest acceptable {costs_known[cost][0]} ({costs_known[cost][1]}, 0 = any)",
                                   min_value=0.0, value=0.0, key="decide_max_cost")
    return DecisionConstraints(dataset=dataset, metric=metric, max_epsilon=max_epsilon or None,
                               min_metric=min_metric or None, max_points_lost=max_lost or None, cost=cost,
                               max_cost=max_cost or None, scope=scope)


def candidates_table(candidates: pd.DataFrame, metric: str, cost_label: str) -> str:
    """The ranked candidates; returns the chosen run id (the user's pick while it stays a candidate, else the top)."""
    label = METRIC_LABELS[metric]
    split = candidates["split"].iloc[0] if "split" in candidates and len(candidates) else "validation"
    shown = candidates.assign(privacy=[epsilon_label(a, d) for a, d in zip(candidates["accountant"], candidates["delta"])])
    shown = shown[["technique", "model", "target_epsilon", "epsilon", "privacy", "max_grad_norm", "metric_mean",
                   "metric_std", "trivial", "points_lost", "cost_mean", "seeds", "run_id"]]
    # A new table is a new widget: a selection made in an earlier table never points at another row of this one.
    digest = hashlib.sha256("|".join(candidates["run_id"]).encode()).hexdigest()[:10]
    picked = st.dataframe(
        shown, key=f"decide_candidates_{digest}", hide_index=True, width="stretch", on_select="rerun",
        selection_mode="single-row", placeholder="—",
        column_config={
            "target_epsilon": st.column_config.NumberColumn("target ε", format="%.3g"),
            "epsilon": st.column_config.NumberColumn("ε", format="%.3f", help="Largest over seeds, by the accountant named."),
            "max_grad_norm": st.column_config.NumberColumn("clipping C", format="%.3g"),
            "metric_mean": st.column_config.NumberColumn(f"{label} ({split}, mean)", format="%.4f"),
            "metric_std": st.column_config.NumberColumn("± std", format="%.4f"),
            "trivial": st.column_config.NumberColumn("trivial", format="%.4f",
                                                     help="Always predicting the commonest class."),
            "points_lost": st.column_config.NumberColumn("points lost", format="%.2f",
                                                         help="Below the non-private baseline (×100)."),
            "cost_mean": st.column_config.NumberColumn(cost_label, format="%.3g"),
        })
    rows = picked.selection.get("rows", [])
    if rows:
        st.session_state[CHOSEN_KEY] = str(candidates["run_id"].iloc[rows[0]])
    chosen = st.session_state.get(CHOSEN_KEY)
    if chosen not in set(candidates["run_id"]):
        if chosen is not None:
            st.caption("Your earlier choice no longer meets the constraints: showing the top candidate.")
        chosen = str(candidates["run_id"].iloc[0])
    st.caption(f"Ranked by mean {label} on the {split} rows, then by lower ε; the test rows report only the choice. "
               + ("Select a row to choose another." if not rows else "Your choice is shown below."))
    return chosen


def excluded_table(points: pd.DataFrame) -> None:
    """Points that are not candidates, and why (learned nothing, or a constraint)."""
    excluded = points[points["excluded"] != ""]
    if excluded.empty:
        return
    nothing = int((excluded["excluded"].str.startswith("learned nothing")).sum())
    title = f"{len(excluded)} point(s) not offered" + (f", {nothing} of them learned nothing" if nothing else "")
    with st.expander(title, key="decide_excluded"):
        st.dataframe(excluded[["technique", "model", "target_epsilon", "epsilon", "metric_mean", "trivial", "excluded"]],
                     hide_index=True, width="stretch", key="decide_excluded_table",
                     column_config={"excluded": st.column_config.TextColumn("why", width="large")})


def headline(summary: DecisionSummary, metric: str) -> None:
    label = METRIC_LABELS[metric]
    with st.container(horizontal=True):
        st.metric("ε covering the release", f"{summary.headline_epsilon:.3g}",
                  help=f"{summary.headline_basis} at δ = {summary.composition.delta:.0e}")
        st.metric("ε of this configuration alone", f"{summary.epsilon:.3g}",
                  help=epsilon_label(summary.run.get("accountant"), summary.delta))
        st.metric(f"test {label}", f"{summary.metric_mean:.4f}")
        if summary.trivial is not None:
            st.metric("always the commonest class", f"{summary.trivial:.4f}")
        if summary.given_up_points is not None:
            st.metric(f"{label} given up", f"{summary.given_up_points:.2g} points")
        if summary.tuning_epsilon is not None:
            st.metric("whole store composed", f"ε = {summary.composition.epsilon:.3g}",
                      help=f"{summary.composition.n_private} private runs, {summary.composition.accountant}")
