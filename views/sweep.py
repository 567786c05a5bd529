"""Sweep: choose a grid, see how many runs it is and roughly how long, launch it in the background, watch it run.

The page plans the sweep once per change (services.plan), estimates from that plan, and launches that very
plan as a detached job; it then only reads the job's files and the store, so a refresh or another tab shows the
same progress.
"""

from __future__ import annotations

import streamlit as st

from engine import services
from engine.data import catalogue_signature
from engine.errors import EngineError
from engine.present.labels import rough
from engine.runner.spec import all_settings
from engine.workspace import Workspace
from ui import job_panel
from ui.common import workspace
from ui.sweep_form import sweep_form


@st.cache_resource(show_spinner=False, max_entries=16)
def planned(spec, store: str, signature: tuple, catalogue: tuple):  # noqa: ARG001 - signatures key the cache
    """One plan per spec and store state, shared read-only by the estimate and the launch (it holds the data)."""
    return services.plan(spec, Workspace.at(store))


def form_label(name: str) -> str:
    declared = all_settings().get(name)
    return declared.form_label if declared is not None else name


st.title("Sweep")
st.caption("Train a grid of models — techniques × privacy budgets ε × clipping norms × seeds — and store every run. "
           "Runs already in the store are not trained again.")

current = workspace()
try:
    latest = services.latest_job(current)
except EngineError as exc:
    st.error(str(exc))
    latest = None
running = latest is not None and latest.running
job_panel.demo_box(current, latest, running)
job_panel.progress_panel(current, running)

st.subheader("New sweep")
form = sweep_form(current.uploads_dir)
plan = summary = None
if not form.errors:
    try:
        spec = services.read_spec(form.values)
        plan = planned(spec, str(current.store_path), services.runs_signature(current),
                       catalogue_signature(current.uploads_dir))
        summary = services.estimate(plan, current, workers=form.workers, device=form.device)
    except EngineError as exc:
        form.errors.append(exc.describe(form_label))
        plan = None
for message in form.errors:
    st.error(message)

if summary is not None:
    runs_col, cached_col, train_col, time_col = st.columns(4)
    runs_col.metric("Runs", summary.total)
    cached_col.metric("Already in the store", summary.cached)
    train_col.metric("To train", summary.to_train)
    time_col.metric("Rough time", rough(summary.seconds) if summary.to_train else "—")
    if summary.to_train:
        st.caption(f"Rough time: {summary.basis}. Other work on this machine slows it down.")

if running:
    st.info("A sweep is running on this store: wait for it to finish or cancel it above. Two at once would "
            "compete for the same CPU cores.", icon=":material/hourglass_top:")
# Handled here, not in an on_click callback: a callback's arguments would be the plan of the previous run, before
# an edit that the click itself committed.
if st.button("Launch sweep", key="sweep_launch", type="primary", icon=":material/play_arrow:",
             disabled=plan is None or running, help="Trains this grid in the background; you can leave this page."):
    st.session_state.pop("sweep_launch_error", None)
    try:
        services.launch(plan, current, workers=form.workers, device=form.device, cluster=form.cluster)
    except EngineError as exc:
        st.session_state["sweep_launch_error"] = exc.describe(form_label)
    else:
        st.rerun()  # the progress panel above shows the new job
if st.session_state.get("sweep_launch_error"):
    st.error(st.session_state["sweep_launch_error"])

job_panel.past_jobs(current)
