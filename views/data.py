"""Data: choose the dataset to sweep (its card), or upload a CSV and keep it, minimised, as a dataset to sweep.

Cross-page contract: the chosen (or just saved) dataset's name goes to st.session_state["selected_dataset"];
the Sweep page preselects it.
"""

from __future__ import annotations


import pandas as pd
import streamlit as st

from engine.data import catalogue_signature, dataset_names, get_dataset_info, load_dataset
from engine.data.uploads.inspect import CsvInspection, inspect_csv
from engine.data.uploads.register import delete_upload, register_upload
from engine.data.uploads.validate import UploadSpec, slugify
from engine.errors import EngineError
from ui.common import uploads_dir

SELECTED = "selected_dataset"  # read by views/sweep.py
PREVIEW_ROWS = 20
LABEL_HINTS = {"label", "target", "outcome", "class", "y", "default", "defaulted", "churn", "fraud", "readmitted",
               "diagnosis", "died", "death", "approved", "response", "result"}
DELIMITERS = {",": "comma", ";": "semicolon", "\t": "tab"}


# --- data ---------------------------------------------------------------------------------------------------
@st.cache_data(show_spinner=False)
def load_catalogue(signature: tuple) -> pd.DataFrame:  # noqa: ARG001 - signature is the cache key
    """Every dataset's summary, bundled first; changes when an upload is saved, replaced or deleted."""
    uploads = uploads_dir()
    return pd.DataFrame([get_dataset_info(name, uploads).summary() for name in dataset_names(uploads)])


@st.cache_data(show_spinner="Preparing the dataset…")
def dataset_card(name: str, signature: tuple) -> dict:  # noqa: ARG001 - signature is the cache key
    """What the card shows: the catalogue entry plus sizes and label balance from the prepared split."""
    data = load_dataset(name, uploads_dir())
    info = data.info
    label = info.label.get("column")
    if "positive_if" in info.label:
        label = f"{label} {info.label['positive_if']}"
    elif "positive" in info.label:
        label = f"{label} = {info.label['positive']}"
    sensitive = info.sensitive_columns
    return {
        **info.summary(), "label_text": label, "n_train": data.n_train, "n_test": int(data.y_test.shape[0]),
        "n_features": data.n_features, "n_classes": data.n_classes, "is_image": data.is_image,
        "positive_rate": float(data.y_train.mean()) if data.n_classes == 2 else None,
        "sensitive_list": ", ".join(map(str, sensitive)) if isinstance(sensitive, list) else str(sensitive),
        "data_derived": list(data.data_derived_bounds), "identifiers": list(info.identifier_columns),
        "silo_column": info.silo_column, "silos": list(info.categorical.get(info.silo_column, [])) if info.silo_column else [],
        "folder": info.folder, "fingerprint": data.fingerprint, "upload": info.upload or {},
    }


@st.cache_data(show_spinner="Reading the file…", max_entries=4)
def inspect_upload(raw: bytes, filename: str) -> CsvInspection:
    return inspect_csv(raw, filename)


def guess_label(inspection: CsvInspection) -> str:
    """A column named like an outcome with 2-20 values, else the last such column, else the first column."""
    usable = [p for p in inspection.columns if p.kind != "empty" and p.name not in inspection.suggested_drops]
    small = [p.name for p in usable if 2 <= p.distinct <= 20]
    named = [name for name in small if set(name.lower().replace("-", "_").split("_")) & LABEL_HINTS]
    return (named or small[-1:] or [p.name for p in usable] or [inspection.frame.columns[0]])[0]


def bounds_text(card: dict) -> str:
    derived = card["data_derived"]
    if not derived:
        return ("**public**: every bound and category list is declared domain knowledge, so preprocessing spends no "
                "privacy and ε covers the whole pipeline.")
    return (f"**data-derived** for {len(derived)} column(s): {', '.join(derived)}. Their bounds or category lists were "
            "read from the rows; this leaks a little that ε does not cover, and every run record lists them "
            "(`data_derived_bounds`).")


