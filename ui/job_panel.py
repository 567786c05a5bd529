"""The background sweep as the Sweep page shows it: the demo box, the live progress panel, past sweeps."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from engine import services
from engine.analysis.frontier import frontier_view
from engine.errors import EngineError
from engine.jobs.progress import JobStatus
from engine.present.charts import frontier_figure
from engine.present.demo import DEMO_SPEC, demo_text
from engine.present.labels import duration
from engine.workspace import Workspace
from ui.common import load_runs

POLL_RUNNING_S = 2.0  # how often the progress panel re-reads a running job (reading it takes ~3 ms)
POLL_IDLE_S = 10.0  # without a running job: slowly, to notice one launched from another tab
RUN_STATUS_LABELS = {"cached": "cached", "ok": "done", "failed": "failed", "training": "training…", "queued": "queued"}


def launch(workspace: Workspace, spec, workers: int, device: str) -> None:
    """Plan and start a sweep; an EngineError (e.g. a sweep already running) is kept for the page to show."""
    st.session_state.pop("sweep_launch_error", None)
    try:
        services.launch(services.plan(spec, workspace), workspace, workers=workers, device=device)
    except EngineError as exc:
        st.session_state["sweep_launch_error"] = str(exc)


def demo_box(workspace: Workspace, latest: JobStatus | None, running: bool) -> None:
    """First visit: one obvious button that shows what the tool does; later, the same in an expander."""
    try:
        demo = services.plan(DEMO_SPEC, workspace)
    except EngineError as exc:
        st.error(str(exc))
        return
    if len(demo.pending) == 0:
        return
    container = (st.container(border=True, key="sweep_demo_box") if latest is None
                 else st.expander("The demo sweep on adult", key="sweep_demo_more"))
    with container:
        if latest is None:
            st.markdown("#### New here? Run the demo sweep")
        st.markdown(demo_text(len(demo.configs)))
        st.button("Run the demo sweep on adult", key="sweep_demo", type="primary" if latest is None else "secondary",
                  icon=":material/play_arrow:", on_click=launch, args=(workspace, DEMO_SPEC, 1, "auto"),
                  disabled=running)


def results_figure(status: JobStatus):
    """This sweep's frontier so far (the Frontier page's chart, on this sweep's finished runs), or None."""
    runs = load_runs()
    mine = runs[runs["run_id"].isin([run.run_id for run in status.runs])]
    if mine.empty:
        return None
    front, reference = frontier_view(mine, status.dataset)
    if front.empty:
        return None
    return frontier_figure(front, reference).update_layout(height=360)


def _state_message(status: JobStatus) -> None:
    if status.state == "finished":
        trained = status.done - status.cached_at_start - status.failed
        st.success(f"Finished in {duration(status.elapsed_seconds)}: {trained} trained, {status.cached_at_start} "
                   f"already in the store, {status.failed} failed.", icon=":material/check_circle:")
    elif status.state == "cancelled":
        st.warning(f"Cancelled after {duration(status.elapsed_seconds)}, with {status.done} of {status.total} runs "
                   "done. Finished runs are kept: launch the same sweep again to train only the missing ones.",
                   icon=":material/stop_circle:")
    elif status.state == "interrupted":
        st.warning(f"The sweep process stopped before finishing ({status.done} of {status.total} runs done): the "
                   "dashboard or machine restarted, or the process was killed. Finished runs are kept: launch the "
                   "same sweep again to train the rest.", icon=":material/warning:")
    else:
        st.error(f"The sweep stopped with an error (exit code {status.exit_code}) after {status.done} of "
                 f"{status.total} runs. The end of its log:", icon=":material/error:")
        st.code(status.log_tail or "(the log is empty)", language=None)


def show_job(status: JobStatus, workspace: Workspace) -> None:
    st.subheader(f"{'Sweep running' if status.running else 'Last sweep'}: {status.dataset}")
    text = f"{status.done} of {status.total} runs ({status.cached_at_start} cached, {status.failed} failed)"
    st.progress(status.done / status.total if status.total else 1.0, text=text)
    if status.running:
        left, right = st.columns([4, 1], vertical_alignment="center")
        left.markdown(f"**Running** for {duration(status.elapsed_seconds)} · {status.current}")
        if right.button("Cancel sweep", key="sweep_cancel", icon=":material/stop_circle:", width="stretch",
                        help="Stops the sweep. Finished runs stay in the store; launching the same sweep again "
                             "trains only the missing ones."):
            with st.spinner("Stopping the sweep…"):
                services.cancel(status.job_id, workspace)
            st.rerun(scope="app")
    else:
        _state_message(status)
    if status.failed_runs:
        with st.expander(f"{len(status.failed_runs)} failed run(s) and their errors", expanded=True):
            st.dataframe(pd.DataFrame(status.failed_runs, columns=["run", "error"]), hide_index=True,
                         width="stretch", key="sweep_failed_runs",
                         column_config={"error": st.column_config.TextColumn("error", width="large")})
            st.caption("Failed runs are stored with their error; launching the same sweep again retries them.")
    figure = results_figure(status)
    left, right = st.columns(2)
    with left:
        if figure is not None:
            st.plotly_chart(figure, key="sweep_results_chart", width="stretch")
        else:
            st.caption("This sweep's frontier appears here as its private runs finish.")
        if st.button(f"See the frontier on {status.dataset}", key="sweep_see_frontier", icon=":material/show_chart:"):
            st.session_state["selected_dataset"] = status.dataset  # the Frontier page opens on this dataset
            st.switch_page("views/frontier.py")
    with right:
        table = pd.DataFrame([{"run": run.label, "status": RUN_STATUS_LABELS.get(run.status, run.status),
                               "ε": run.epsilon, "accuracy": run.accuracy} for run in status.runs])
        st.dataframe(table, hide_index=True, width="stretch", height=min(35 * (len(table) + 1) + 3, 360),
                     key="sweep_runs_table", placeholder="—",
                     column_config={"run": st.column_config.TextColumn("run", width="medium"),
                                    "ε": st.column_config.NumberColumn("ε", format="%.3f",
                                                                      help="As reported by the accountant."),
                                    "accuracy": st.column_config.NumberColumn("accuracy", format="%.4f")})


def progress_panel(workspace: Workspace, running: bool) -> None:
    """The latest job, re-read every few seconds (refresh- and tab-safe: it all comes from the job's files)."""

    @st.fragment(run_every=POLL_RUNNING_S if running else POLL_IDLE_S)
    def panel() -> None:
        try:
            status = services.latest_job(workspace)
        except EngineError as exc:
            st.error(str(exc))
            return
        if status is not None and status.running != running:
            st.rerun(scope="app")  # started from another tab, or just ended: refresh the summary and the poll rate
        if status is not None:
            with st.container(border=True):
                show_job(status, workspace)

    panel()


def past_jobs(workspace: Workspace) -> None:
    try:
        past = services.list_jobs(workspace, limit=10)
    except EngineError as exc:
        st.error(str(exc))
        return
    if not past:
        return
    st.subheader("Recent sweeps")
    st.dataframe(pd.DataFrame([{
        "started": job.running_since.astimezone().strftime("%Y-%m-%d %H:%M"), "dataset": job.dataset,
        "runs": job.total, "done": job.done, "cached": job.cached_at_start, "failed": job.failed,
        "state": job.state, "took": "" if job.running else duration(job.elapsed_seconds), "job": job.job_id,
    } for job in past]), hide_index=True, width="stretch", key="sweep_past_jobs")
