"""Plotly figures shared by the dashboard and the exported HTML report (no streamlit here)."""

from __future__ import annotations

import html
import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from engine.analysis.frontier import cost_metrics
from engine.present.labels import TRUST_MODEL_LABELS, epsilon_label
from engine.techniques.registry import technique_names

BASELINE_DASHES = ("dash", "dot", "dashdot", "longdash")
MODEL_DASHES = ("solid", "dash", "dot", "dashdot")
# One colour per technique, the same in every chart; red is kept for the Pareto-front circles, grey for references.
PALETTE = ("#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#1a9850",
           "#4575b4", "#a50026", "#762a83", "#66bd63", "#b8860b")
TRIVIAL_COLOR, NOTHING_COLOR = "#555555", "#aaaaaa"
MAX_EPSILON_TICKS = 12  # a tick at every measured epsilon, up to this many
TICK_MERGE_RATIO = 1.1  # measured epsilons within 10% of each other share one tick


def technique_color(technique: str) -> str:
    """The technique's colour: its place among the registered techniques, so every chart agrees."""
    names = technique_names()
    index = names.index(technique) if technique in names else len(names) + sum(map(ord, technique))
    return PALETTE[index % len(PALETTE)]


def _number(value, spec: str = "g", missing: str = "—") -> str:
    return missing if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, spec)


def epsilon_axis_title(front: pd.DataFrame) -> str:
    """'ε (PRV accountant, δ = 1e-05)': every accountant and delta the plotted epsilons come from."""
    pairs = front[["accountant", "delta"]].drop_duplicates().sort_values(["accountant", "delta"])
    parts = list(dict.fromkeys(epsilon_label(accountant, delta) for accountant, delta in pairs.itertuples(index=False)))
    return f"ε ({'; '.join(parts)})" if parts else "ε"


def log_axis(low: float, high: float) -> tuple[list[float], list[float]]:
    """(log10 range, tick values) with plain-number ticks: plotly's own log ticks label 0.9 as "9" on short ranges."""
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


def metric_range(values: np.ndarray, min_span: float = 0.05) -> list[float]:
    """Spans every value and at least `min_span`, so a 0.5-point gap does not look like a cliff."""
    values = values[np.isfinite(values)]
    low, high = (float(values.min()), float(values.max())) if values.size else (0.0, 1.0)
    pad = max((min_span - (high - low)) / 2, 0.0) + 0.08 * max(high - low, min_span)
    return [max(low - pad, 0.0), min(high + pad, 1.0)]


def _plain(value) -> str:
    """Text from the store (technique, model names) for plotly, which reads a few HTML tags in titles, legends and
    hovers: escaped, so it shows as written and never makes a link or a tag."""
    return html.escape(str(value))


def _hover(row, technique: str, model: str, label: str, mean: str, std: str) -> str:
    return (f"<b>{_plain(technique)} · {_plain(model)}</b><br>"
            f"ε = {row.epsilon:.3f} ({epsilon_label(row.accountant, row.delta)})<br>"
            f"{label} = {getattr(row, mean):.4f} ± {getattr(row, std):.4f}<br>"
            f"target ε = {_number(row.target_epsilon)} · clipping norm C = {_number(row.max_grad_norm)}<br>"
            f"seeds = {row.seeds} · epochs = {row.epochs} · batch = {row.batch_size} · lr = {_number(row.learning_rate)}")


def _add_baselines(figure: go.Figure, reference: pd.DataFrame, mean: str) -> None:
    for row, dash in zip(reference.itertuples(index=False), BASELINE_DASHES):
        value = getattr(row, mean)
        line = dict(color="#7f7f7f", width=1.5, dash=dash)
        figure.add_hline(y=value, line=line)
        # A shape has no legend entry: an empty trace names it in the legend instead of a label on the plot.
        figure.add_trace(go.Scatter(x=[None], y=[None], mode="lines", line=line, hoverinfo="skip",
                                    name=f"non-private baseline ({_plain(row.model)}): {value:.3f}"))


def _epsilon_ticks(front: pd.DataFrame) -> tuple[list[float], list[float]]:
    """(log range, tick values): a tick at every measured epsilon when there are few, else plain-number ticks."""
    x_range, tick_values = log_axis(float(front["epsilon"].min()), float(front["epsilon"].max()))
    measured = sorted({float(f"{value:.3g}") for value in front["epsilon"]})
    # Epsilons a few percent apart (0.993 reported for a target of 1) would print on top of each other: one tick
    # per cluster, labelled with its roundest value.
    clusters: list[list[float]] = []
    for value in measured:
        if clusters and value <= clusters[-1][0] * TICK_MERGE_RATIO:
            clusters[-1].append(value)
        else:
            clusters.append([value])
    ticks = [min(cluster, key=lambda value: (len(f"{value:g}"), -value)) for cluster in clusters]
    return x_range, ticks if len(ticks) <= MAX_EPSILON_TICKS else tick_values


