"""Data: choose the dataset to sweep (its card), or upload a CSV and keep it, minimised, as a dataset to sweep.

Cross-page contract: the chosen (or just saved) dataset's name goes to st.session_state["selected_dataset"];
the Sweep page preselects it.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from engine.data import catalogue_signature, dataset_names, get_dataset_info
from engine.data.uploads.register import delete_upload, register_upload
from engine.data.uploads.schema import schema_of, schema_yaml
from engine.errors import EngineError
from ui.common import uploads_dir
from ui.csv_inspection import inspect_upload, render_inspection
from ui.dataset_card import dataset_card, render_card
from ui.text import literal, literals
from ui.upload_form import upload_form

SELECTED = "selected_dataset"  # read by views/sweep.py


@st.cache_data(show_spinner=False)
def load_catalogue(uploads: Path, signature: tuple) -> pd.DataFrame:  # noqa: ARG001 - signature is the cache key
    """Every dataset's summary, bundled first; changes when an upload is saved, replaced or deleted."""
    return pd.DataFrame([get_dataset_info(name, uploads).summary() for name in dataset_names(uploads)])


def render_dataset_choice(catalogue: pd.DataFrame, uploads: Path, signature: tuple) -> None:
    names = catalogue["name"].tolist()
    titles = dict(zip(catalogue["name"], catalogue["title"]))
    origins = dict(zip(catalogue["name"], catalogue["origin"]))
    pending = st.session_state.pop("data_select_pending", None)
    if pending in names:
        st.session_state["data_dataset"] = pending
    elif st.session_state.get("data_dataset") not in names:
        remembered = st.session_state.get(SELECTED)
        st.session_state["data_dataset"] = remembered if remembered in names else names[0]
    name = st.selectbox(
        "Dataset", names, key="data_dataset",
        format_func=lambda n: f"{n} — {titles[n]}" + (" (uploaded)" if origins[n] == "uploaded" else ""),
        help="Bundled datasets, then the CSVs you saved below. The Sweep page starts from the one chosen here.")
    st.session_state[SELECTED] = name
    try:
        render_card(dataset_card(name, uploads, signature))
    except EngineError as exc:
        st.error(f"Cannot prepare {literal(repr(name))}: {literal(exc)}")
    st.page_link("views/sweep.py", label=f"Sweep {name}", icon=":material/play_circle:")


def render_upload(raw: bytes, filename: str, uploads: Path, existing_uploads: list[str]) -> None:
    try:
        inspection = inspect_upload(raw, filename)
    except EngineError as exc:
        st.error(f"**{literal(filename)}** cannot be used: {literal(exc)}")
        return
    tag = inspection.sha256[:12]  # widgets per file: a new file starts from its own defaults
    render_inspection(inspection, tag)
    request = upload_form(inspection, tag, existing_uploads)
    if request is not None:
        spec, replace = request
        try:
            info = register_upload(raw, inspection, spec, uploads_dir=uploads, replace=replace)
        except EngineError as exc:
            st.error(f"Not saved: {literal(exc)}")
        else:
            st.session_state[SELECTED] = info.name
            st.session_state["data_select_pending"] = info.name
            st.session_state["data_saved"] = {"tag": tag, "name": info.name, "folder": info.folder,
                                              "fingerprint": info.fingerprint,
                                              "dropped": list(info.identifier_columns)}
            st.rerun()
    saved = st.session_state.get("data_saved")
    if saved and saved["tag"] == tag:
        st.success(f"Saved as **{literal(saved['name'])}** (fingerprint `{saved['fingerprint']}`), kept at "
                   f"{literal(saved['folder'])} "
                   "under the store folder, on this machine; never sent anywhere. Identifier columns removed before "
                   f"saving: {literals(saved['dropped']) or 'none'}.", icon=":material/check_circle:")
        st.page_link("views/sweep.py", label=f"Sweep {saved['name']} now", icon=":material/play_circle:")


def render_uploads(catalogue_rows: list[dict], uploads: Path) -> None:
    st.subheader("Your uploaded datasets")
    if not catalogue_rows:
        st.caption(f"None yet. Saved uploads are kept in {literal(uploads)} and stay after a refresh.")
        return
    st.dataframe(pd.DataFrame([{key: row[key] for key in ("name", "title", "rows", "label", "bounds", "provenance")}
                               for row in catalogue_rows]),
                 key="data_uploads", hide_index=True, width="stretch")
    with st.expander("Register an upload elsewhere (schema.yaml)", key="data_schema_box"):
        shared = st.selectbox("Uploaded dataset", [row["name"] for row in catalogue_rows], key="data_schema_name")
        st.caption("Its label, kept columns and declared bounds and categories (no rows, no values read from them): "
                   f"`frontier upload FILE.csv --schema schema.yaml` registers the same CSV as {shared!r} on another "
                   "machine or store, and refuses a different file.")
        st.download_button("Download schema.yaml", schema_yaml(schema_of(get_dataset_info(shared, uploads))),
                           file_name=f"{shared}-schema.yaml", mime="application/x-yaml", key="data_schema_download")
    with st.expander("Delete an uploaded dataset", key="data_delete_box"):
        doomed = st.selectbox("Uploaded dataset to delete", [row["name"] for row in catalogue_rows], key="data_delete_name")
        sure = st.checkbox(f"Delete the stored rows of {doomed!r} from this machine", key="data_delete_sure")
        if st.button("Delete", key="data_delete", disabled=not sure):
            try:
                delete_upload(doomed, uploads_dir=uploads)
            except EngineError as exc:
                st.error(literal(exc))
            else:
                if st.session_state.get(SELECTED) == doomed:
                    st.session_state.pop(SELECTED)
                st.session_state.pop("data_saved", None)
                st.rerun()


# --- page ---------------------------------------------------------------------------------------------------
st.title("Data")
st.caption("Choose the table a sweep trains on: a bundled dataset, or your own CSV. Uploads are read and kept on this "
           "machine (under the store folder); nothing is sent anywhere.")

uploads = uploads_dir()
signature = catalogue_signature(uploads)
st.subheader("Choose a dataset")
try:
    catalogue = load_catalogue(uploads, signature)
except EngineError as exc:
    st.error(literal(exc))
    catalogue = None
if catalogue is not None:
    render_dataset_choice(catalogue, uploads, signature)

st.subheader("Upload a CSV")
st.caption("Comma, semicolon or tab separated, with a header row. You choose the label and the columns to keep; "
           "columns that look like identifiers (names, e-mail addresses, phone numbers, national ids, row ids) are "
           "dropped by default and only the kept columns are saved.")
uploaded = [] if catalogue is None else catalogue.query("origin == 'uploaded'").to_dict("records")
uploaded_file = st.file_uploader("CSV file", type=["csv", "tsv", "txt"], key="data_upload")
if uploaded_file is not None:
    render_upload(uploaded_file.getvalue(), uploaded_file.name, uploads, [row["name"] for row in uploaded])
render_uploads(uploaded, uploads)
