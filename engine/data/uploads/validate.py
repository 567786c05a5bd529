"""Check the user's choices for an inspected CSV (UploadSpec) and work out what would be written (UploadPlan and
its catalogue entry). Nothing is written here: register.py does that.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Mapping

import numpy as np
import pandas as pd

from engine.data.catalogue import bundled_dataset_names
from engine.data.prepare import split_rows
from engine.data.uploads.inspect import CsvInspection, label_text
from engine.data.uploads.limits import MAX_CATEGORIES, MIN_TRAIN_PER_CLASS, NAME_PATTERN, SPLIT_SEED, TEST_FRACTION
from engine.errors import DataError


@dataclass(frozen=True)
class UploadSpec:
    """The user's choices. drop_columns None: the inspection's suggested drops (identifiers first)."""

    name: str  # slug: lower-case letters, digits, hyphens
    label_column: str
    positive_class: str  # as text; for a numeric label the value as written, e.g. "1"
    drop_columns: tuple[str, ...] | None = None
    numeric_bounds: Mapping[str, tuple[float, float]] = field(default_factory=dict)  # declared public knowledge
    public_categories: tuple[str, ...] = ()  # text columns whose list of values, read from the rows, is public
    # Text columns with their public list of values as declared (a schema): used as written, never read from the rows.
    declared_categories: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True, eq=False)
class UploadPlan:
    """What `register_upload` would write: validated, nothing written yet."""

    spec: UploadSpec
    table: pd.DataFrame  # kept columns, rows with a label; the label as text
    numeric: dict[str, dict]  # catalogue entries: bounds (and nullable)
    categorical: dict[str, list[str]]
    identifier_columns: tuple[str, ...]  # suspected identifiers dropped
    dropped_columns: tuple[str, ...]  # other columns dropped (the user's choice)
    data_derived_columns: tuple[str, ...]  # bounds or categories read from the rows
    class_counts: dict[str, int]  # training rows per class
    n_train: int
    n_test: int
    warnings: tuple[str, ...] = ()


def slugify(filename: str) -> str:
    """'Loan Applications 2026.csv' -> 'loan-applications-2026' (a valid dataset name, or '' if none)."""
    stem = re.sub(r"[^a-z0-9]+", "-", Path(filename).stem.lower()).strip("-")
    stem = re.sub(r"^[^a-z]+", "", stem)[:40].strip("-")
    return stem if NAME_PATTERN.match(stem) else ""


def default_positive_class(inspection: CsvInspection, label: str) -> str:
    """The rarer of a two-valued label (usually the event: default, fraud); more values need an explicit choice."""
    counts = inspection.class_counts(label) if label in inspection.frame else {}
    if len(counts) != 2:
        raise DataError(f"Label column {label!r} has {len(counts)} values: say which one is the positive class "
                        "(--positive VALUE, or `positive:` in the schema).")
    return min(counts, key=lambda value: (counts[value], value))


def validate_upload(inspection: CsvInspection, spec: UploadSpec) -> UploadPlan:
    """Check the user's choices against the file; return what would be written. Raises DataError saying how to fix it."""
    if not NAME_PATTERN.match(spec.name or ""):
        raise DataError(f"Dataset name {spec.name!r} is not valid: use 2-40 lower-case letters, digits and hyphens, "
                        "starting with a letter (e.g. loan-applications).")
    if spec.name in bundled_dataset_names():
        raise DataError(f"{spec.name!r} is the name of a bundled dataset: choose another name for your upload.")
    all_columns = [profile.name for profile in inspection.columns]
    label = spec.label_column
    if label not in all_columns:
        raise DataError(f"Label column {label!r} is not in the file; its columns are {', '.join(all_columns)}.")
    if label in inspection.empty_columns:
        raise DataError(f"Label column {label!r} is empty in every row: choose the column that holds the outcome.")
    drops = inspection.suggested_drops if spec.drop_columns is None else tuple(spec.drop_columns)
    if spec.drop_columns is None:
        drops = tuple(c for c in drops if c != label)
    unknown = [c for c in drops if c not in all_columns]
    if unknown:
        raise DataError(f"Cannot drop {', '.join(map(repr, unknown))}: not in the file ({', '.join(all_columns)}).")
    if label in drops:
        raise DataError(f"The label column {label!r} is among the columns to drop: keep it, or choose another label.")
    features = [c for c in inspection.frame.columns if c != label and c not in drops]
    if not features:
        raise DataError("Nothing is left to train on: every column except the label is dropped. Keep at least one feature.")

    labels = label_text(inspection.frame[label])
    has_label = labels.notna().to_numpy()
    counts = labels[has_label].value_counts()
    if len(counts) < 2:
        raise DataError(f"Label column {label!r} has a single class ({counts.index[0]!r} in every row): a classifier "
                        "needs rows of at least two classes. Choose another label column, or add rows of the other class.")
    positive = str(spec.positive_class)
    if positive not in counts.index:
        raise DataError(f"Positive class {positive!r} does not occur in {label!r}; its values are "
                        f"{', '.join(map(repr, counts.index[:20]))}.")
    table = inspection.frame.loc[has_label, features + [label]].reset_index(drop=True)
    table[label] = labels[has_label].to_numpy()
    train, test = split_rows(table, {"test_fraction": TEST_FRACTION, "seed": SPLIT_SEED})
    is_positive = (table[label] == positive).to_numpy()
    per_class = {positive: int(is_positive[train].sum()), "other": int((~is_positive[train]).sum())}
    test_per_class = {positive: int(is_positive[test].sum()), "other": int((~is_positive[test]).sum())}
    for name, count in per_class.items():
        what = f"class {positive!r}" if name == positive else f"rows not {positive!r}"
        if count < MIN_TRAIN_PER_CLASS or test_per_class[name] < 1:
            raise DataError(f"Too few rows: the training split ({len(train)} of {len(table)} rows) holds {count} {what} "
                            f"and the test split {test_per_class[name]}; at least {MIN_TRAIN_PER_CLASS} training rows of "
                            "each class are needed. Upload more rows.")
    varied = [c for c in features if inspection.profile(c).kind == "categorical" and inspection.profile(c).distinct > MAX_CATEGORIES]
    if varied:
        raise DataError(f"Column(s) {', '.join(map(repr, varied))} have too many different values to one-hot encode "
                        f"(more than {MAX_CATEGORIES}): drop them, or group their values before uploading.")

    numeric, categorical, derived, category_warnings = {}, {}, [], []
    bounds = dict(spec.numeric_bounds or {})
    for column in bounds:
        if column not in features or inspection.profile(column).kind != "numeric":
            raise DataError(f"Public bounds were given for {column!r}, which is not a kept numeric column: "
                            f"declare bounds only for {', '.join(c for c in features if inspection.profile(c).kind == 'numeric')}.")
        try:
            low, high = (float(value) for value in bounds[column])
        except (TypeError, ValueError) as exc:
            raise DataError(f"Public bounds for {column!r} must be two numbers (low, high), got {bounds[column]!r}.") from exc
        if not (np.isfinite(low) and np.isfinite(high) and low < high):
            raise DataError(f"Public bounds for {column!r} must be finite with low < high, got ({low:g}, {high:g}).")
        bounds[column] = (low, high)
    declared = {column: list(values) for column, values in (spec.declared_categories or {}).items()}
    for column in declared:
        if column not in features or inspection.profile(column).kind != "categorical":
            raise DataError(f"Categories were declared for {column!r}, which is not a kept text column: declare them "
                            f"only for {', '.join(c for c in features if inspection.profile(c).kind == 'categorical')}.")
    for column in features:
        values = table[column]
        if inspection.profile(column).kind == "numeric":
            low, high = bounds.get(column, (float(values.min()), float(values.max())))
            entry = {"bounds": [low, high]}
            if values.isna().any():
                entry["nullable"] = True
            numeric[column] = entry
            if column not in bounds:
                derived.append(column)
        elif column in declared:
            categorical[column] = declared[column]
            outside = int((~values.dropna().isin(declared[column])).sum())
            if outside:
                category_warnings.append(f"{outside} row(s) of {column!r} hold values outside its declared categories: they "
                                 "encode as none of them.")
        else:
            categorical[column] = sorted(values.dropna().unique().tolist())
            if column not in spec.public_categories:
                derived.append(column)
    identifiers = tuple(c for c in drops if c in inspection.suspected_identifiers)
    kept_identifiers = [c for c in features if c in inspection.suspected_identifiers]
    warnings = [*inspection.warnings, *category_warnings]
    if kept_identifiers:
        warnings.append(f"Kept column(s) that look like identifiers: {', '.join(kept_identifiers)}. A model should not "
                        "learn from who a person is; drop them unless you are sure.")
    if (~has_label).any():
        warnings.append(f"Left out {int((~has_label).sum())} row(s) with no value in the label column {label!r}.")
    if len(counts) > 2:
        warnings.append(f"{label!r} has {len(counts)} values: the task is {positive!r} against all the others.")
    return UploadPlan(
        spec=spec, table=table, numeric=numeric, categorical=categorical, identifier_columns=identifiers,
        dropped_columns=tuple(c for c in drops if c not in identifiers), data_derived_columns=tuple(derived),
        class_counts=per_class, n_train=len(train), n_test=len(test), warnings=tuple(warnings),
    )


