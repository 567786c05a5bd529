"""The public-bounds editor of the upload form: which numeric columns have a range known without the rows."""

from __future__ import annotations

import math

import pandas as pd
import streamlit as st

from engine.data.uploads.inspect import CsvInspection
from ui.text import literals


def public_bounds_editor(inspection: CsvInspection, kept: list[str], tag: str) -> dict[str, tuple[float, float]]:
    """(low, high) of each kept numeric column the user typed both ends of; {} when the file has no numeric column.

    The fields start empty, never with the file's min/max: a range copied from the rows is not public knowledge.
    """
    # Rows fixed per file (a table that changed with the drop list would shuffle the user's edits).
    numeric = [p.name for p in inspection.columns if p.kind == "numeric" and p.name not in inspection.suggested_drops]
    if not numeric:
        return {}
    st.markdown("**Public bounds for numeric columns** (optional)")
    st.caption("Values are clipped to bounds and scaled before training. Type a range only where it is known without "
               "looking at the rows (age 18–100, a product's loan limits); leave the others empty.")
    edited = st.data_editor(
        pd.DataFrame({"column": numeric, "public low": [None] * len(numeric), "public high": [None] * len(numeric)},
                     ).astype({"public low": "float64", "public high": "float64"}),
        key=f"data_bounds_{tag}", hide_index=True, width="stretch", disabled=["column"],
        column_config={"public low": st.column_config.NumberColumn(help="Domain knowledge, not the rows' minimum."),
                       "public high": st.column_config.NumberColumn(help="Domain knowledge, not the rows' maximum.")})
    bounds, partial = {}, []
    for row in edited.to_dict("records"):
        low, high = row["public low"], row["public high"]
        given = [value is not None and not (isinstance(value, float) and math.isnan(value)) for value in (low, high)]
        if all(given) and row["column"] in kept:
            bounds[row["column"]] = (float(low), float(high))
        elif any(given):
            partial.append(row["column"])
    if partial:
        st.warning(f"Give both ends of the public range, or neither: {literals(partial)} (left undeclared for now).",
                   icon=":material/warning:")
    return bounds
