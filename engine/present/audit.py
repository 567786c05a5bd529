"""Saying what an audit measured: sentences (Decide, the report, the CLI), frontier markers, the report section.

The audit reads the private training data, so its figures are for internal review: the report carries them
only when the user includes them (`released_finding`); a breach is flagged in every artefact all the same,
because a report must never claim a guarantee that an audit refuted.
"""

from __future__ import annotations

import html
import math
import re
from dataclasses import dataclass

import pandas as pd
import plotly.graph_objects as go

from engine.analysis.audits import REPORTED_FPR, AuditFinding, tpr_interval
from engine.audit.figures import BREACH_MESSAGE, INTERVALS, AuditFigures
from engine.audit.settings import ATTACK_LABELS

READS_PRIVATE_DATA = ("The audit trained on and scored the private training rows: its figures describe that data, so "
                      "they are for internal review and are left out of exports unless you include them.")


def _percent(value: float) -> str:
    return "—" if value is None or not math.isfinite(value) else f"{value * 100:.3g}%"


def attack_label(attack: str, white_box: bool = False) -> str:
    label = ATTACK_LABELS.get(attack, attack)
    return f"{label}, white-box gradient canaries" if white_box else label


def breach_sentence(figures: AuditFigures) -> str:
    return (f"**{BREACH_MESSAGE[0].upper() + BREACH_MESSAGE[1:]}.** The audit refutes the guarantee: ε is at least "
            f"{figures.lower_bound.epsilon:.3g} at {figures.lower_bound.confidence:.0%} confidence, above this model's "
            f"ε = {figures.epsilon:.3g}. Do not release it: check the implementation and the assumptions behind the "
            f"accountant (sampling, clipping, noise) first.")


def audit_sentence(finding: AuditFinding) -> str:
    """The Decide and report sentence: what an attack of this kind reached, against the bound and the baseline."""
    figures, fpr = finding.figures, finding.fpr
    tpr, bound = tpr_interval(figures, fpr), figures.rate_at(fpr).bound
    confidence = figures.lower_bound.confidence
    text = (f"**What an attack measured.** An attack of this kind ({attack_label(finding.attack, finding.white_box)}) "
            f"reached a true-positive rate of **{_percent(tpr.value)}** at a false-positive rate of {_percent(fpr)} "
            f"({confidence:.0%} interval {_percent(tpr.low)}–{_percent(tpr.high)}; the bound allows at most "
            f"{_percent(bound)})")
    if finding.baseline is not None:
        same = finding.baseline_attack == finding.attack and not finding.white_box
        text += (f"; on the model trained without privacy it reached {_percent(tpr_interval(finding.baseline, fpr).value)}"
                 + ("" if same else f" ({attack_label(finding.baseline_attack)})") + ".")
    else:
        text += ". The model trained without privacy was not audited: audit a baseline run to see what an attack gets " \
                "with no privacy at all."
    text += (f" Measured lower bound on ε: {figures.lower_bound.epsilon:.3g} ({confidence:.0%} confidence) against "
             f"the guaranteed {figures.epsilon:.3g}." if figures.epsilon is not None else "")
    return text + (" " + breach_sentence(figures) if figures.breach else "")


def figures_lines(record: dict) -> list[str]:
    """The CLI's summary of one audit record."""
    figures = AuditFigures.from_dict(record["figures"])
    settings = record["settings"]
    lines = [f"audit {record['audit_id']} of run {record['run_id']} ({record['technique']} on {record['dataset']}): "
             f"{attack_label(record['attack'], settings.get('white_box'))}",
             f"  trained {figures.extra.get('models_trained')} model(s); {figures.n_in} rows in, {figures.n_out} out; "
             f"{figures.extra.get('seconds', 0):.1f} s"]
    guarantee = "no guarantee (non-private)" if figures.epsilon is None else f"ε = {figures.epsilon:.4g}"
    evidence = (f"{figures.lower_bound.correct}/{figures.lower_bound.guesses} guesses right" if figures.lower_bound.guesses
                else "no guess count refutes even ε = 0")
    lines.append(f"  {guarantee}; measured ε lower bound {figures.lower_bound.epsilon:.4g} "
                 f"({figures.lower_bound.confidence:.0%} confidence, {evidence})")
    lines.append(f"  AUC {figures.auc.value:.3f} [{figures.auc.low:.3f}, {figures.auc.high:.3f}]")
    for rate in figures.rates:
        bound = "" if math.isnan(rate.bound) else f" (bound {_percent(rate.bound)}{'' if rate.within_bound else ', ABOVE'})"
        lines.append(f"  TPR at FPR {_percent(rate.fpr)}: {_percent(rate.tpr.value)} "
                     f"[{_percent(rate.tpr.low)}, {_percent(rate.tpr.high)}]{bound}")
    lines.append(f"  intervals: {INTERVALS}")
    if figures.breach:
        lines.append(f"  BREACH: {BREACH_MESSAGE}")
    return lines