# --- rendering ----------------------------------------------------------------------------------------------
def render_card(card: dict) -> None:
    uploaded = card["origin"] == "uploaded"
    st.markdown(f"#### {card['title']}" + (" · your upload" if uploaded else ""))
    metrics = st.columns(4)
    metrics[0].metric("Training rows", f"{card['n_train']:,}")
    metrics[1].metric("Test rows", f"{card['n_test']:,}")
    if card["positive_rate"] is not None:
        metrics[2].metric("Positive rate", f"{card['positive_rate']:.1%}",
                          help=f"Share of training-split rows with {card['label_text']}. A model that always answers "
                               "the majority class scores max(rate, 1 − rate).")
    else:
        metrics[2].metric("Classes", card["n_classes"])
    metrics[3].metric("Model inputs", f"{card['n_features']:,}", help="Features after one-hot encoding and "
                      "missing-value indicators." if not card["is_image"] else "Pixels.")
    st.markdown(card["description"])
    lines = [
        f"- **Label:** `{card['label_text']}` · **task:** {card['task']}",
        f"- **Split:** {card['split']}",
        f"- **Sensitive columns:** {card['sensitive_list']}",
        f"- **Preprocessing bounds:** {bounds_text(card)}",
        f"- **Licence:** {card['licence']}",
        f"- **Provenance:** {card['provenance']}",
    ]
    if card["identifiers"]:
        where = "removed before storing" if uploaded else "dropped before training"
        lines.append(f"- **Direct identifiers {where}:** {', '.join(card['identifiers'])}")
    if card["silo_column"]:
        lines.append(f"- **Natural silos:** column `{card['silo_column']}` ({len(card['silos'])} sites: "
                     f"{', '.join(card['silos'])}), usable to simulate federated learning across them.")
    if uploaded:
        lines.append(f"- **Kept at:** `{card['folder']}` (on this machine; never sent anywhere) · **fingerprint:** "
                     f"`{card['fingerprint']}`")
    st.markdown("\n".join(lines))


def render_dataset_choice(signature: tuple) -> None:
    st.subheader("Choose a dataset")
    try:
        catalogue = load_catalogue(signature)
    except EngineError as exc:
        st.error(str(exc))
        return
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
        render_card(dataset_card(name, signature))
    except EngineError as exc:
        st.error(f"Cannot prepare {name!r}: {exc}")
    st.page_link("views/sweep.py", label=f"Sweep {name}", icon=":material/play_circle:")


def render_inspection(inspection: CsvInspection, tag: str) -> None:
    frame = inspection.frame
    st.markdown(f"**{inspection.filename}**: {inspection.n_rows:,} rows, {len(inspection.columns)} columns "
                f"({inspection.encoding}, {DELIMITERS.get(inspection.delimiter, inspection.delimiter)}-separated).")
    for warning in inspection.warnings:
        st.warning(warning, icon=":material/warning:")
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
            + "\n".join(f"- **{c}**: {why}" for c, why in inspection.suspected_identifiers.items()), icon=":material/badge:")


