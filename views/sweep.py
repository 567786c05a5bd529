"""Sweep: choose a grid, see how many runs it is and roughly how long, launch it in the background, watch it run.

The work is `frontier sweep` in a detached process (engine.jobs); this page only reads the job's files and the
result store, so a browser refresh or another tab shows the same progress, and the page stays usable.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

import engine.jobs as jobs
from engine.charts import frontier_figure
from engine.config import DEVICES, MODELS, PARTITIONS, TRAIN_TECHNIQUES, SweepSpec, parse_number_list
from engine.data import dataset_names
from engine.errors import ConfigError, EngineError
from engine.frontier import frontier_view
from engine.measure import resolve_device
from engine.store import resolve_store_path, store_signature
from engine.techniques import get_technique_class, technique_names
from engine.techniques.federated import FederatedTechnique
from ui.common import load_runs, uploads_dir

POLL_RUNNING_S = 2.0  # how often the progress panel re-reads a running job (reading it takes ~3 ms)
POLL_IDLE_S = 10.0  # without a running job: slowly, to notice one launched from another tab
DEFAULT_TECHNIQUES = ("baseline", "dp-sgd")
ACCOUNTANT_HELP = ("How ε is computed from the noise actually added. PRV (Opacus' default) is tight: it reports "
                   "close to the true ε. RDP is conservative: it overstates ε by about 8–15%, so the same target "
                   "gets more noise. Either way the accountant is recorded next to every ε.")
STATE_LABELS = {"running": "running", "finished": "finished", "failed": "failed", "cancelled": "cancelled",
                "interrupted": "interrupted"}
RUN_STATUS_LABELS = {"cached": "cached", "ok": "done", "failed": "failed", "training": "training…", "queued": "queued"}


def launch(spec: SweepSpec, workers: int, device: str) -> None:
    """Start the sweep; an EngineError (e.g. a sweep already running) is kept for the page to show."""
    st.session_state.pop("sweep_launch_error", None)
    try:
        jobs.start_sweep_job(spec, store_path=resolve_store_path(), uploads_dir=uploads_dir(), workers=workers,
                             device=device)
    except EngineError as exc:
        st.session_state["sweep_launch_error"] = str(exc)


def duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def rough(seconds: float) -> str:
    """'~2 min': an estimate should not look precise."""
    if seconds < 60:
        return f"~{max(10, round(seconds / 10) * 10)} s"
    if seconds < 3600:
        return f"~{round(seconds / 60)} min"
    return f"~{seconds / 3600:.1f} h"


@st.cache_data(show_spinner=False, max_entries=64)
def estimate(spec: SweepSpec, store: str, signature: tuple, workers: int) -> jobs.SweepEstimate:  # noqa: ARG001
    return jobs.estimate_sweep(spec, store, uploads_dir=uploads_dir(), workers=workers)


def numbers(key: str, label: str, default: str, kind: type, help_text: str, errors: list[str], column) -> tuple:
    text = column.text_input(label, default, key=key, help=help_text)
    try:
        return parse_number_list(text, kind, label)
    except ConfigError as exc:
        errors.append(str(exc))
        return ()


# --- progress -------------------------------------------------------------------------------------------
def results_figure(status: jobs.JobStatus):
    """This sweep's frontier so far (the Frontier page's chart, on this sweep's finished runs), or None."""
    runs = load_runs()
    mine = runs[runs["run_id"].isin([run.run_id for run in status.runs])]
    if mine.empty:
        return None
    front, reference = frontier_view(mine, status.dataset)
    if front.empty:
        return None
    return frontier_figure(front, reference).update_layout(height=360)


