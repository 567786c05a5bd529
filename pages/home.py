"""Overview: the measured privacy-utility frontier in the result store, its runs, and the dataset catalogue."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from engine.data import dataset_names, get_dataset_info
from engine.errors import EngineError
from engine.frontier import baselines, pareto_front, summarise
from engine.store import ResultStore, resolve_store_path

METRIC = "accuracy"
ACCOUNTANT_NAMES = {"prv": "PRV", "rdp": "RDP"}
# What the page reads from the store; the JSON columns (config, versions, extra) stay behind.
RUN_COLUMNS = ["run_id", "status", "error", "dataset", "technique", "model", "seed", "target_epsilon", "epsilon",
               "delta", "accountant", "max_grad_norm", "epochs", "batch_size", "learning_rate", "accuracy",
               "balanced_accuracy", "roc_auc", "train_seconds", "created_at"]
CATALOGUE_COLUMNS = ["name", "task", "rows", "label", "licence", "sensitive_columns", "bounds"]
SWEEP_HINT = "frontier sweep --dataset adult"


# --- data ---------------------------------------------------------------------------------------------------
@st.cache_data(show_spinner=False)
def load_catalogue() -> pd.DataFrame:
    return pd.DataFrame([get_dataset_info(name).summary() for name in dataset_names()])


def store_signature(path: Path) -> tuple:
    """Changes whenever a run is written (SQLite in WAL mode writes to the -wal file first)."""
    signature = []
    for part in (path, path.with_name(path.name + "-wal")):
        try:
            stat = part.stat()
            signature.append((stat.st_mtime_ns, stat.st_size))
        except OSError:
            signature.append(None)
    return tuple(signature)


@st.cache_data(show_spinner=False)
def load_runs(path: str, signature: tuple) -> pd.DataFrame:  # noqa: ARG001 - signature is the cache key
    with ResultStore(path, create=False) as store:
        runs = store.dataframe()
    runs = runs[RUN_COLUMNS].copy()
    for column in ("target_epsilon", "epsilon", "delta", "max_grad_norm", "learning_rate", "accuracy",
                   "balanced_accuracy", "roc_auc", "train_seconds"):
        runs[column] = pd.to_numeric(runs[column], errors="coerce").astype(float)
    return runs


def frontier_points(runs: pd.DataFrame, dataset: str, metric: str = METRIC) -> tuple[pd.DataFrame, pd.DataFrame, int]:
    """(private points with `on_front`, non-private baselines, private points left out: epsilon not finite)."""
    summary = summarise(runs[runs["dataset"] == dataset], metric)
    summary["epsilon"] = pd.to_numeric(summary["epsilon"], errors="coerce").astype(float)
    front = pareto_front(summary, metric)
    plottable = np.isfinite(front["epsilon"].to_numpy(float)) & (front["epsilon"].to_numpy(float) > 0)
    return front[plottable].reset_index(drop=True), baselines(summary), int((~plottable).sum())


def epsilon_axis_title(front: pd.DataFrame) -> str:
    """'ε (PRV accountant, δ = 1e-05)': every accountant and delta the plotted epsilons come from."""
    pairs = front[["accountant", "delta"]].drop_duplicates().sort_values(["accountant", "delta"])
    parts = [f"{ACCOUNTANT_NAMES.get(accountant, str(accountant))} accountant, δ = {delta:.0e}"
             for accountant, delta in pairs.itertuples(index=False)]
    return f"ε ({'; '.join(parts)})" if parts else "ε"


def _number(value, spec: str = "g", missing: str = "—") -> str:
    return missing if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, spec)


# --- figure -------------------------------------------------------------------------------------------------
@st.cache_data(show_spinner=False)
def frontier_figure(front: pd.DataFrame, reference: pd.DataFrame, metric: str = METRIC) -> go.Figure:
    mean, std = f"{metric}_mean", f"{metric}_std"
    label = metric.replace("_", " ")
    figure = go.Figure()
    for (technique, model), points in front.groupby(["technique", "model"], sort=True):
        points = points.sort_values("epsilon")
        hover = [
            f"<b>{technique} · {model}</b><br>"
            f"ε = {row.epsilon:.3f} ({ACCOUNTANT_NAMES.get(row.accountant, row.accountant)}, δ = {row.delta:.0e})<br>"
            f"{label} = {getattr(row, mean):.4f} ± {getattr(row, std):.4f}<br>"
            f"target ε = {_number(row.target_epsilon)} · clipping norm C = {_number(row.max_grad_norm)}<br>"
            f"seeds = {row.seeds} · epochs = {row.epochs} · batch = {row.batch_size} · lr = {_number(row.learning_rate)}"
            for row in points.itertuples(index=False)
        ]
        # A line joins the points only where they differ in epsilon alone; several clipping norms (or other
        # settings) per target epsilon would make it zigzag, so those stay markers and the front is circled.
        one_per_target = not points.duplicated(["target_epsilon"]).any()
        figure.add_trace(go.Scatter(
            x=points["epsilon"], y=points[mean], name=f"{technique} · {model}",
            mode="lines+markers" if one_per_target else "markers",
            error_y=dict(type="data", array=points[std], visible=True, thickness=1.2, width=4),
            marker=dict(size=8), hovertext=hover, hoverinfo="text",
        ))
    on_front = front[front["on_front"]]
    if not on_front.empty:
        figure.add_trace(go.Scatter(
            x=on_front["epsilon"], y=on_front[mean], name="Pareto front", mode="markers", hoverinfo="skip",
            marker=dict(symbol="circle-open", size=17, line=dict(width=2.5), color="#d62728"),
        ))
    for row, dash in zip(reference.itertuples(index=False), ("dash", "dot", "dashdot", "longdash")):
        value = getattr(row, mean)
        line = dict(color="#7f7f7f", width=1.5, dash=dash)
        figure.add_hline(y=value, line=line)
        # The line itself is a shape, which has no legend entry: an empty trace names it in the legend instead
        # of a label on the plot that would collide with points lying near the baseline.
        figure.add_trace(go.Scatter(x=[None], y=[None], mode="lines", line=line, hoverinfo="skip",
                                    name=f"non-private baseline ({row.model}): {value:.3f}"))
    figure.update_layout(
        height=460, margin=dict(l=10, r=10, t=40, b=10), hovermode="closest",
        legend=dict(orientation="h", yanchor="bottom", y=1.02, xanchor="left", x=0, title_text=""),
        yaxis_title=f"{label} (mean over seeds, bars = ±1 std)",
    )
    x_range, tick_values = _log_axis(float(front["epsilon"].min()), float(front["epsilon"].max()))
    figure.update_xaxes(type="log", title_text=epsilon_axis_title(front), range=x_range, tickvals=tick_values,
                        ticktext=[format(value, "g") for value in tick_values])
    figure.update_yaxes(range=_metric_range(front, reference, metric))
    return figure


def _log_axis(low: float, high: float) -> tuple[list[float], list[float]]:
    """(log10 range, tick values) for epsilons in [low, high]: a little room either side, and plain-number ticks
    (0.05, 0.1, 0.2, ...) because plotly's own log ticks label 0.9 as "9" on short ranges."""
    low_log, high_log = math.log10(low), math.log10(high)
    span = max(high_log - low_log, 0.3)
    middle = (low_log + high_log) / 2
    lower, upper = middle - span / 2 - 0.06 * span, middle + span / 2 + 0.06 * span

    def ticks(mantissas: tuple[float, ...]) -> list[float]:
        values = (float(f"{m * 10.0 ** e:.6g}") for e in range(math.floor(lower) - 1, math.ceil(upper) + 1)
                  for m in mantissas)
        return [value for value in values if lower <= math.log10(value) <= upper]

    chosen = ticks((1.0, 2.0, 5.0))
    if len(chosen) < 4:
        chosen = ticks((1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0))
    elif len(chosen) > 10:
        chosen = ticks((1.0,))
    return [lower, upper], chosen


