"""Cached loaders and widgets that several pages share, and the dashboard's workspace."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from engine import services
from engine.analysis.frontier import METRICS
from engine.data import dataset_names, get_dataset_info
from engine.errors import EngineError
from engine.present.labels import METRIC_LABELS, metric_reason
from engine.techniques.metrics import decision_objective
from engine.workspace import Workspace


def workspace() -> Workspace:
    """The store the dashboard works on: $FRONTIER_STORE, else ./.frontier (the dashboard is a surface)."""
    return Workspace.at(None)


@st.cache_data(show_spinner=False)
def _runs(path: str, signature: tuple) -> pd.DataFrame:  # noqa: ARG001 - the signature is the cache key
    return services.read_runs(Workspace.at(path))


def uploads_dir() -> Path:
    """The dashboard's uploaded datasets: `datasets/` beside its result store."""
    return workspace().uploads_dir


def load_runs() -> pd.DataFrame:
    """Every run in the store, re-read only when the store changed."""
    current = workspace()
    return _runs(str(current.store_path), services.runs_signature(current))


def dataset_picker(runs: pd.DataFrame, key: str) -> str | None:
    """A dataset that has runs; preselects the one chosen on another page (session key `selected_dataset`)."""
    order = {name: index for index, name in enumerate(dataset_names(uploads_dir()))}
    names = sorted(runs["dataset"].dropna().unique(), key=lambda name: (order.get(name, len(order)), name))
    if not names:
        return None
    wanted = st.session_state.get("selected_dataset")
    chosen = st.selectbox("Dataset", names, index=names.index(wanted) if wanted in names else 0, key=key,
                          help="Datasets with runs in the result store.")
    st.session_state["selected_dataset"] = chosen
    return chosen


def metric_picker(key: str, dataset: str | None) -> str:
    """The metric, defaulting to the one that fits the dataset's label (set again when the dataset changes)."""
    info = _dataset_info(dataset)
    if st.session_state.get(f"{key}_for") != dataset:
        st.session_state[key] = decision_objective(info)
        st.session_state[f"{key}_for"] = dataset
    return st.selectbox("Metric", METRICS, format_func=METRIC_LABELS.get, key=key, help=metric_reason(info))


def _dataset_info(dataset: str | None):
    try:
        return get_dataset_info(dataset, uploads_dir()) if dataset else None
    except EngineError:
        return None  # runs of a dataset no longer in the catalogue


def no_runs_hint() -> None:
    st.info("No runs yet. Go to **Sweep** and press *Run the demo sweep*, or run "
            "`frontier sweep --dataset adult` in a terminal.", icon="ℹ️")
    st.page_link("views/sweep.py", label="Go to the Sweep page", icon=":material/play_circle:")


def page_runs(prefix: str) -> tuple[pd.DataFrame, str, str]:
    """The store's runs with the dataset and metric the user picked (widget keys `{prefix}_dataset`,
    `{prefix}_metric`); stops the page with an error or the no-runs hint when there is nothing to show."""
    try:
        runs = load_runs()
    except EngineError as exc:
        st.error(str(exc))
        st.stop()
    if runs.empty:
        no_runs_hint()
        st.stop()
    with st.container(horizontal=True):
        dataset = dataset_picker(runs, key=f"{prefix}_dataset")
        metric = metric_picker(f"{prefix}_metric", dataset)
    st.caption(metric_reason(_dataset_info(dataset)))
    return runs, dataset, metric
