"""The Decide page's privacy gate: the policy that would gate the chosen configuration in CI (its figures as the
limits, everything that guards the guarantee required), a few limits to edit, which rules the choice passes, and
the policy file to download for `frontier gate`."""

from __future__ import annotations

import dataclasses

import pandas as pd
import streamlit as st

from engine import services
from engine.errors import EngineError
from engine.gate.policy import GatePolicy, policy_for_decision
from engine.workspace import Workspace
from ui.text import literal

STATUS = {"pass": "pass", "fail": "FAIL", "skip": "skip"}  # words: no emoji font is needed to read them


@st.cache_data(show_spinner="Recomputing the figures with dp-accounting and rescanning the table…")
def _decision(path: str, signature: tuple, run_id: str, metric: str, scope, _summary) -> dict:  # noqa: ARG001
    return services.decision_record(Workspace.at(path), run_id, metric, scope, summary=_summary, include_audit=True)


@st.cache_data(show_spinner=False)
def _outcome(path: str, signature: tuple, policy: GatePolicy, decision: dict):  # noqa: ARG001 - signature keys it
    outcome = services.gate(Workspace.at(path), policy, record=decision, source="the choice", filed=False)
    # The record-hash rule is for a filed decision.json; here the record was just built.
    return [(r.rule, r.status, r.line) for r in outcome.results if r.rule != "record-hash"]


def _limits(default: GatePolicy) -> GatePolicy:
    """The default policy with the limits a user is most likely to change (0 or unticked: not checked)."""
    with st.container(horizontal=True):
        max_epsilon = st.number_input("Largest ε of the run", min_value=0.0, value=float(default.max_epsilon or 0.0),
                                      step=0.5, key="gate_max_epsilon", help="Recomputed with dp-accounting (PLD).")
        max_release = st.number_input("Largest ε covering the release", min_value=0.0,
                                      value=float(default.max_release_epsilon or 0.0), step=1.0, key="gate_max_release",
                                      help="Every private run on the data composed (or the search's tuning-aware ε).")
        min_metric = st.number_input(f"Smallest test {default.metric}", min_value=0.0, max_value=1.0,
                                     value=float(default.min_metric or 0.0), step=0.01, format="%.2f",
                                     key="gate_min_metric")
        margin = st.number_input("Smallest margin over the trivial rate", min_value=-1.0, max_value=1.0,
                                 value=float(default.min_margin_over_trivial or 0.0), step=0.01, format="%.2f",
                                 key="gate_min_margin")
    with st.container(horizontal=True):
        audit = st.checkbox("Require an audit", value=default.require_audit, key="gate_require_audit")
        derived = st.checkbox("Allow data-derived bounds", value=False, key="gate_allow_derived")
        identifiers = st.checkbox("Allow identifier-like columns", value=False, key="gate_allow_identifiers")
    return dataclasses.replace(default, max_epsilon=max_epsilon or None, max_release_epsilon=max_release or None,
                               min_metric=min_metric or None, min_margin_over_trivial=margin or None,
                               require_audit=audit, allow_data_derived_bounds=derived,
                               allow_identifier_columns=identifiers)


def gate_panel(path: str, signature: tuple, run_id: str, metric: str, scope, summary) -> None:
    """Which rules of a policy the chosen run passes, and that policy as a file for CI."""
    st.subheader("Privacy gate")
    try:
        decision = _decision(path, signature, run_id, metric, scope, summary)
        policy = _limits(policy_for_decision(decision))
        results = pd.DataFrame(_outcome(path, signature, policy, decision), columns=["rule", "status", "what"])
    except EngineError as exc:  # e.g. an upload deleted since: its table cannot be rescanned
        st.error(literal(exc.describe()))
        return
    failures = results[results["status"] == "fail"]
    results["status"] = results["status"].map(STATUS)
    if failures.empty:
        st.success("The choice passes every rule.")
    else:  # each failure in full: the table cuts long lines
        st.error(f"{len(failures)} rule(s) fail:\n\n" + "\n\n".join(f"**{rule}**: {literal(line)}" for rule, line in
                                                                   zip(failures["rule"], failures["what"])))
    st.dataframe(results, hide_index=True, width="stretch", key="gate_results",
                 column_config={"what": st.column_config.TextColumn("what was found", width="large")})
    usage = (f"In CI, after retraining the exported config: frontier gate gate-policy.yaml --config config.yaml "
             f"--junit gate.xml (or --record decision.json). Derived from run {run_id}.")
    st.download_button("gate-policy.yaml", policy.to_yaml(usage), file_name="gate-policy.yaml",
                       mime="application/x-yaml", key="decide_download_policy", icon=":material/download:")
    st.caption("Every figure is recomputed from the recorded mechanisms with Google's dp-accounting and the training "
               "table rescanned for identifiers; `frontier gate` exits 1 when a rule fails, so CI stops the release.")