def frontier_figure(front: pd.DataFrame, reference: pd.DataFrame, metric: str = "accuracy",
                    chosen: tuple[float, float] | None = None, show_band: bool = True) -> go.Figure:
    """Metric against epsilon (log axis): one line per technique and model (the best configuration at each target
    epsilon, mean over seeds, ±1 std band), every configuration a marker, the Pareto front over every technique
    circled, points that learned nothing greyed, the non-private baseline and the trivial answer (always the
    commonest class) as reference lines, `chosen` (epsilon, metric) starred."""
    mean, std = f"{metric}_mean", f"{metric}_std"
    label = metric.replace("_", " ")
    split = front["split"].iloc[0] if "split" in front and len(front) else "test"
    learned = front["learned"].astype(bool) if "learned" in front else pd.Series(True, index=front.index)
    figure = go.Figure()
    models = sorted(front["model"].dropna().unique())
    for (technique, model), points in front[learned].groupby(["technique", "model"], sort=True):
        color, dash = technique_color(technique), MODEL_DASHES[models.index(model) % len(MODEL_DASHES)]
        points = points.sort_values("epsilon")
        hover = [_hover(row, technique, model, label, mean, std) for row in points.itertuples(index=False)]
        name = f"{_plain(technique)} · {_plain(model)}"
        # Several clipping norms per target epsilon would make a line zigzag: the band and line follow the best
        # configuration per epsilon, every configuration stays a marker.
        best = points.sort_values(mean, ascending=False).drop_duplicates("target_epsilon").sort_values("epsilon")
        figure.add_trace(go.Scatter(x=best["epsilon"], y=best[mean], mode="lines", name=name,
                                    line=dict(color=color, dash=dash), legendgroup=name, hoverinfo="skip"))
        if show_band and (best[std] > 0).any():
            figure.add_trace(go.Scatter(
                x=pd.concat([best["epsilon"], best["epsilon"][::-1]]),
                y=pd.concat([best[mean] + best[std], (best[mean] - best[std])[::-1]]),
                fill="toself", mode="lines", line=dict(width=0, color=color), opacity=0.18, legendgroup=name,
                showlegend=False, hoverinfo="skip", name=f"{name} ±1 std"))
        figure.add_trace(go.Scatter(x=points["epsilon"], y=points[mean], mode="markers", marker=dict(size=8, color=color),
                                    legendgroup=name, showlegend=False, hovertext=hover, hoverinfo="text", name=name,
                                    customdata=points[["point_id"]].to_numpy()))
    nothing = front[~learned]
    if not nothing.empty:
        hover = [_hover(row, row.technique, row.model, label, mean, std) + "<br><b>learned nothing</b>"
                 for row in nothing.itertuples(index=False)]
        figure.add_trace(go.Scatter(x=nothing["epsilon"], y=nothing[mean], mode="markers", name="learned nothing",
                                    marker=dict(symbol="x", size=9, color=NOTHING_COLOR), hovertext=hover,
                                    hoverinfo="text", customdata=nothing[["point_id"]].to_numpy()))
    on_front = front[front["on_global_front"]] if "on_global_front" in front else front[front["on_front"]]
    if not on_front.empty:
        figure.add_trace(go.Scatter(x=on_front["epsilon"], y=on_front[mean], name="Pareto front (all techniques)",
                                    mode="markers", hoverinfo="skip",
                                    marker=dict(symbol="circle-open", size=17, line=dict(width=2.5), color="#d62728")))
    if chosen is not None:
        figure.add_trace(go.Scatter(x=[chosen[0]], y=[chosen[1]], name="chosen", mode="markers", hoverinfo="skip",
                                    marker=dict(symbol="star", size=20, color="#ff7f0e", line=dict(width=1, color="black"))))
    _add_baselines(figure, reference, mean)
    trivial = front["trivial"].dropna() if "trivial" in front else pd.Series(dtype=float)
    if not trivial.empty:
        line = dict(color=TRIVIAL_COLOR, width=1.5, dash="dot")
        figure.add_hline(y=float(trivial.iloc[0]), line=line)
        figure.add_trace(go.Scatter(x=[None], y=[None], mode="lines", line=line, hoverinfo="skip",
                                    name=f"always the commonest class: {float(trivial.iloc[0]):.3f}"))
    figure.update_layout(height=480, margin=dict(l=10, r=10, t=60, b=10), hovermode="closest",
                         legend=dict(orientation="h", yanchor="bottom", y=1.02, xanchor="left", x=0, title_text=""),
                         yaxis_title=f"{label}, {split} rows (mean over seeds ± 1 std)")
    if not front.empty:
        x_range, tick_values = _epsilon_ticks(front)
        figure.update_xaxes(type="log", title_text=epsilon_axis_title(front), range=x_range, tickvals=tick_values,
                            ticktext=[format(value, "g") for value in tick_values])
        values = np.concatenate([(front[mean] - front[std]).to_numpy(float), (front[mean] + front[std]).to_numpy(float),
                                 reference[mean].to_numpy(float), trivial.to_numpy(float)])
        figure.update_yaxes(range=metric_range(values))
    return figure