@dataclass(frozen=True)
class ReportAudit:
    """What an exported report may say about audits: the figures when included, else only a breach flag."""

    finding: AuditFinding | None  # None: figures withheld
    breach: bool


def released_finding(finding: AuditFinding | None, include: bool) -> ReportAudit | None:
    if finding is None or not (include or finding.breach):
        return None
    return ReportAudit(finding=finding if include else None, breach=finding.breach)


def report_section(audit: ReportAudit | None) -> str:
    """The report's audit section (HTML): empty when there is nothing to release."""
    if audit is None:
        return ""
    if audit.finding is None:
        return (f"<h2>Empirical audit</h2><p><strong>{html.escape(BREACH_MESSAGE[0].upper() + BREACH_MESSAGE[1:])}."
                "</strong> An audit of this configuration measured more leakage than its ε allows. The audit's figures "
                "are withheld from this report (they were computed on the private data); do not release the model "
                "before the cause is found.</p>")
    text = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", html.escape(audit_sentence(audit.finding)))
    return (f"<h2>Empirical audit</h2><p>{text}</p><p class=note>{html.escape(READS_PRIVATE_DATA)} Included here at "
            f"the exporter's request. Intervals: {html.escape(INTERVALS)}.</p>")


# --- the frontier chart -----------------------------------------------------------------------------------
def add_audit_markers(figure: go.Figure, front: pd.DataFrame, audited: pd.DataFrame, metric: str) -> go.Figure:
    """Beside each audited point, its measured ε lower bound (a diamond joined to the point; drawn at the axis' left
    end when the bound is below it) and, in the hover, the attack's TPR at 1% FPR; a breach is a red cross. The
    non-private baseline's audit gets a legend line."""
    mean = f"{metric}_mean"
    points = front.set_index("point_id")
    x_low = 10 ** figure.layout.xaxis.range[0] if figure.layout.xaxis.range else None
    shown_legend = False
    for row in audited.itertuples(index=False):
        if row.point_id not in points.index or row.epsilon is None or pd.isna(row.epsilon):
            continue
        point = points.loc[row.point_id]
        y, x = float(point[mean]), float(point["epsilon"])
        lower = row.epsilon_lower_bound
        x_marker = max(lower, x_low) if x_low else (lower if lower > 0 else x / 10)
        hover = (f"<b>audit: {attack_label(row.attack, row.white_box)}</b><br>ε = {x:.3g}, measured lower bound "
                 f"{lower:.3g}<br>TPR at FPR 1% = {_percent(row.tpr)} [{_percent(row.tpr_low)}, "
                 f"{_percent(row.tpr_high)}] (bound {_percent(row.tpr_bound)})<br>AUC {row.auc:.3f}")
        color = "#d62728" if row.breach else "#333333"
        figure.add_trace(go.Scatter(x=[x_marker, x], y=[y, y], mode="lines", line=dict(color=color, dash="dot", width=1.5),
                                    hoverinfo="skip", showlegend=False, legendgroup="audit"))
        figure.add_trace(go.Scatter(x=[x_marker], y=[y], mode="markers", hovertext=[hover], hoverinfo="text",
                                    name="measured ε lower bound (audit)", legendgroup="audit", showlegend=not shown_legend,
                                    marker=dict(symbol="x" if row.breach else "diamond-open", size=12 if row.breach else 10,
                                                color=color, line=dict(width=2))))
        shown_legend = True
        if row.breach:
            figure.add_annotation(x=math.log10(x_marker), y=y, text=BREACH_MESSAGE, showarrow=True, ay=-40,
                                  arrowcolor="#d62728", font=dict(color="#d62728"), xanchor="center")
    for row in audited[audited["technique"] == "baseline"].itertuples(index=False):
        figure.add_trace(go.Scatter(x=[None], y=[None], mode="markers", marker=dict(symbol="diamond-open", color="#7f7f7f"),
                                    hoverinfo="skip", name=f"attack on the non-private {row.model}: TPR {_percent(row.tpr)} "
                                                           f"at FPR 1% (AUC {row.auc:.2f})"))
    return figure
