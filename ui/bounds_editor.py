"""The public-bounds editor of the upload form: which numeric columns have a range known without the rows."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from engine.data.uploads.inspect import CsvInspection


def public_bounds_editor(inspection: CsvInspection, kept: list[str], tag: str) -> dict[str, tuple[float, float]]:
    """(low, high) of each kept numeric column the user declared public; {} when the file has no numeric column."""
    # Rows fixed per file (a table that changed with the drop list would shuffle the user's edits).
    numeric = [p for p in inspection.columns if p.kind == "numeric" and p.name not in inspection.suggested_drops]
    if not numeric:
        return {}
    st.markdown("**Public bounds for numeric columns** (optional)")
    st.caption("Values are clipped to bounds and scaled before training. Bounds read from the data (the default) "
               "leak information about the rows that ε does not cover; tick *declared public* where the range is "
               "known without looking at the rows (age 18–100, a product's loan limits), and edit it to that range.")
    edited = st.data_editor(
        pd.DataFrame({"column": [p.name for p in numeric], "smallest in file": [p.low for p in numeric],
                      "largest in file": [p.high for p in numeric], "public low": [p.low for p in numeric],
                      "public high": [p.high for p in numeric], "declared public": [False] * len(numeric)}),
        key=f"data_bounds_{tag}", hide_index=True, width="stretch",
        disabled=["column", "smallest in file", "largest in file"],
        column_config={"declared public": st.column_config.CheckboxColumn(help="These bounds are domain "
                                                                               "knowledge, not read from the rows.")})
    return {row["column"]: (row["public low"], row["public high"]) for row in edited.to_dict("records")
            if row["declared public"] and row["column"] in kept}