def _metric_range(front: pd.DataFrame, reference: pd.DataFrame, metric: str, min_span: float = 0.05) -> list[float]:
    """Spans every point, error bar and baseline, and at least `min_span`, so a 0.5-point gap does not look like
    a cliff."""
    mean, std = f"{metric}_mean", f"{metric}_std"
    values = np.concatenate([(front[mean] - front[std]).to_numpy(float), (front[mean] + front[std]).to_numpy(float),
                             reference[mean].to_numpy(float)])
    values = values[np.isfinite(values)]
    low, high = (float(values.min()), float(values.max())) if values.size else (0.0, 1.0)
    pad = max((min_span - (high - low)) / 2, 0.0) + 0.08 * max(high - low, min_span)
    low, high = max(low - pad, 0.0), min(high + pad, 1.0)
    return [low, high]


# --- page ---------------------------------------------------------------------------------------------------
st.title("Privacy Frontier")
st.caption("What privacy costs on your kind of data: the accuracy a model gives up at each privacy budget ε, "
           "next to the same model trained without privacy.")

store_path = resolve_store_path()

st.subheader("Measured frontier")
runs = None
if not store_path.exists():
    st.info(f"No results yet: there is no result store at `{store_path}`. Measure a frontier from a terminal with "
            f"`{SWEEP_HINT}` (it trains a non-private baseline and DP-SGD over a range of ε), then reload this page. "
            "The dashboard's own Sweep page comes later.", icon="ℹ️")