def show_job(status: jobs.JobStatus, store: Path) -> None:
    heading = "Sweep running" if status.running else "Last sweep"
    st.subheader(f"{heading}: {status.dataset}")
    text = (f"{status.done} of {status.total} runs ({status.cached_at_start} cached, {status.failed} failed)")
    st.progress(status.done / status.total if status.total else 1.0, text=text)
    if status.running:
        left, right = st.columns([4, 1], vertical_alignment="center")
        left.markdown(f"**Running** for {duration(status.elapsed_seconds)} · {status.current}")
        if right.button("Cancel sweep", key="sweep_cancel", icon=":material/stop_circle:", width="stretch",
                        help="Stops the sweep. Finished runs stay in the store; launching the same sweep again "
                             "trains only the missing ones."):
            with st.spinner("Stopping the sweep…"):
                jobs.cancel_job(status.job_id, store)
            st.rerun(scope="app")
    elif status.state == "finished":
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


# --- page -----------------------------------------------------------------------------------------------
st.title("Sweep")
st.caption("Train a grid of models — techniques × privacy budgets ε × clipping norms × seeds — and store every run. "
           "Runs already in the store are not trained again.")

store_path = resolve_store_path()
try:
    latest = jobs.latest_job(store_path)
except EngineError as exc:
    st.error(str(exc))
    latest = None
running = latest is not None and latest.running

# First visit: one button that shows what the tool does.
try:
    demo = estimate(jobs.DEMO_SPEC, str(store_path), store_signature(store_path), 1)
except EngineError as exc:
    st.error(str(exc))
    demo = None
DEMO_TEXT = ("It trains a small neural network on **adult** (US census: predict whether income is above $50k) "
             "without privacy and with DP-SGD at ε = 0.1, 0.5, 1, 2 and 8 — {runs} runs, about {minutes} minutes on "
             "an idle 2-core CPU, longer when the machine is busy — then shows how much accuracy each privacy budget "
             "costs.")
if demo is not None and demo.to_train:
    if latest is None:  # first visit: make it the obvious thing to do
        with st.container(border=True, key="sweep_demo_box"):
            st.markdown("#### New here? Run the demo sweep")
            st.markdown(DEMO_TEXT.format(runs=demo.total, minutes=round(jobs.DEMO_SECONDS / 60)))
            st.button("Run the demo sweep on adult", key="sweep_demo", type="primary", icon=":material/play_arrow:",
                      on_click=launch, args=(jobs.DEMO_SPEC, 1, "auto"), disabled=running)
    else:
        with st.expander("The demo sweep on adult", key="sweep_demo_more"):
            st.markdown(DEMO_TEXT.format(runs=demo.total, minutes=round(jobs.DEMO_SECONDS / 60)))
            st.button("Run the demo sweep on adult", key="sweep_demo", icon=":material/play_arrow:",
                      on_click=launch, args=(jobs.DEMO_SPEC, 1, "auto"), disabled=running)


@st.fragment(run_every=POLL_RUNNING_S if running else POLL_IDLE_S)
def progress_panel() -> None:
    try:
        status = jobs.latest_job(store_path)
    except EngineError as exc:
        st.error(str(exc))
        return
    if status is not None and status.running != running:
        st.rerun(scope="app")  # started from another tab, or just ended: refresh the summary and the poll rate
    if status is not None:
        with st.container(border=True):
            show_job(status, store_path)


progress_panel()

# --- the form ---------------------------------------------------------------------------------------------
st.subheader("New sweep")
errors: list[str] = []
names = dataset_names(uploads_dir())
preselected = st.session_state.get("selected_dataset")
default_dataset = preselected if preselected in names else ("adult" if "adult" in names else names[0])
available = technique_names()

col_data, col_technique, col_model = st.columns([1, 2, 1])
dataset = col_data.selectbox("Dataset", names, index=names.index(default_dataset), key="sweep_dataset",
                             help="A bundled dataset; the Data page describes each.")
techniques = col_technique.multiselect(
    "Techniques", available, default=[name for name in DEFAULT_TECHNIQUES if name in available], key="sweep_techniques",
    help="\n\n".join(f"**{name}**: {get_technique_class(name).description}" for name in available))
model = col_model.selectbox("Model", ["auto", *MODELS], key="sweep_model",
                            help="auto: an MLP for tables, a CNN for images (mnist). logreg: logistic regression.")
for name in techniques:
    col_technique.caption(f"**{name}**: {get_technique_class(name).description}")