def render_upload(raw: bytes, filename: str, existing_uploads: list[str]) -> None:
    try:
        inspection = inspect_upload(raw, filename)
    except EngineError as exc:
        st.error(f"**{filename}** cannot be used: {exc}")
        return
    tag = inspection.sha256[:12]  # widgets per file: a new file starts from its own defaults
    render_inspection(inspection, tag)
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
        right.caption(f"{len(classes)} values: the model learns {positive!r} against all the others.")
    drops = st.multiselect("Columns to drop (never saved)", columns, key=f"data_drop_{tag}",
                           default=[c for c in inspection.suggested_drops if c != label and c in columns],
                           help="Pre-selected: columns that look like identifiers, and text columns with too many "
                                "values to encode. Keep a flagged column only if you are sure it is not one.")
    kept = [c for c in columns if c != label and c not in drops]
    # Rows fixed per file (a table that changed with the drop list would shuffle the user's edits).
    numeric = [p for p in inspection.columns if p.kind == "numeric" and p.name not in inspection.suggested_drops]
    bounds: dict[str, tuple[float, float]] = {}
    if numeric:
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
        for row in edited.to_dict("records"):
            if row["declared public"] and row["column"] in kept:
                bounds[row["column"]] = (row["public low"], row["public high"])
    text_columns = [p.name for p in inspection.columns if p.kind == "categorical" and p.name in kept]
    public_categories = st.multiselect(
        "Text columns whose list of values is public (a fixed code list, not read from the rows)", text_columns,
        key=f"data_public_categories_{tag}",
        help="Otherwise the list of categories is read from the rows and recorded as data-derived: a rare category "
             "reveals that someone in the data has it.") if text_columns else []
    name = st.text_input("Dataset name", value=slugify(filename) or "my-upload", key=f"data_name_{tag}",
                         help="Lower-case letters, digits and hyphens; the name the Sweep page and the CLI use.").strip()
    replace = False
    if name in existing_uploads:
        replace = st.checkbox(f"Replace my earlier upload named {name!r}", key=f"data_replace_{tag}",
                              help="Runs on the earlier data stay in the result store under their own fingerprint.")
    if st.button("Save dataset", type="primary", key=f"data_save_{tag}"):
        spec = UploadSpec(name=name, label_column=label, positive_class=positive, drop_columns=tuple(drops),
                          numeric_bounds=bounds, public_categories=tuple(public_categories))
        try:
            info = register_upload(raw, inspection, spec, uploads_dir=uploads_dir(), replace=replace)
        except EngineError as exc:
            st.error(f"Not saved: {exc}")
        else:
            st.session_state[SELECTED] = info.name
            st.session_state["data_select_pending"] = info.name
            st.session_state["data_saved"] = {"tag": tag, "name": info.name, "folder": info.folder,
                                              "fingerprint": info.fingerprint,
                                              "dropped": list(info.identifier_columns)}
            st.rerun()
    saved = st.session_state.get("data_saved")
    if saved and saved["tag"] == tag:
        st.success(f"Saved as **{saved['name']}** (fingerprint `{saved['fingerprint']}`), kept at `{saved['folder']}` "
                   "under the store folder, on this machine; never sent anywhere. Identifier columns removed before "
                   f"saving: {', '.join(saved['dropped']) or 'none'}.", icon=":material/check_circle:")
        st.page_link("views/sweep.py", label=f"Sweep {saved['name']} now", icon=":material/play_circle:")


def render_uploads(catalogue_rows: list[dict]) -> None:
    st.subheader("Your uploaded datasets")
    if not catalogue_rows:
        st.caption(f"None yet. Saved uploads are kept in `{uploads_dir()}` and stay after a refresh.")
        return
    st.dataframe(pd.DataFrame([{key: row[key] for key in ("name", "title", "rows", "label", "bounds", "provenance")}
                               for row in catalogue_rows]),
                 key="data_uploads", hide_index=True, width="stretch")
    with st.expander("Delete an uploaded dataset", key="data_delete_box"):
        doomed = st.selectbox("Uploaded dataset to delete", [row["name"] for row in catalogue_rows], key="data_delete_name")
        sure = st.checkbox(f"Delete the stored rows of {doomed!r} from this machine", key="data_delete_sure")
        if st.button("Delete", key="data_delete", disabled=not sure):
            try:
                delete_upload(doomed, uploads_dir=uploads_dir())
            except EngineError as exc:
                st.error(str(exc))
            else:
                if st.session_state.get(SELECTED) == doomed:
                    st.session_state.pop(SELECTED)
                st.session_state.pop("data_saved", None)
                st.rerun()


# --- page ---------------------------------------------------------------------------------------------------
st.title("Data")
st.caption("Choose the table a sweep trains on: a bundled dataset, or your own CSV. Uploads are read and kept on this "
           "machine (under the store folder); nothing is sent anywhere.")

signature = catalogue_signature(uploads_dir())
render_dataset_choice(signature)

st.subheader("Upload a CSV")
st.caption("Comma, semicolon or tab separated, with a header row. You choose the label and the columns to keep; "
           "columns that look like identifiers (names, e-mail addresses, phone numbers, national ids, row ids) are "
           "dropped by default and only the kept columns are saved.")
try:
    uploads = load_catalogue(signature).query("origin == 'uploaded'").to_dict("records")
except EngineError:
    uploads = []
uploaded_file = st.file_uploader("CSV file", type=["csv", "tsv", "txt"], key="data_upload")
if uploaded_file is not None:
    render_upload(uploaded_file.getvalue(), uploaded_file.name, [row["name"] for row in uploads])
render_uploads(uploads)
