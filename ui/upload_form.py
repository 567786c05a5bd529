"""The upload form: the user's choices for an inspected CSV (label, positive class, drops, public bounds and
categories as typed, what to do with those left empty, name), returned as an UploadSpec when Save is pressed.
Saving is the page's call. Nothing here is prefilled from the rows."""

from __future__ import annotations

import streamlit as st

from engine.data.uploads.inspect import CsvInspection
from engine.data.uploads.validate import UploadSpec, slugify
from ui.bounds_editor import public_bounds_editor
from ui.text import literal

LABEL_HINTS = {"label", "target", "outcome", "class", "y", "default", "defaulted", "churn", "fraud", "readmitted",
               "diagnosis", "died", "death", "approved", "response", "result"}


def guess_label(inspection: CsvInspection) -> str:
    """A column named like an outcome with 2-20 values, else the last such column, else the first column."""
    usable = [p for p in inspection.columns if p.kind != "empty" and p.name not in inspection.suggested_drops]
    small = [p.name for p in usable if 2 <= p.distinct <= 20]
    named = [name for name in small if set(name.lower().replace("-", "_").split("_")) & LABEL_HINTS]
    return (named or small[-1:] or [p.name for p in usable] or [inspection.frame.columns[0]])[0]


def upload_form(inspection: CsvInspection, tag: str, existing_uploads: list[str]) -> tuple[UploadSpec, bool] | None:
    """(spec, replace an earlier upload of that name) once "Save dataset" is pressed, else None."""
    columns = [p.name for p in inspection.columns if p.kind != "empty"]
    guess = guess_label(inspection)
    left, right = st.columns(2)
    label = left.selectbox("Label column (the outcome to predict)", columns, index=columns.index(guess),
                           key=f"data_label_{tag}")
    counts = inspection.class_counts(label)
    classes = sorted(counts, key=lambda value: counts[value])  # the rarer class first: usually the event
    positive = right.selectbox("Positive class (the event: default, readmission, fraud…)", classes,
                               format_func=lambda value: f"{value} ({counts[value]:,} rows)", key=f"data_positive_{tag}")
    if len(classes) > 2:
        right.caption(f"{len(classes)} values: the model learns {literal(repr(positive))} against all the others.")
    drops = st.multiselect("Columns to drop (never saved)", columns, key=f"data_drop_{tag}",
                           default=[c for c in inspection.suggested_drops if c != label and c in columns],
                           help="Pre-selected: columns that look like identifiers, and text columns with too many "
                                "values to encode. Keep a flagged column only if you are sure it is not one.")
    kept = [c for c in columns if c != label and c not in drops]
    bounds = public_bounds_editor(inspection, kept, tag)
    categories = public_categories_inputs(inspection, kept, tag)
    undeclared, epsilon = undeclared_choice(tag)
    name = st.text_input("Dataset name", value=slugify(inspection.filename) or "my-upload", key=f"data_name_{tag}",
                         help="Lower-case letters, digits and hyphens; the name the Sweep page and the CLI use.").strip()
    replace = False
    if name in existing_uploads:
        replace = st.checkbox(f"Replace my earlier upload named {literal(repr(name))}", key=f"data_replace_{tag}",
                              help="Runs on the earlier data stay in the result store under their own fingerprint.")
    if not st.button("Save dataset", type="primary", key=f"data_save_{tag}"):
        return None
    return UploadSpec(name=name, label_column=label, positive_class=positive, drop_columns=tuple(drops),
                      numeric_bounds=bounds, declared_categories=categories, undeclared=undeclared,
                      preprocessing_epsilon=epsilon), replace


def public_categories_inputs(inspection: CsvInspection, kept: list[str], tag: str) -> dict[str, tuple[str, ...]]:
    """Each kept text column's public list of values as typed (comma-separated); empty by default, never read
    from the rows: a rare value would tell that someone in the data has it."""
    text_columns = [p.name for p in inspection.columns if p.kind == "categorical" and p.name in kept]
    if not text_columns:
        return {}
    st.markdown("**Public values of text columns** (optional)")
    st.caption("Type a column's list of values where it is public (a fixed code list), separated by commas. Rows "
               "holding another value encode as none of them, and that value is not stored.")
    declared = {}
    for column in text_columns:
        typed = st.text_input(f"Values of {literal(column)}", value="", key=f"data_categories_{tag}_{column}",
                              placeholder="e.g. car, home, other")
        values = tuple(dict.fromkeys(v.strip() for v in typed.split(",") if v.strip()))
        if values:
            declared[column] = values
    return declared


UNDECLARED_LABELS = {
    "dp": "Estimate them with differential privacy (spends the ε below, added to every run on this table)",
    "data": "Read them from the rows (data-derived: not covered by ε, listed on every run)",
}


def undeclared_choice(tag: str) -> tuple[str, float]:
    """("dp" or "data", the preprocessing epsilon) for the bounds and value lists the user does not type."""
    left, right = st.columns([3, 1])
    undeclared = left.radio("Bounds and value lists you leave empty", list(UNDECLARED_LABELS),
                            format_func=UNDECLARED_LABELS.get, key=f"data_undeclared_{tag}",
                            help="DP: a noisy histogram per column gives a range, and only values held by enough "
                                 "rows are kept (a value held by one row almost never is). Data: the rows' "
                                 "min/max and every value, as read.")
    epsilon = right.number_input("Preprocessing ε", min_value=0.01, max_value=10.0, value=0.1, step=0.05,
                                 key=f"data_preprocessing_epsilon_{tag}", disabled=undeclared != "dp",
                                 help="Split evenly over the columns left empty. At ε = 0.1 over 4 columns a value "
                                      "needs about 580 rows to be kept: type the lists you know.")
    return undeclared, float(epsilon)