col_eps, col_clip, col_seeds = st.columns(3)
epsilons = numbers("sweep_epsilons", "Target ε values", "0.1, 0.5, 1, 2, 8", float,
                   "Comma-separated privacy budgets. Smaller ε = more privacy, more noise. Only techniques with a "
                   "privacy budget (dp-sgd) use them.", errors, col_eps)
clipping_norms = numbers("sweep_clipping_norms", "Clipping norms C", "1", float,
                         "Comma-separated per-sample gradient clipping norms for DP-SGD, e.g. 0.5, 1, 2.", errors,
                         col_clip)
seeds = numbers("sweep_seeds", "Seeds", "0", int,
                "Comma-separated random seeds: several give an error bar for each point.", errors, col_seeds)

col_epochs, col_batch, col_lr, col_delta = st.columns(4)
epochs = col_epochs.number_input("Epochs", min_value=1, max_value=1000, value=10, step=1, key="sweep_epochs")
batch_size = col_batch.number_input("Batch size", min_value=1, max_value=1_000_000, value=512, step=64,
                                    key="sweep_batch_size", help="Expected batch size (DP-SGD samples batches at random).")
learning_rate = col_lr.number_input("Learning rate", min_value=1e-6, max_value=10.0, value=5e-3, step=1e-3, format="%g",
                                    key="sweep_learning_rate", help="Adam learning rate.")
delta_text = col_delta.text_input("δ", "1e-5", key="sweep_delta",
                                  help="The δ of (ε, δ)-DP: must be below 1 / the number of training rows.")
try:
    delta = float(delta_text)
except ValueError:
    errors.append(f"δ must be a number such as 1e-5, got {delta_text!r}.")
    delta = None

cuda_visible = resolve_device("auto") == "cuda"
col_accountant, col_workers, col_device = st.columns(3)
accountant = col_accountant.selectbox("Accountant", ["prv", "rdp"], key="sweep_accountant", help=ACCOUNTANT_HELP,
                                      format_func={"prv": "PRV (tight)", "rdp": "RDP (conservative)"}.get)
workers = col_workers.number_input("Workers", min_value=1, max_value=max(1, jobs.cpu_count()), value=1, key="sweep_workers",
                                   help="Runs trained at once in separate processes on the CPU (ignored on CUDA).")
device = col_device.selectbox("Device", list(DEVICES), key="sweep_device",
                              help="auto: CUDA when a GPU is visible, else the CPU.")
col_device.caption("A CUDA GPU is visible: auto trains on it." if cuda_visible
                   else "No CUDA GPU is visible here: auto trains on the CPU.")
if device == "cuda" and not cuda_visible:
    errors.append("No CUDA GPU is visible: choose device auto or cpu.")

with st.expander("More settings", key="sweep_more"):
    col_hidden, col_subsample = st.columns(2)
    hidden_units = col_hidden.number_input("MLP hidden units", min_value=1, max_value=4096, value=64, key="sweep_hidden_units")
    subsample = col_subsample.number_input("Train on a subset of rows (0 = all)", min_value=0, value=0, step=1000,
                                           key="sweep_train_subsample",
                                           help="A fixed, seeded subset of the training rows: quicker, less accurate.")

FEDERATED_TECHNIQUES = {name for name in technique_names()
                        if issubclass(get_technique_class(name), FederatedTechnique) or name == "single-silo"}
