"""The Frontier page's synthetic-data section: fidelity of each dp-synthetic run, and its table to download."""

from __future__ import annotations

import gzip

import pandas as pd
import streamlit as st

from engine import services
from engine.errors import EngineError
from engine.present.synthetic import FIDELITY_CAPTION, FIDELITY_LABELS, share_sentence
from engine.workspace import Workspace
from ui.text import literal


def synthetic_panel(synthetic: pd.DataFrame, workspace: Workspace, dataset: str) -> None:
    """`synthetic`: engine.analysis.synthetic.synthetic_view of the page's runs."""
    if synthetic.empty:
        return
    st.subheader("Synthetic data: fidelity, and the table itself")
    shown = synthetic.rename(columns={"target_epsilon": "target ε", "epsilon": "ε", "synth_bins": "bins",
                                      "accuracy": "test accuracy (real rows)",
                                      "balanced_accuracy": "test balanced accuracy", **FIDELITY_LABELS})
    st.dataframe(shown, hide_index=True, width="stretch", key="frontier_synthetic_table", placeholder="—")
    st.caption(FIDELITY_CAPTION)
    run_id = st.selectbox("Synthetic table of run", synthetic["run_id"].tolist(), key="frontier_synthetic_run")
    try:
        path, record = services.synthetic_table(workspace, run_id)
    except EngineError as exc:
        st.warning(literal(str(exc)))
        return
    st.download_button("Download the synthetic table (CSV)", data=gzip.decompress(path.read_bytes()),
                       file_name=f"{dataset}-synthetic-{run_id}.csv", mime="text/csv", key="frontier_synthetic_download")
    st.caption(literal(share_sentence(record)))