def cost_figure(points: pd.DataFrame, metric: str, cost: str) -> go.Figure:
    """Metric against a cost (training seconds, memory, later bytes or latency), private and non-private."""
    label, unit = cost_metrics()[cost]
    split = points["split"].iloc[0] if "split" in points and len(points) else "test"
    figure = go.Figure()
    learned = points["learned"].astype(bool) if "learned" in points else pd.Series(True, index=points.index)
    groups = [((technique, model), group, True) for (technique, model), group in
              points[learned].groupby(["technique", "model"], sort=True)]
    if (~learned).any():  # greyed as on the frontier: no better than always predicting the commonest class
        groups.append((("learned nothing", None), points[~learned], False))
    for (technique, model), group, did_learn in groups:
        epsilon_text = [f"ε = {e:.3g}" if pd.notna(e) else "no privacy" for e in group["epsilon"]]
        marker = dict(size=9, color=technique_color(technique)) if did_learn else dict(size=9, symbol="x",
                                                                                       color=NOTHING_COLOR)
        figure.add_trace(go.Scatter(
            x=group["cost_mean"], y=group["metric_mean"], mode="markers",
            name=f"{_plain(technique)} · {_plain(model)}" if did_learn else technique, marker=marker, hoverinfo="text",
            hovertext=[f"<b>{_plain(t)} · {_plain(m_)}</b>{'' if did_learn else ' (learned nothing)'}<br>{text} · C = {_number(c)}<br>"
                       f"{metric} = {m:.4f}<br>{label} = {v:.3g} {unit}" for t, m_, text, c, m, v in
                       zip(group["technique"], group["model"], epsilon_text, group["max_grad_norm"],
                           group["metric_mean"], group["cost_mean"])]))
    figure.update_layout(height=380, margin=dict(l=10, r=10, t=40, b=10),
                         legend=dict(orientation="h", yanchor="bottom", y=1.02, xanchor="left", x=0),
                         xaxis_title=f"{label} ({unit}, mean over seeds)",
                         yaxis_title=f"{metric.replace('_', ' ')}, {split} rows")
    trivial = points["trivial"].dropna() if "trivial" in points else pd.Series(dtype=float)
    if not trivial.empty:
        line = dict(color=TRIVIAL_COLOR, width=1.5, dash="dot")
        figure.add_hline(y=float(trivial.iloc[0]), line=line)
        figure.add_trace(go.Scatter(x=[None], y=[None], mode="lines", line=line, hoverinfo="skip",
                                    name=f"always the commonest class: {float(trivial.iloc[0]):.3f}"))
    return figure


def clipping_heatmap(grid: pd.DataFrame, metric: str) -> go.Figure:
    """Target epsilon x clipping norm -> mean metric."""
    figure = go.Figure(go.Heatmap(
        z=grid.to_numpy(), x=[format(v, "g") for v in grid.columns], y=[format(v, "g") for v in grid.index],
        colorscale="Viridis", zmin=0.0, zmax=1.0, colorbar=dict(title=metric.replace("_", " ")),
        text=np.vectorize(lambda v: "" if np.isnan(v) else f"{v:.3f}")(grid.to_numpy(dtype=float)),
        texttemplate="%{text}", hovertemplate="target ε %{x}, C %{y}: %{z:.4f}<extra></extra>"))
    figure.update_layout(height=320, margin=dict(l=10, r=10, t=30, b=10), xaxis_title="target ε",
                         yaxis_title="clipping norm C", xaxis_type="category", yaxis_type="category")
    return figure


def local_global_figure(table: pd.DataFrame, metric: str) -> go.Figure:
    """Grouped bars at each target epsilon: every central-DP technique next to every local-DP one."""
    figure = go.Figure()
    for (trust_model, technique, model), group in table.groupby(["trust_model", "technique", "model"], sort=True):
        trust = TRUST_MODEL_LABELS.get(trust_model, trust_model)
        figure.add_trace(go.Bar(
            x=[format(e, "g") for e in group["target_epsilon"]], y=group["metric_mean"],
            error_y=dict(type="data", array=group["metric_std"]), name=f"{_plain(technique)} · {_plain(model)} ({trust})",
            marker=dict(color=technique_color(technique), pattern_shape="/" if trust_model == "local" else ""),
            hovertemplate=f"{_plain(technique)} · {_plain(model)}, {trust}<br>target ε %{{x}}: %{{y:.4f}}<extra></extra>"))
    values = (table["metric_mean"] - table["metric_std"]).to_numpy(float)
    low = max(0.0, float(np.nanmin(values)) - 0.05) if len(values) else 0.0
    figure.update_layout(barmode="group", height=380, margin=dict(l=10, r=10, t=40, b=10),
                         legend=dict(orientation="h", yanchor="bottom", y=1.02, xanchor="left", x=0),
                         xaxis_title="target ε (equal budget)", yaxis_title=metric.replace("_", " "),
                         yaxis_range=[low, 1.0])
    return figure