extra: dict = {}  # settings of the federated and encrypted-inference techniques, only when one is chosen
federated = [name for name in techniques if name in FEDERATED_TECHNIQUES]
if federated:
    with st.expander(f"Federated settings ({', '.join(federated)})", expanded=True, key="sweep_federated"):
        col_clients, col_partition, col_alpha, col_rounds = st.columns(4)
        partition = col_partition.selectbox("Partition", PARTITIONS, key="sweep_partition",
                                            help="iid: random split. dirichlet: label skew (alpha). natural: the "
                                                 "dataset's own silos (heart: its four hospitals). quantity: size skew.")
        n_clients = col_clients.number_input("Clients", min_value=2, value=10, key="sweep_clients",
                                             disabled=partition == "natural",
                                             help="natural: one client per silo of the dataset.")
        alpha = col_alpha.number_input("alpha (skew)", min_value=0.01, value=0.5, key="sweep_alpha",
                                       disabled=partition not in ("dirichlet", "quantity"),
                                       help="Smaller alpha: more different silos.")
        rounds = col_rounds.number_input("Rounds (0 = epochs)", min_value=0, value=0, key="sweep_rounds")
        col_local, col_per_round, col_dropout, col_secure = st.columns(4)
        local_epochs = col_local.number_input("Local epochs", min_value=1, value=1, key="sweep_local_epochs")
        per_round = col_per_round.number_input("Clients per round (0 = all)", min_value=0, value=0,
                                               key="sweep_clients_per_round")
        dropout = col_dropout.number_input("Drop-out chance", min_value=0.0, max_value=0.9, value=0.0,
                                           key="sweep_dropout", help="Chance a picked client drops out mid-round.")
        secure = col_secure.checkbox("Secure aggregation", key="sweep_secure_aggregation",
                                     help="Pairwise-masked sums (Bonawitz et al. 2017): the coordinator sees only "
                                          "masked updates.")
        extra.update(partition=partition, n_clients=None if partition == "natural" else int(n_clients), rounds=int(rounds) or None,
                     alpha=float(alpha) if partition in ("dirichlet", "quantity") else None,
                     local_epochs=int(local_epochs), clients_per_round=int(per_round) or None,
                     dropout=float(dropout) or None, secure_aggregation=secure or None)
if "he-inference" in techniques:
    with st.expander("Encrypted inference settings (he-inference)", expanded=True, key="sweep_he"):
        extra["train_technique"] = st.selectbox(
            "Train the served model with", TRAIN_TECHNIQUES, key="sweep_train_technique",
            help="dp-sgd: the hybrid — a model trained with DP-SGD (the ε values above) and scored encrypted.")

spec = None
if not errors:
    try:
        spec = SweepSpec(dataset=dataset, techniques=tuple(techniques), model=None if model == "auto" else model,
                         epsilons=epsilons, clipping_norms=clipping_norms, seeds=seeds, epochs=int(epochs),
                         batch_size=int(batch_size), learning_rate=float(learning_rate), hidden_units=int(hidden_units),
                         delta=delta, accountant=accountant, train_subsample=int(subsample) or None, **extra)
    except EngineError as exc:
        errors.append(str(exc))
if spec is not None:
    try:
        summary = estimate(spec, str(store_path), store_signature(store_path), int(workers))
    except EngineError as exc:
        errors.append(str(exc))
        spec = None
for message in errors:
    st.error(message)

if spec is not None:
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
# Handled here, not in an on_click callback: a callback's arguments would be the spec of the previous run, before
# an edit that the click itself committed.
if st.button("Launch sweep", key="sweep_launch", type="primary", icon=":material/play_arrow:",
             disabled=spec is None or running,
             help="Runs `frontier sweep` on this grid in the background; you can leave this page."):
    launch(spec, int(workers), device)
    if "sweep_launch_error" not in st.session_state:
        st.rerun()  # the progress panel above shows the new job
if st.session_state.get("sweep_launch_error"):
    st.error(st.session_state["sweep_launch_error"])

# --- past jobs ----------------------------------------------------------------------------------------------
try:
    past = jobs.list_jobs(store_path, limit=10)
except EngineError as exc:
    st.error(str(exc))
    past = []
if past:
    st.subheader("Recent sweeps")
    st.dataframe(pd.DataFrame([{
        "started": job.running_since.astimezone().strftime("%Y-%m-%d %H:%M"), "dataset": job.dataset,
        "runs": job.total, "done": job.done, "cached": job.cached_at_start, "failed": job.failed,
        "state": STATE_LABELS.get(job.state, job.state), "took": "" if job.running else duration(job.elapsed_seconds),
        "job": job.job_id,
    } for job in past]), hide_index=True, width="stretch", key="sweep_past_jobs")
