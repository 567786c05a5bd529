"""The audit's pieces on the Frontier and Decide pages: markers on the frontier, the audited-points table, the
Decide sentence and the choice to include the audit in the exported report."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from engine import services
from engine.analysis.audits import audit_finding, audit_rows
from engine.audit.figures import BREACH_MESSAGE
from engine.present.audit import READS_PRIVATE_DATA, add_audit_markers, attack_label, audit_sentence
from engine.workspace import Workspace
from ui.common import workspace


@st.cache_data(show_spinner=False)
def _audits(path: str, signature: tuple) -> list[dict]:  # noqa: ARG001 - the signature is the cache key
    return services.read_audits(Workspace.at(path))


def load_audits() -> list[dict]:
    current = workspace()
    return _audits(str(current.store_path), services.runs_signature(current))


def audit_overlay(figure: go.Figure, front: pd.DataFrame, runs: pd.DataFrame, dataset: str, metric: str) -> pd.DataFrame:
    """Add each audited point's measured lower bound to the frontier figure; returns the dataset's audited points."""
    audited = audit_rows(runs, load_audits())
    audited = audited[audited["dataset"] == dataset]
    if not audited.empty:
        add_audit_markers(figure, front, audited, metric)
    return audited


def audit_panel(audited: pd.DataFrame) -> None:
    """The audited points: ε beside the measured lower bound and the attack's TPR at FPR 1%; breaches loudly."""
    if audited.empty:
        st.caption("No audits yet: `frontier audit RUN_ID` (or `frontier sweep --audit`) attacks a trained run and "
                   "shows here what an attack measures beside its ε.")
        return
    st.subheader("Empirical audits: what an attack measured")
    for row in audited[audited["breach"]].itertuples(index=False):
        st.error(f"**{row.technique} · {row.model}, ε = {row.epsilon:.3g}: {BREACH_MESSAGE}.** The audit measured "
                 f"ε ≥ {row.epsilon_lower_bound:.3g} at 95% confidence.", icon=":material/error:")
    table = audited.assign(attack=[attack_label(a, w) for a, w in zip(audited["attack"], audited["white_box"])])
    st.dataframe(table[["technique", "model", "epsilon", "epsilon_lower_bound", "tpr", "tpr_low", "tpr_high",
                        "tpr_bound", "auc", "breach", "attack", "run_id"]], hide_index=True, width="stretch",
                 key="frontier_audits", placeholder="—", column_config={
                     "epsilon": st.column_config.NumberColumn("ε (guarantee)", format="%.3g"),
                     "epsilon_lower_bound": st.column_config.NumberColumn("measured ε lower bound (95%)", format="%.3g"),
                     "tpr": st.column_config.NumberColumn("TPR at FPR 1%", format="percent"),
                     "tpr_low": st.column_config.NumberColumn("TPR low", format="percent"),
                     "tpr_high": st.column_config.NumberColumn("TPR high", format="percent"),
                     "tpr_bound": st.column_config.NumberColumn("bound allows at most", format="percent"),
                     "auc": st.column_config.NumberColumn("AUC", format="%.3f"),
                     "breach": st.column_config.CheckboxColumn("leak above guarantee")})
    st.caption("Diamonds on the chart: each audited point's measured ε lower bound, joined to its ε (a cross: a "
               "breach). The non-private baseline's row shows what an attack gets with no privacy at all. TPR intervals "
               "are exact binomial; the lower bound is Steinke et al. 2023's one-run bound. " + READS_PRIVATE_DATA)


def decide_audit(runs: pd.DataFrame, run_id: str) -> bool:
    """The chosen point's audit sentence (or how to get one); returns whether to include it in the report."""
    finding = audit_finding(runs, load_audits(), run_id)
    if finding is None:
        st.caption(f"This configuration has not been audited: `frontier audit {run_id}` measures what an attack gets.")
        return False
    if finding.breach:
        st.error(f"**{BREACH_MESSAGE[0].upper() + BREACH_MESSAGE[1:]}.**", icon=":material/error:")
    st.markdown(audit_sentence(finding))
    return st.checkbox("Include the audit's figures in the report", value=False, key="decide_include_audit",
                       help=READS_PRIVATE_DATA + " A breach is flagged in the report either way.")
