"""Exports of a chosen run: a sweep spec that reproduces it exactly, and a self-contained HTML report."""

from __future__ import annotations

import html
import json
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import yaml

from engine import ENGINE_VERSION
from engine.analysis.decide import DecisionConstraints, DecisionSummary, rank_candidates
from engine.analysis.frontier import cost_view, frontier_view
from engine.config import RunConfig
from engine.data import DatasetInfo
from engine.present.audit import ReportAudit, report_section
from engine.present.charts import cost_figure, frontier_figure
from engine.present.registry import registry_html
from engine.present.sentences import decision_sentences, preprocessing_sentence
from engine.present.static_charts import embed_figures
from engine.present.synthetic import report_section as synthetic_report_section


@dataclass(frozen=True)
class ExportBundle:
    run_id: str
    config_yaml: str  # `frontier sweep --config` input reproducing exactly this run
    report_html: str  # self-contained: opens offline
    reproduces: bool  # the spec plans to the same run_id with today's data and engine
    decision_json: str | None = None  # the decision record (engine.gate.record), with its content hash
    printable_html: str | None = None  # the report with its charts as PNG images, for the PDF (present/pdf.py)


def _markdown_to_html(text: str) -> str:
    return re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", html.escape(text)).replace("`", "")


def _table(frame: pd.DataFrame, highlight: int | None = None) -> str:
    rows = []
    for index, row in enumerate(frame.itertuples(index=False)):
        cells = "".join(f"<td>{html.escape(_cell(value))}</td>" for value in row)
        rows.append(f"<tr{' class=chosen' if index == highlight else ''}>{cells}</tr>")
    # Headers as words ("max grad norm"), so that a table can wrap to the page instead of running off it.
    head = "".join(f"<th>{html.escape(str(column).replace('_', ' '))}</th>" for column in frame.columns)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _cell(value) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return "—"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


STYLE = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;color:#1d2b36;line-height:1.5}
h1{font-size:1.6em}h2{font-size:1.2em;margin-top:1.8em;border-bottom:1px solid #ddd}table{border-collapse:collapse;
font-size:.9em;margin:.5em 0}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left}tr.chosen{background:#fff3cd;
font-weight:600}pre{background:#f6f8fa;padding:1em;overflow-x:auto;white-space:pre-wrap}.note{color:#555;font-size:.9em}
td{overflow-wrap:break-word}figure.chart{margin:1em 0}figure.chart svg,figure.chart img{max-width:100%;height:auto}
code.hash{overflow-wrap:anywhere;font-size:.95em}table.registry th,table.signoff th{width:12em;vertical-align:top}
td.blank{min-width:24em;height:1.8em}
@media print{body{margin:0;max-width:none;font-size:10pt}table{font-size:8pt;width:100%}td,th{padding:.15em .3em}
figure.chart,tr{break-inside:avoid}h2{break-after:avoid}}"""


def build_export(record: dict, spec_mapping: dict, runs: pd.DataFrame, info: DatasetInfo, *, reproduces: bool,
                 summary: DecisionSummary | None, metric: str = "accuracy",
                 audit: ReportAudit | None = None, upload_schema: dict | None = None, decision: dict | None = None,
                 printable: bool = False) -> ExportBundle:
    """The config that reproduces `record`'s run and the report around it (`summary`: None for a non-private run;
    `audit`: what may be released of its audits, engine.present.audit.released_finding; `upload_schema`: the
    uploaded table's schema, carried in the config so that another store can register the same CSV; `decision`: the
    decision record, whose hash and registry entry the report shows; `printable`: also render the report with PNG
    charts, for the PDF)."""
    config = RunConfig.from_dict(record["config"])
    header = (f"# Reproduces run {record['run_id']} ({config.technique} on {config.dataset}); exported "
              f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC by engine {ENGINE_VERSION}.\n")
    if upload_schema is None:
        config_yaml = (header + "# frontier sweep --config config.yaml   (answered from the cache when the store holds it)\n"
                       + yaml.safe_dump(spec_mapping, sort_keys=False))
    else:
        config_yaml = (header + f"# {config.dataset} is an uploaded CSV; on another machine or store register the same file first:\n"
                       "#   frontier upload FILE.csv --schema config.yaml\n#   frontier sweep --config config.yaml\n"
                       + yaml.safe_dump({"sweep": spec_mapping, "upload": upload_schema}, sort_keys=False,
                                        allow_unicode=True))
    arguments = (record, config, runs, summary, info, metric, config_yaml, reproduces, audit, decision)
    report = _render_report(*arguments)
    printable_html = _render_report(*arguments, chart_format="png") if printable else None
    decision_json = json.dumps(decision, indent=2, ensure_ascii=False, allow_nan=False) + "\n" if decision else None
    return ExportBundle(run_id=record["run_id"], config_yaml=config_yaml, report_html=report, reproduces=reproduces,
                        decision_json=decision_json, printable_html=printable_html)


def write_export(bundle: ExportBundle, out_dir: str | Path) -> tuple[Path, Path]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.yaml").write_text(bundle.config_yaml)
    (out / "report.html").write_text(bundle.report_html, encoding="utf-8")
    if bundle.decision_json is not None:
        (out / "decision.json").write_text(bundle.decision_json, encoding="utf-8")
    return out / "config.yaml", out / "report.html"


def _decision_section(decision: dict | None) -> str:
    """The decision record's hash, its epsilon-registry entry and the sign-off fields to fill, for filing."""
    if not decision:
        return ""
    blank = "".join(f"<tr><th>{html.escape(field.replace('_', ' '))}</th><td class=blank></td></tr>"
                    for field in decision.get("sign_off") or {})
    return "".join([
        "<h2>Decision record</h2>",
        f"<p>decision.json (filed beside this report) has the content hash <code class=hash>"
        f"{html.escape(str(decision.get('content_hash')))}</code>: sha256 of its canonical JSON (sorted keys, no spaces, "
        "UTF-8) of the evidence: every field but the hash and the sign-off. <code>frontier gate POLICY.yaml --record decision.json</code> checks it and "
        "recomputes every privacy figure in it.</p>",
        "<h3>Epsilon registry entry</h3>", registry_html(decision.get("registry_entry")),
        "<h3>Sign-off</h3><p class=note>To fill in on the filed copy, or in decision.json's sign_off fields: the sign-off is outside the hash, so the signed record keeps it.</p>",
        f"<table class=signoff>{blank}</table>",
    ])


def _render_report(record, config: RunConfig, runs, summary, info, metric, config_yaml, reproduces, audit=None,
                   decision=None, chart_format: str = "svg") -> str:
    if summary is None:
        sentences = ["This is a non-private run: it carries no privacy guarantee and must not be released."]
    else:
        said = decision_sentences(summary)
        sentences = [said[key] for key in ("budget", "given_up", "search", "protects")]
    front, reference = frontier_view(runs, config.dataset, metric)
    chosen_point = (summary.epsilon, summary.validation_mean or summary.metric_mean) if summary else None
    figures = [frontier_figure(front, reference, metric, chosen=chosen_point)] if not front.empty else []
    figures.append(cost_figure(cost_view(runs, config.dataset, metric, "train_seconds"), metric, "train_seconds"))
    charts, _ = embed_figures(figures, chart_format)
    candidates = rank_candidates(runs, DecisionConstraints(dataset=config.dataset, metric=metric))
    highlight = None
    if not candidates.empty:
        candidates = candidates.head(12).reset_index(drop=True)
        matches = candidates.index[candidates["run_id"] == record["run_id"]]
        highlight = int(matches[0]) if len(matches) else None
        split = candidates["split"].iloc[0]
        candidates = candidates[["technique", "model", "target_epsilon", "epsilon", "accountant", "max_grad_norm",
                                 "metric_mean", "metric_std", "trivial", "seeds", "cost_mean", "run_id"]].rename(
            columns={"metric_mean": f"{metric} ({split}, mean)", "metric_std": "± std", "cost_mean": "train s",
                     "trivial": "trivial"})
    run_fields = pd.DataFrame([(key, record.get(key)) for key in (
        "run_id", "dataset", "technique", "model", "seed", "target_epsilon", "epsilon", "accountant", "delta",
        "noise_multiplier", "max_grad_norm", "sample_rate", "steps", "epochs", "batch_size", "learning_rate",
        "accuracy", "balanced_accuracy", "roc_auc", "val_accuracy", "val_balanced_accuracy", "val_roc_auc",
        "decision_threshold", "trivial_accuracy", "train_seconds", "peak_memory_mb", "device", "created_at")],
        columns=["field", "value"])
    versions = pd.DataFrame(sorted((record.get("versions") or {}).items()), columns=["library", "version"])
    composition = summary.composition if summary else None
    derived = record.get("data_derived_bounds") or []
    title = (f"{config.technique} on {config.dataset}, released at ε = {summary.headline_epsilon:.3g} "
             f"(δ = {summary.composition.delta:.0e}, {summary.headline_basis})" if summary
             else f"{config.technique} on {config.dataset} (no privacy)")
    parts = [
        f"<!doctype html><html lang=en><head><meta charset=utf-8><title>Privacy Frontier report: {html.escape(title)}"
        f"</title><style>{STYLE}</style></head><body>",
        f"<h1>Privacy budget decision: {html.escape(title)}</h1>",
        f"<p class=note>Run {html.escape(record['run_id'])}; exported {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC "
        f"by Privacy Frontier engine {ENGINE_VERSION}"
        + (f"; decision record <code class=hash>{html.escape(str(decision['content_hash']))}</code>" if decision else "")
        + ".</p>",
        "<h2>In plain language</h2>", *(f"<p>{_markdown_to_html(text)}</p>" for text in sentences),
        report_section(audit),
        _decision_section(decision),
        "<h2>The chosen run against its alternatives</h2>",
        _table(candidates, highlight) if not candidates.empty else "<p>No private alternatives were measured.</p>",
        "<p class=note>Configurations are pooled over seeds and compared on the validation rows; ε is the largest over "
        "seeds, as reported by the named accountant. Evaluation figures (validation, test, the trivial answer, the "
        "non-private baseline) are computed on held-out rows without noise: they describe the models and are covered "
        "by no ε.</p>", "<h2>Charts</h2>", charts, "<h2>The chosen run</h2>", _table(run_fields),
        synthetic_report_section(record),
        "<h2>What the whole search spent</h2>",
        (f"<p>{composition.n_private} private runs on this data composed: ε = {composition.epsilon:.4g} at δ = "
         f"{composition.delta:.0e} ({html.escape(composition.accountant)}); mechanisms: "
         f"{html.escape(', '.join(f'{k} × {v}' for k, v in composition.mechanisms.items()))}.</p>") if composition else "",
        "<h2>Data</h2>",
        f"<p>{html.escape(info.title)}: {html.escape(info.description)}</p>",
        f"<p>Training rows: {record.get('n_train')}; dataset fingerprint <code>{html.escape(str(record.get('dataset_fingerprint')))}"
        f"</code>; split: {html.escape(info.split.get('description', ''))}; licence: {html.escape(info.licence)}.</p>",
        f"<p>Provenance: {html.escape(info.provenance)}</p>",
        f"<p>Preprocessing bounds: {html.escape(preprocessing_sentence(info, derived))}.</p>",
        "<h2>Reproduce it</h2>", f"<pre>{html.escape(config_yaml)}</pre>",
        "<p class=note>The spec reproduces the configuration and its accounting exactly (the same noise multiplier, "
        "steps and ε); retrained, its metrics reproduce within seed noise, not bit for bit: the privacy noise is drawn "
        "from secret randomness, never from the recorded seed.</p>",
        f"<p class=note>{'This spec plans to the same run id with the current data and engine.' if reproduces else 'Warning: with the current data or engine version this spec plans to a different run id: the data or the engine changed since the run.'}</p>",
        "<h2>Library versions</h2>", _table(versions), "</body></html>",
    ]
    return "".join(parts)
