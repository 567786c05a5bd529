"""Decide: pick a budget under constraints, explain it to a compliance audience, export it."""

from __future__ import annotations

import streamlit as st

from engine import services
from engine.analysis.decide import DecisionConstraints, rank_candidates
from engine.analysis.frontier import available_costs, cost_metrics, frontier_view
from engine.errors import EngineError
from engine.present.charts import frontier_figure
from engine.present.labels import METRIC_LABELS, epsilon_label
from engine.present.sentences import decision_sentences
from engine.workspace import Workspace
from ui.audit import decide_audit
from ui.common import page_runs, workspace


@st.cache_data(show_spinner="Composing every run of the sweep (dp-accounting PLD)…")
def decision(path: str, signature: tuple, run_id: str, metric: str):  # noqa: ARG001 - signature keys the cache
    return services.decide(Workspace.at(path), run_id, metric)


@st.cache_data(show_spinner="Writing the report…")
def export(path: str, signature: tuple, run_id: str, metric: str, include_audit: bool, _summary):  # noqa: ARG001
    return services.export(Workspace.at(path), run_id, metric, summary=_summary, include_audit=include_audit)


st.title("Decide")
st.caption("Set what you can accept, pick a candidate, and take a plain-language summary and a reproducible "
           "configuration to your compliance team.")

runs, dataset, metric = page_runs("decide")
label = METRIC_LABELS[metric]
costs = available_costs(runs[runs["dataset"] == dataset]) or ["train_seconds"]
costs_known = cost_metrics()

st.subheader("Constraints")
with st.container(horizontal=True):
    max_epsilon = st.number_input("Largest acceptable ε (0 = any)", min_value=0.0, value=0.0, step=0.5,
                                  key="decide_max_epsilon", help="Smaller ε is stronger privacy.")
    min_metric = st.number_input(f"Smallest acceptable {label} (0 = any)", min_value=0.0, max_value=1.0, value=0.0,
                                 step=0.01, format="%.3f", key="decide_min_metric")
    cost = st.selectbox("Cost", costs, format_func=lambda column: costs_known[column][0], key="decide_cost")
    max_cost = st.number_input(f"Largest acceptable {costs_known[cost][0]} ({costs_known[cost][1]}, 0 = any)",
                               min_value=0.0, value=0.0, key="decide_max_cost")

try:
    constraints = DecisionConstraints(dataset=dataset, metric=metric, max_epsilon=max_epsilon or None,
                                      min_metric=min_metric or None, cost=cost, max_cost=max_cost or None)
    candidates = rank_candidates(runs, constraints)
except EngineError as exc:
    st.error(str(exc))
    st.stop()

if candidates.empty:
    st.warning("No private configuration meets every constraint: relax one, or measure more on the Sweep page.")
    st.stop()

st.subheader(f"{len(candidates)} candidate configuration(s)")
shown = candidates.assign(
    privacy=[epsilon_label(a, d) for a, d in zip(candidates["accountant"], candidates["delta"])],
)[["technique", "model", "target_epsilon", "epsilon", "privacy", "max_grad_norm", "metric_mean", "metric_std",
   "cost_mean", "seeds", "run_id"]]
picked = st.dataframe(
    shown, key="decide_candidates", hide_index=True, width="stretch", on_select="rerun", selection_mode="single-row",
    placeholder="—",
    column_config={
        "target_epsilon": st.column_config.NumberColumn("target ε", format="%.3g"),
        "epsilon": st.column_config.NumberColumn("ε", format="%.3f", help="Largest over seeds, by the accountant named."),
        "max_grad_norm": st.column_config.NumberColumn("clipping C", format="%.3g"),
        "metric_mean": st.column_config.NumberColumn(f"{label} (mean)", format="%.4f"),
        "metric_std": st.column_config.NumberColumn("± std", format="%.4f"),
        "cost_mean": st.column_config.NumberColumn(f"{costs_known[cost][0]} ({costs_known[cost][1]})", format="%.3g"),
    },
)
rows = picked.selection.get("rows", [])
row = candidates.iloc[rows[0] if rows else 0]
st.caption("Ranked by mean " + label + ", then by lower ε. " + ("Showing the top candidate: select a row to choose another."
                                                                 if not rows else "Your choice is shown below."))

current = workspace()
path, signature = str(current.store_path), services.runs_signature(current)
try:
    summary = decision(path, signature, row["run_id"], metric)
except EngineError as exc:
    st.error(str(exc))
    st.stop()

st.subheader(f"The choice: {row['technique']} · {row['model']} at ε = {summary.epsilon:.3g}")
with st.container(horizontal=True):
    st.metric("ε of this run", f"{summary.epsilon:.3g}", help=epsilon_label(summary.run.get("accountant"), summary.delta))
    st.metric("odds can change by at most", f"×{summary.odds_factor:.3g}")
    if summary.given_up_points is not None:
        st.metric(f"{label} given up", f"{summary.given_up_points:.2g} points")
    st.metric("whole sweep composed", f"ε = {summary.composition.epsilon:.3g}",
              help=f"{summary.composition.n_private} private runs, {summary.composition.accountant}")
sentences = decision_sentences(summary)
for key in ("budget", "given_up", "search", "protects"):
    st.markdown(sentences[key])
include_audit = decide_audit(runs, row["run_id"])

front, reference = frontier_view(runs, dataset, metric)
if not front.empty:
    st.plotly_chart(frontier_figure(front, reference, metric, chosen=(summary.epsilon, summary.metric_mean)),
                    key="decide_chart", width="stretch")

st.subheader("Export")
try:
    bundle = export(path, signature, row["run_id"], metric, include_audit, summary)
except EngineError as exc:
    st.error(str(exc))
    st.stop()
if not bundle.reproduces:
    st.warning("The data or the engine changed since this run: the exported spec would train a new run.")
with st.container(horizontal=True):
    st.download_button("config.yaml", bundle.config_yaml, file_name="config.yaml", mime="application/x-yaml",
                       key="decide_download_config", icon=":material/download:")
    st.download_button("report.html", bundle.report_html, file_name="report.html", mime="text/html",
                       key="decide_download_report", icon=":material/download:")
st.caption(f"`frontier sweep --config config.yaml` reproduces run `{row['run_id']}` exactly (answered from the cache "
           f"when this store holds it); the same export from a terminal: `frontier export {row['run_id']} --out DIR`. "
           "The report is one self-contained HTML file that opens offline.")