else:
    try:
        runs = load_runs(str(store_path), store_signature(store_path))
    except EngineError as exc:
        st.error(str(exc))
    else:
        if runs.empty:
            runs = None
            st.info(f"The result store `{store_path}` holds no runs yet. Measure a frontier from a terminal with "
                    f"`{SWEEP_HINT}`, then reload this page. The dashboard's own Sweep page comes later.", icon="ℹ️")

if runs is not None:
    try:
        catalogue_order = {name: index for index, name in enumerate(dataset_names())}
    except EngineError:
        catalogue_order = {}
    datasets = sorted(runs["dataset"].dropna().unique(), key=lambda name: (catalogue_order.get(name, len(catalogue_order)), name))
    dataset = st.selectbox("Dataset", datasets, key="overview_dataset",
                           help="Datasets that have runs in the result store.")
    chosen = runs[runs["dataset"] == dataset]
    n_ok, n_failed = int((chosen["status"] == "ok").sum()), int((chosen["status"] != "ok").sum())
    try:
        front, reference, left_out = frontier_points(runs, dataset)
    except EngineError as exc:
        st.error(str(exc))
        front, reference, left_out = None, None, 0
    if front is not None:
        if front.empty and reference.empty:
            st.warning(f"No successful runs on {dataset} yet ({n_failed} failed): see their errors in the table below.")
        elif front.empty:
            value = reference[f"{METRIC}_mean"].iloc[0]
            st.info(f"Only non-private runs on {dataset} so far ({METRIC} {value:.3f}). Add private runs with "
                    f"`frontier sweep --dataset {dataset}`.", icon="ℹ️")
        else:
            st.plotly_chart(frontier_figure(front, reference), key="overview_frontier_chart", width="stretch")
            notes = [f"{n_ok} successful and {n_failed} failed run(s) on {dataset}.",
                     "Each ε is the largest over seeds, as reported by the named accountant for the training actually "
                     "done; circled points are on the Pareto front (no other configuration has lower ε and higher "
                     f"{METRIC}).",
                     "Choosing the best clipping norm per ε from these runs spends privacy too: every run touched the "
                     "same private data."]
            if left_out:
                notes.append(f"{left_out} configuration(s) with an infinite ε are not plotted.")
            st.caption(" ".join(notes))

    st.subheader(f"Runs on {dataset}")
    table = chosen.assign(
        accountant=[f"{ACCOUNTANT_NAMES.get(a, a)}, δ = {d:.0e}" if isinstance(a, str) and a else "— (no privacy)"
                    for a, d in zip(chosen["accountant"], chosen["delta"])],
        error=chosen["error"].fillna(""),
    )[["run_id", "status", "technique", "model", "seed", "target_epsilon", "epsilon", "accountant", "accuracy", "error"]]
    st.dataframe(
        table, key="overview_runs", hide_index=True, width="stretch", placeholder="—",
        column_config={
            "target_epsilon": st.column_config.NumberColumn("target ε", format="%.3g"),
            "epsilon": st.column_config.NumberColumn("ε (reported)", format="%.3f",
                                                     help="Reported by the accountant named beside it; — : no privacy."),
            "accountant": st.column_config.TextColumn("accountant"),
            "accuracy": st.column_config.NumberColumn("accuracy", format="%.4f"),
            "error": st.column_config.TextColumn("error", width="large"),
        },
    )

st.subheader("Datasets")
try:
    catalogue = load_catalogue()
except EngineError as exc:
    st.error(str(exc))
    catalogue = None
if catalogue is not None:
    st.dataframe(
        catalogue[CATALOGUE_COLUMNS], key="overview_catalogue", hide_index=True, width="stretch", placeholder="—",
        column_config={
            "rows": st.column_config.NumberColumn("rows", format="localized"),
            "licence": st.column_config.TextColumn("licence", width="medium"),
            "sensitive_columns": st.column_config.TextColumn("sensitive columns", width="large"),
            "bounds": st.column_config.TextColumn(
                "bounds", help="public: preprocessing bounds from domain knowledge (no privacy spent); "
                               "data: computed from the rows (leaks a little, flagged on every run)."),
        },
    )
    for card in catalogue.to_dict("records"):
        with st.expander(f"{card['name']} — {card['title']}", key=f"overview_card_{card['name']}"):
            st.markdown(card["description"])
            st.markdown(f"**Sensitive columns:** {card['sensitive_columns']}")
            st.markdown(f"**Split:** {card['split']}  \n**Licence:** {card['licence']}")
            st.markdown(f"**Provenance:** {card['provenance']}")
