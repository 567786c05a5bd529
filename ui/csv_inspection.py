"""What was read from an uploaded CSV: a preview, each column's profile, and the columns flagged as identifiers."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from engine.data.uploads.inspect import CsvInspection, inspect_csv
from ui.text import literal

PREVIEW_ROWS = 20
DELIMITERS = {",": "comma", ";": "semicolon", "\t": "tab"}


@st.cache_data(show_spinner="Reading the file…", max_entries=4)
def inspect_upload(raw: bytes, filename: str) -> CsvInspection:
    return inspect_csv(raw, filename)


def render_inspection(inspection: CsvInspection, tag: str) -> None:
    frame = inspection.frame
    st.markdown(f"**{literal(inspection.filename)}**: {inspection.n_rows:,} rows, {len(inspection.columns)} columns "
                f"({inspection.encoding}, {DELIMITERS.get(inspection.delimiter, inspection.delimiter)}-separated).")
    for warning in inspection.warnings:
        st.warning(literal(warning), icon=":material/warning:")
    st.caption(f"First {min(PREVIEW_ROWS, len(frame))} rows (shown to you only; not stored):")
    st.dataframe(inspection.preview(PREVIEW_ROWS), key=f"data_preview_{tag}", hide_index=True, width="stretch")
    flagged = {**inspection.suspected_identifiers, **inspection.too_many_categories}
    profile = pd.DataFrame([{
        "column": p.name, "kind": p.kind, "missing": p.missing, "distinct values": p.distinct,
        "range / examples": (f"{p.low:g} … {p.high:g}" if p.kind == "numeric" else ", ".join(p.examples)),
        "flagged": flagged.get(p.name, "empty: dropped" if p.kind == "empty" else ""),
    } for p in inspection.columns])
    st.dataframe(profile, key=f"data_profile_{tag}", hide_index=True, width="stretch",
                 column_config={"flagged": st.column_config.TextColumn("flagged (dropped by default)", width="large")})
    if inspection.suspected_identifiers:
        st.warning(
            f"{len(inspection.suspected_identifiers)} column(s) look like identifiers and are dropped by default "
            "(data minimisation: a model should not learn who a person is, and dropped columns are never saved):\n"
            + "\n".join(f"- **{literal(c)}**: {literal(why)}" for c, why in inspection.suspected_identifiers.items()), icon=":material/badge:")
