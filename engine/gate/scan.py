"""The training table rescanned for identifier-like columns, with the rules uploads are checked by
(engine.data.identifiers): a column that looks like e-mail addresses, phone numbers, national ids, postcodes,
dates or record numbers, by its name or its values, has no place among the columns a model trains on.

The scan reads the table as it is now (not as it was when the run was recorded): the gate answers for the data
a retraining would use. Only the training columns of the training rows are read; nothing is written or kept.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from engine.data import DatasetInfo, get_dataset_info
from engine.data.identifiers import identifier_reason
from engine.data.prepare import _read_frame, split_rows  # noqa: PLC2701 - the table exactly as training reads it


def training_columns(info: DatasetInfo, frame: pd.DataFrame) -> dict[str, str]:
    """Column -> kind ("numeric" or "categorical") of every column a model of this dataset trains on."""
    if info.numeric_bounds_from == "sklearn_descr":  # every feature, bounds from the data (breast-cancer)
        return {column: "numeric" for column in frame.columns if column != info.label["column"]}
    return {**{column: "numeric" for column in info.numeric}, **{column: "categorical" for column in info.categorical}}


def scan_training_columns(dataset: str, uploads_dir: Path | None) -> dict[str, str]:
    """Training column -> why it looks like an identifier, for every suspicious one (empty: none)."""
    info = get_dataset_info(dataset, uploads_dir)
    if info.is_image:
        return {}
    frame = _read_frame(info)
    train_rows, _ = split_rows(frame, info.split)
    rows = frame.iloc[train_rows]
    found = {}
    for column, kind in training_columns(info, frame).items():
        if column not in rows:
            continue
        values = rows[column] if kind == "numeric" else rows[column].astype("string")
        reason = identifier_reason(column, values, kind, len(rows))
        if reason:
            found[column] = reason
    return found