def catalogue_entry(inspection: CsvInspection, plan: UploadPlan, when: datetime) -> dict:
    """The catalogue.yaml entry of `plan`, uploaded at `when` (the fingerprint is added once it is prepared)."""
    spec, label = plan.spec, plan.spec.label_column
    features = [c for c in plan.table.columns if c != label]
    n_rows = len(plan.table)
    date = when.strftime("%Y-%m-%d %H:%M UTC")
    return {
        "title": inspection.filename,
        "description": (f"Uploaded table: {n_rows} rows, {len(features)} feature columns. Predict {label} = "
                        f"{spec.positive_class!s}. Direct identifiers removed before storing: "
                        f"{', '.join(plan.identifier_columns) or 'none'}."),
        "task": "binary",
        "file": "data.parquet",
        "label": {"column": label, "positive": str(spec.positive_class)},
        "rows": n_rows,
        "licence": "user-provided",
        "provenance": f"uploaded {inspection.filename} on {date}, sha256 {inspection.sha256}",
        "split": {"test_fraction": TEST_FRACTION, "seed": SPLIT_SEED,
                  "description": f"fixed permutation (seed {SPLIT_SEED}): {plan.n_train} train / {plan.n_test} test"},
        # Never written to disk: listed so the card can say what was removed.
        "identifier_columns": list(plan.identifier_columns),
        "drop_columns": {c: "dropped at upload (not stored)" for c in (*plan.dropped_columns, *inspection.empty_columns)},
        "sensitive_columns": [*features, label],
        "bounds_source": "data" if plan.data_derived_columns else "public",
        "data_derived_columns": list(plan.data_derived_columns),
        "numeric": plan.numeric,
        "categorical": plan.categorical,
        "upload": {"filename": inspection.filename, "sha256": inspection.sha256,
                   "uploaded_at": when.isoformat(timespec="seconds"), "encoding": inspection.encoding,
                   "delimiter": {"\t": "tab"}.get(inspection.delimiter, inspection.delimiter),
                   "rows_in_file": inspection.n_rows, "warnings": list(plan.warnings),
                   # Flagged as identifiers yet kept by the user: an exported schema must say so again.
                   "kept_identifiers": [c for c in features if c in inspection.suspected_identifiers]},
    }
