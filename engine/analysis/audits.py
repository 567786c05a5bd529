"""Audits joined to the frontier: what was measured for each point, and for the model trained without privacy.

A point's audit is the most recent successful audit of any of its runs, per kind of attack. The non-private
reference is the most recent audit of a `baseline` run of the same dataset and model, of the same kind of attack
when there is one. Numbers only; engine.present.audit says them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import pandas as pd

from engine.audit.figures import AuditFigures
from engine.audit.statistics import Interval

REPORTED_FPR = 0.01  # the false-positive rate quoted beside a point (the others are in the audit's table)
AUDIT_COLUMNS = ["point_id", "run_id", "audit_id", "dataset", "technique", "model", "attack", "white_box", "epsilon",
                 "epsilon_lower_bound", "tpr", "tpr_low", "tpr_high", "tpr_bound", "auc", "auc_low", "auc_high",
                 "breach", "created_at"]


@dataclass(frozen=True)
class AuditFinding:
    """What the audits say about one chosen point."""

    attack: str
    white_box: bool
    figures: AuditFigures  # the chosen point's audit
    baseline: AuditFigures | None  # the same model trained without privacy, same kind of attack where measured
    baseline_attack: str | None
    fpr: float = REPORTED_FPR

    @property
    def breach(self) -> bool:
        return self.figures.breach


def _ok_audits(audits: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted((a for a in audits if a.get("status") == "ok" and a.get("figures")), key=lambda a: a["created_at"])


def audit_rows(runs: pd.DataFrame, audits: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per (point, attack, white-box): the latest successful audit, with its figures at FPR 1%."""
    models = dict(zip(runs["run_id"], runs["model"])) if "model" in runs else {}
    points = dict(zip(runs["run_id"], runs["point_id"])) if "point_id" in runs else {}
    latest: dict[tuple, dict] = {}
    for audit in _ok_audits(audits):
        if audit["run_id"] not in models:
            continue
        point = points.get(audit["run_id"]) or audit["run_id"]
        latest[(point, audit["attack"], bool(audit["settings"].get("white_box")))] = audit
    rows = []
    for (point, attack, white_box), audit in latest.items():
        figures = AuditFigures.from_dict(audit["figures"])
        rate = figures.rate_at(REPORTED_FPR)
        rows.append({"point_id": point, "run_id": audit["run_id"], "audit_id": audit["audit_id"],
                     "dataset": audit["dataset"], "technique": audit["technique"], "model": models[audit["run_id"]],
                     "attack": attack, "white_box": white_box, "epsilon": figures.epsilon,
                     "epsilon_lower_bound": figures.lower_bound.epsilon, "tpr": rate.tpr.value,
                     "tpr_low": rate.tpr.low, "tpr_high": rate.tpr.high, "tpr_bound": rate.bound,
                     "auc": figures.auc.value, "auc_low": figures.auc.low, "auc_high": figures.auc.high,
                     "breach": figures.breach, "created_at": audit["created_at"]})
    return pd.DataFrame(rows, columns=AUDIT_COLUMNS)


def audit_finding(runs: pd.DataFrame, audits: list[dict[str, Any]], run_id: str) -> AuditFinding | None:
    """The chosen run's point's latest audit (None when it was never audited) and the baseline's beside it."""
    table = audit_rows(runs, audits)
    chosen = runs[runs["run_id"] == run_id]
    if table.empty or chosen.empty:
        return None
    point = chosen.iloc[0]
    mine = table[table["point_id"] == (point.get("point_id") or run_id)]
    if mine.empty:
        return None
    latest = mine.sort_values("created_at").iloc[-1]
    references = table[(table["technique"] == "baseline") & (table["dataset"] == point["dataset"])
                       & (table["model"] == point["model"])].sort_values("created_at")
    same_kind = references[(references["attack"] == latest["attack"]) & ~references["white_box"]]
    reference = (same_kind if not same_kind.empty else references).tail(1)
    by_id = {audit["audit_id"]: audit for audit in audits}
    baseline = None if reference.empty else AuditFigures.from_dict(by_id[reference.iloc[0]["audit_id"]]["figures"])
    return AuditFinding(attack=latest["attack"], white_box=bool(latest["white_box"]),
                        figures=AuditFigures.from_dict(by_id[latest["audit_id"]]["figures"]), baseline=baseline,
                        baseline_attack=None if reference.empty else reference.iloc[0]["attack"])


def tpr_interval(figures: AuditFigures, fpr: float = REPORTED_FPR) -> Interval:
    rate = figures.rate_at(fpr)
    return rate.tpr if rate is not None else Interval(math.nan, math.nan, math.nan)
