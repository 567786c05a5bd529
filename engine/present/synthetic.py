"""Words for a dp-synthetic run's table: what it is safe for, and how faithful it is."""

from __future__ import annotations

import html
from typing import Any, Mapping

FIDELITY_LABELS = {"synth_tvd_1way": "1-way TVD", "synth_tvd_2way": "2-way TVD",
                   "synth_downstream_gap": "downstream gap"}
FIDELITY_CAPTION = ("Fidelity of each synthetic table to the training rows it was made from: mean total variation "
                    "distance over every 1-way and 2-way marginal of the binned table (0 = identical, 1 = disjoint), "
                    "and the downstream gap (the same model trained on the real rows, minus trained on the synthetic "
                    "rows, in test accuracy). These are measured on the private rows: evaluation, not covered by ε.")


def share_sentence(record: Mapping[str, Any]) -> str:
    """Why this table, and only it, may be handed to anyone: it carries the run's guarantee."""
    epsilon, delta = float(record["epsilon"]), float(record.get("delta") or 0.0)
    derived = record.get("data_derived_bounds") or []
    caveat = (f" Except: the bounds of {len(derived)} column(s) ({', '.join(derived[:3])}{'…' if len(derived) > 3 else ''})"
              " were read from the rows, and no ε covers them." if derived else "")
    return (f"This synthetic table is the one artefact of the product that is safe to hand to anyone at its "
            f"guarantee: it is (ε = {epsilon:.3g}, δ = {delta:.0e})-differentially private with respect to the "
            f"{record.get('n_train')} training rows of {record.get('dataset')} (MST, zCDP composed by dp-accounting), "
            "and anything computed from it stays so. Its rows are sampled, not real records; numeric values are drawn "
            "inside public bins, and the label column holds the class index (1 = the positive class)." + caveat)


def report_section(record: Mapping[str, Any]) -> str:
    """The export report's paragraph on a dp-synthetic run's table and its fidelity ("" for any other run)."""
    if record.get("technique") != "dp-synthetic":
        return ""
    rows = "".join(f"<tr><td>{html.escape(label)}</td><td>{float(record[column]):.4g}</td></tr>"
                   for column, label in FIDELITY_LABELS.items() if record.get(column) is not None)
    return (f"<h3>The synthetic table</h3><p>{html.escape(share_sentence(record))} Get it with <code>frontier synth "
            f"{html.escape(str(record['run_id']))} --out table.csv</code> or from the Frontier page.</p>"
            f"<table><tr><th>fidelity</th><th>value</th></tr>{rows}</table>"
            f"<p class=note>{html.escape(FIDELITY_CAPTION)}</p>")
