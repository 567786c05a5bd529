"""Decide: pick a budget under constraints, explain it to a compliance audience, export it."""

from __future__ import annotations

import streamlit as st

from engine import services
from engine.analysis.decide import rank_points
from engine.analysis.frontier import available_costs, cost_metrics, frontier_view
from engine.errors import EngineError
from engine.present.charts import frontier_figure
from engine.present.sentences import decision_sentences
from engine.workspace import Workspace
from ui.audit import decide_audit
from ui.common import page_runs, workspace
from ui.decide_panel import candidates_table, constraints_form, excluded_table, headline
from ui.gate_panel import gate_panel


@st.cache_data(show_spinner="Composing every run of the sweep (dp-accounting PLD)…")
def decision(path: str, signature: tuple, run_id: str, metric: str, scope):  # noqa: ARG001 - signature keys the cache
    return services.decide(Workspace.at(path), run_id, metric, scope)


@st.cache_data(show_spinner="Writing the report…")
def export(path: str, signature: tuple, run_id: str, metric: str, include_audit: bool, _summary):  # noqa: ARG001
    return services.export(Workspace.at(path), run_id, metric, summary=_summary, include_audit=include_audit)


st.title("Decide")
st.caption("Set what you can accept, pick a candidate, and take a plain-language summary and a reproducible "
           "configuration to your compliance team.")

runs, dataset, metric = page_runs("decide")
costs = available_costs(runs[runs["dataset"] == dataset]) or ["train_seconds"]
costs_known = cost_metrics()

current = workspace()
path, signature = str(current.store_path), services.runs_signature(current)
st.subheader("Constraints")
try:
    constraints = constraints_form(dataset, metric, costs, costs_known, services.searches(current))
    points = rank_points(runs, constraints)
except EngineError as exc:
    st.error(str(exc))
    st.stop()
candidates = points[points["excluded"] == ""].reset_index(drop=True)
if candidates.empty:
    st.warning("No private configuration meets every constraint: relax one, or measure more on the Sweep page.")
    excluded_table(points)
    st.stop()

st.subheader(f"{len(candidates)} candidate configuration(s)")
run_id = candidates_table(candidates, metric, f"{costs_known[constraints.cost][0]} ({costs_known[constraints.cost][1]})")
excluded_table(points)
row = candidates[candidates["run_id"] == run_id].iloc[0]
try:
    summary = decision(path, signature, run_id, metric, constraints.scope)
except EngineError as exc:
    st.error(str(exc))
    st.stop()

st.subheader(f"The choice: {row['technique']} · {row['model']} at ε = {summary.epsilon:.3g}")
headline(summary, metric)
sentences = decision_sentences(summary)
for key in ("budget", "given_up", "search", "protects"):
    st.markdown(sentences[key])
include_audit = decide_audit(runs, row["run_id"])

front, reference = frontier_view(runs, dataset, metric)
if not front.empty:
    st.plotly_chart(frontier_figure(front, reference, metric, chosen=(summary.epsilon, row["metric_mean"])),
                    key="decide_chart", width="stretch")

gate_panel(path, signature, run_id, metric, constraints.scope, summary)

st.subheader("Export")
try:
    bundle = export(path, signature, run_id, metric, include_audit, summary)
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
    st.download_button("decision.json", bundle.decision_json or "", file_name="decision.json",
                       mime="application/json", key="decide_download_decision", icon=":material/download:")
st.caption(f"`frontier sweep --config config.yaml` reproduces run `{run_id}`'s configuration and its accounting "
           f"(answered from the cache when this store holds it; retrained elsewhere, its metrics reproduce within seed "
           f"noise, not bit for bit: the noise is secret). The same export from a terminal: `frontier export {run_id} "
           f"--out DIR`. The report is one self-contained HTML file that opens offline.")
