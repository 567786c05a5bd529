"""Frontier: the privacy-utility trade-off measured on a dataset, its cost, and the clipping heatmap."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from engine.analysis.encrypted_inference import HE_MEASURES, he_view
from engine.analysis.synthetic import synthetic_view
from engine.analysis.frontier import (available_costs, clipped_models, clipping_grid, cost_metrics, cost_view,
                                      frontier_view, local_global_view)
from engine.present.charts import clipping_heatmap, cost_figure, frontier_figure, local_global_figure
from engine.present.labels import METRIC_LABELS
from engine.techniques.registry import get_technique_class, technique_names
from ui.audit import audit_overlay, audit_panel
from ui.common import page_runs, workspace
from ui.synthetic import synthetic_panel

st.title("Frontier")
st.caption("Each point is one configuration, pooled over its seeds. Lower ε is stronger privacy; the dashed line "
           "is the same model trained without privacy.")

runs, dataset, metric = page_runs("frontier")
on_data = runs[runs["dataset"] == dataset]
known = set(technique_names())
techniques = sorted(t for t in on_data["technique"].dropna().unique() if t in known)
models = sorted(on_data["model"].dropna().unique())
with st.container(horizontal=True):
    chosen_techniques = st.multiselect("Techniques", techniques, default=techniques, key="frontier_techniques")
    chosen_models = st.multiselect("Models", models, default=models, key="frontier_models")

front, reference = frontier_view(runs, dataset, metric, chosen_techniques, chosen_models)
n_ok, n_failed = int((on_data["status"] == "ok").sum()), int((on_data["status"] != "ok").sum())
label = METRIC_LABELS[metric]

st.subheader(f"{label.capitalize()} against privacy budget")
if front.empty:
    if reference.empty:
        st.warning(f"No successful private runs on {dataset} for this selection ({n_failed} failed: see below).")
    else:
        st.info(f"Only non-private runs on {dataset} so far: add private ones on the Sweep page.", icon="ℹ️")
    selected_points = []
else:
    figure = frontier_figure(front, reference, metric)
    audited = audit_overlay(figure, front, runs, dataset, metric)
    event = st.plotly_chart(figure, key="frontier_chart", width="stretch", on_select="rerun", selection_mode="points")
    st.caption(f"{n_ok} successful and {n_failed} failed run(s) on {dataset}. ε is the largest over a configuration's "
               "seeds, as reported by the accountant named on the axis for the training actually done. Each line follows "
               "one technique's best configuration at each ε; circled points are the Pareto front across all "
               f"techniques (no configuration of any technique has lower ε and higher {label}). Picking the best "
               "configuration from these runs spends privacy too: the Decide page shows what the whole sweep cost. "
               "Select a point to see its runs.")
    selected_points = [point.get("customdata") for point in event.selection.get("points", []) if point.get("customdata")]
    audit_panel(audited)

for (point_id,) in selected_points:
    point = on_data[on_data["point_id"] == point_id]
    if point.empty:
        continue
    first = point.iloc[0]
    clip = "" if pd.isna(first["max_grad_norm"]) else f", C {first['max_grad_norm']:g}"
    st.markdown(f"**Runs of {first['technique']} · {first['model']}, target ε {first['target_epsilon']:g}{clip}**")
    st.dataframe(point[["run_id", "seed", "epsilon", "accountant", "delta", "noise_multiplier", metric,
                        "train_seconds", "device", "created_at"]],
                 hide_index=True, width="stretch", key=f"frontier_selected_{point_id}")

local_global = local_global_view(runs[runs["technique"].isin(chosen_techniques)], dataset, metric)
if not local_global.empty:
    st.subheader("Local against global DP at equal ε")
    st.plotly_chart(local_global_figure(local_global, metric), key="frontier_local_global", width="stretch")
    st.caption("Hatched bars: local DP (each record randomised by its owner before anyone sees it). Plain bars: "
               "global DP (a trusted curator trains on the raw data and only the model is private). At the same ε, "
               "the gap between them is what not trusting a curator costs.")

st.subheader(f"{label.capitalize()} against cost")
costs = available_costs(on_data)
if costs:
    cost = st.selectbox("Cost", costs, format_func=lambda column: cost_metrics()[column][0], key="frontier_cost")
    points = cost_view(runs, dataset, metric, cost)
    points = points[points["technique"].isin(chosen_techniques) & points["model"].isin(chosen_models)]
    st.plotly_chart(cost_figure(points, metric, cost), key="frontier_cost_chart", width="stretch")
else:
    st.caption("No cost measured yet.")

st.subheader("Clipping norm against budget")
clipping = [t for t in chosen_techniques if get_technique_class(t).uses_clipping]
if not clipping:
    st.caption("None of the selected techniques clips gradients, so there is no clipping norm to compare.")
else:
    with st.container(horizontal=True):
        heat_technique = st.selectbox("Technique", clipping, key="frontier_heat_technique")
        heat_model = st.selectbox("Model", clipped_models(runs, dataset, heat_technique, chosen_models or models),
                                  key="frontier_heat_model")
    grid = clipping_grid(runs, dataset, heat_technique, heat_model, metric)
    if grid.empty:
        st.caption("No runs for this technique and model.")
    else:
        st.plotly_chart(clipping_heatmap(grid, metric), key="frontier_heatmap", width="stretch")
        st.caption(f"Mean {label} over seeds for each target ε and clipping norm C.")

synthetic_panel(synthetic_view(runs, dataset), workspace(), dataset)  # fidelity, and the table to download

encrypted = he_view(runs, dataset)
if not encrypted.empty:
    st.subheader("Encrypted inference: what scoring an encrypted record costs")
    st.caption("Encryption is not an ε: it protects the record being scored from the scoring service, while DP "
               "protects the people in the training data. A hybrid (trained with DP-SGD) shows both its training ε "
               "and its inference cost.")
    shown = {column: f"{label} ({unit})" if unit else label for column, (label, unit) in HE_MEASURES.items()}
    table = encrypted[["model", "train_technique", "target_epsilon", *HE_MEASURES, "seeds"]].rename(
        columns={"train_technique": "trained with", "target_epsilon": "target ε", **shown})
    st.dataframe(table, hide_index=True, width="stretch", key="frontier_he_table", placeholder="—")

with st.expander(f"All runs on {dataset} ({n_ok} ok, {n_failed} failed)", expanded=n_failed > 0, key="frontier_runs"):
    table = on_data[["run_id", "status", "technique", "model", "seed", "target_epsilon", "epsilon", "accountant",
                     "max_grad_norm", metric, "train_seconds", "error"]]
    st.dataframe(table, hide_index=True, width="stretch", key="frontier_runs_table", placeholder="—")
