"""The dataset card: a catalogue entry with its split sizes, label balance and how its bounds were set."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from engine.data import load_dataset
from engine.present.sentences import missing_values_sentence, model_inputs_sentence
from ui.text import literal, literals


@st.cache_data(show_spinner="Preparing the dataset…")
def dataset_card(name: str, uploads: Path, signature: tuple) -> dict:  # noqa: ARG001 - signature is the cache key
    """What the card shows: the catalogue entry plus sizes and label balance from the prepared split."""
    data = load_dataset(name, uploads)
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
        "dp_estimated": list(info.dp_estimated_columns), "preprocessing": dict(info.preprocessing_privacy or {}),
        "silo_column": info.silo_column, "silos": list(info.categorical.get(info.silo_column, [])) if info.silo_column else [],
        "folder": info.folder, "fingerprint": data.fingerprint, "upload": info.upload or {},
        "inputs_text": model_inputs_sentence(info, data.n_features), "missing_text": missing_values_sentence(info),
    }


def bounds_text(card: dict) -> str:
    derived, estimated = card["data_derived"], card.get("dp_estimated") or []
    spent = card.get("preprocessing") or {}
    dp = (f"**DP-estimated** for {len(estimated)} column(s): {literals(estimated)}. Their bounds or value lists were "
          f"estimated from the rows with differential privacy (ε = {spent.get('epsilon', 0):g}"
          f"{', δ = %g' % spent['delta'] if spent.get('delta') else ', pure DP'}); Decide and the report add this to "
          "every composition on this table." if estimated else "")
    if not derived:
        public = ("every bound and category list is declared domain knowledge, so preprocessing spends no privacy "
                  "and ε covers the whole pipeline.")
        return dp + " The others are **public**." if dp else f"**public**: {public}"
    return ((dp + " " if dp else "") +
            f"**data-derived** for {len(derived)} column(s): {literals(derived)}. Their bounds or category lists were "
            "read from the rows; this leaks a little that ε does not cover, and every run record lists them "
            "(`data_derived_bounds`).")


def render_card(card: dict) -> None:
    uploaded = card["origin"] == "uploaded"
    # Every catalogue value below may come from an upload (file name, column names, category values): literal text.
    st.markdown(f"#### {literal(card['title'])}" + (" · your upload" if uploaded else ""))
    metrics = st.columns(4)
    metrics[0].metric("Training rows", f"{card['n_train']:,}")
    metrics[1].metric("Test rows", f"{card['n_test']:,}")
    if card["positive_rate"] is not None:
        metrics[2].metric("Positive rate", f"{card['positive_rate']:.1%}",
                          help=f"Share of training-split rows with {literal(card['label_text'])}. A model that always answers "
                               "the majority class scores max(rate, 1 − rate).")
    else:
        metrics[2].metric("Classes", card["n_classes"])
    metrics[3].metric("Model inputs", f"{card['n_features']:,}", help=literal(card["inputs_text"]))
    st.markdown(literal(card["description"]) if uploaded else card["description"])
    lines = [
        f"- **Label:** {literal(card['label_text'])} · **task:** {literal(card['task'])}",
        f"- **Split:** {literal(card['split'])}",
        f"- **Sensitive columns:** {literal(card['sensitive_list'])}",
        f"- **Preprocessing bounds:** {bounds_text(card)}",
        f"- **Model inputs:** {literal(card['inputs_text'])}",
        f"- **Missing values:** {literal(card['missing_text'])}",
        f"- **Licence:** {literal(card['licence'])}",
        f"- **Provenance:** {literal(card['provenance'])}",
    ]
    if card["identifiers"]:
        where = "removed before storing" if uploaded else "dropped before training"
        lines.append(f"- **Direct identifiers {where}:** {literals(card['identifiers'])}")
    if card["silo_column"]:
        lines.append(f"- **Natural silos:** column {literal(card['silo_column'])} ({len(card['silos'])} sites: "
                     f"{literals(card['silos'])}), usable to simulate federated learning across them.")
    if uploaded:
        lines.append(f"- **Kept at:** {literal(card['folder'])} (on this machine; never sent anywhere) · **fingerprint:** "
                     f"`{card['fingerprint']}`")
    st.markdown("\n".join(lines))
