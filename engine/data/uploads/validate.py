"""Check the user's choices for an inspected CSV (UploadSpec) and work out what would be written (UploadPlan and
its catalogue entry). Nothing is written here: register.py does that.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd

from engine.data.catalogue import bundled_dataset_names
from engine.data.prepare import split_rows
from engine.data.uploads.dp_preprocessing import category_threshold, dp_preprocess
from engine.data.uploads.inspect import CsvInspection, label_text
from engine.data.uploads.limits import (MAX_ABS_VALUE, MAX_CATEGORIES, MIN_TRAIN_PER_CLASS, NAME_PATTERN, SPLIT_SEED,
                                       TEST_FRACTION)
from engine.errors import DataError


UNDECLARED = ("dp", "data")  # what becomes of a numeric column without declared bounds


@dataclass(frozen=True)
class UploadSpec:
    """The user's choices. drop_columns None: the inspection's suggested drops (identifiers first)."""

    name: str  # slug: lower-case letters, digits, hyphens
    label_column: str
    positive_class: str  # as text; for a numeric label the value as written, e.g. "1"
    drop_columns: tuple[str, ...] | None = None
    numeric_bounds: Mapping[str, tuple[float, float]] = field(default_factory=dict)  # declared public knowledge
    # Text columns with their public list of values as typed (the Data page, a schema): never read from the rows.
    declared_categories: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # Numeric columns without declared bounds: "dp" (a DP range estimate spending preprocessing_epsilon in all,
    # composed into every run on the table) or "data" (the rows' min/max, listed as data-derived everywhere).
    undeclared: str = "dp"
    preprocessing_epsilon: float = 0.1  # split evenly over the undeclared numeric columns; nothing spent if none
    # An export's DP bounds, carried so another store rebuilds the same table (no new estimate), with the
    # preprocessing_privacy of the release that drew them.
    released_bounds: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    released_categories: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    released_privacy: Mapping[str, Any] | None = None


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
    dp_columns: tuple[str, ...] = ()  # bounds or categories released by a DP estimate (this upload's or an export's)
    preprocessing_privacy: dict | None = None  # {epsilon, delta, mechanism, columns}: the DP estimate's spend


def declaration(spec: UploadSpec) -> dict:
    """The user's declarations in plain values (compared to tell a repeated upload from a new one)."""
    return {"label": spec.label_column, "positive": str(spec.positive_class),
            "drop_columns": None if spec.drop_columns is None else sorted(spec.drop_columns),
            "bounds": {c: [float(v) for v in pair] for c, pair in sorted((spec.numeric_bounds or {}).items())},
            "categories": {c: list(values) for c, values in sorted((spec.declared_categories or {}).items())},
            "undeclared": spec.undeclared, "preprocessing_epsilon": float(spec.preprocessing_epsilon),
            "released_bounds": {c: [float(v) for v in pair] for c, pair in sorted((spec.released_bounds or {}).items())},
            "released_categories": {c: list(v) for c, v in sorted((spec.released_categories or {}).items())}}


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
    unusable = [c for c in [*features, label] if c in inspection.unusable]
    if unusable:
        raise DataError(f"Column {unusable[0]!r} cannot be kept: {inspection.unusable[unusable[0]]}, or drop it.")
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
    numeric_kept = [c for c in features if inspection.profile(c).kind == "numeric"]
    bounds = _checked_bounds(spec.numeric_bounds, numeric_kept, "Public bounds")
    released = _checked_bounds(spec.released_bounds, numeric_kept, "DP bounds")
    released_text = {column: list(values) for column, values in (spec.released_categories or {}).items()}
    if (released or released_text) and not (spec.released_privacy or {}).get("epsilon"):
        raise DataError("DP bounds or categories were given without the preprocessing_privacy of the release that drew them: "
                        "they come from an export; declare public bounds with `bounds:` instead.")
    both = sorted(set(bounds) & set(released))
    if both:
        raise DataError(f"{both[0]!r} has both public bounds and DP bounds: give one.")
    if spec.undeclared not in UNDECLARED:
        raise DataError(f"Undeclared numeric columns must be 'dp' (a DP range estimate) or 'data' (the rows' min/max, "
                        f"data-derived), got {spec.undeclared!r}.")
    declared = {column: list(values) for column, values in (spec.declared_categories or {}).items()}
    text_kept = [c for c in features if inspection.profile(c).kind == "categorical"]
    for column in [*declared, *released_text]:
        if column not in text_kept:
            raise DataError(f"Categories were declared for {column!r}, which is not a kept text column: declare them "
                            f"only for {', '.join(text_kept) or 'none (no text column is kept)'}.")
    undeclared = [c for c in numeric_kept if c not in bounds and c not in released]
    if set(declared) & set(released_text):
        raise DataError(f"{sorted(set(declared) & set(released_text))[0]!r} has both categories and DP categories: give one.")
    undeclared_text = [c for c in text_kept if c not in declared and c not in released_text]
    estimated, discovered, spent = {}, {}, None
    if spec.undeclared == "dp" and (undeclared or undeclared_text):
        epsilon = spec.preprocessing_epsilon
        if not (isinstance(epsilon, (int, float)) and math.isfinite(epsilon) and epsilon > 0):
            raise DataError(f"The preprocessing epsilon must be a positive number, got {epsilon!r}.")
        estimated, discovered, spent = dp_preprocess({c: table[c].to_numpy(float) for c in undeclared},
                                                     {c: table[c] for c in undeclared_text}, float(epsilon))
    privacy = _total_privacy(spec.released_privacy if released or released_text else None, spent)
    unkept = []  # text columns whose DP estimate kept no value
    for column in features:
        values = table[column]
        if column in numeric_kept:
            low, high = bounds.get(column) or released.get(column) or estimated.get(column) or (
                float(values.min()), float(values.max()))
            # Every numeric column of an upload may be missing: a 0/1 flag that is always 0 costs an input and
            # reads nothing, while "nullable only if some row is missing" would tell whether anyone's value is.
            numeric[column] = {"bounds": [float(low), float(high)], "nullable": True}
            if column not in bounds and column not in released and column not in estimated:
                derived.append(column)
            continue
        if column in declared:
            categorical[column] = declared[column]
            outside = int((~values.dropna().isin(declared[column])).sum())
            if outside:
                category_warnings.append(f"{outside} row(s) of {column!r} hold values outside its declared categories: they "
                                         "encode as none of them and are not stored.")
        elif column in released_text:
            categorical[column] = released_text[column]
        elif column in discovered:
            needed = category_threshold(spent["epsilon_per_column"], spent["delta"] / len(undeclared_text))
            if not discovered[column]:  # nothing to encode: the column is not kept (nor stored)
                category_warnings.append(
                    f"Dropped {column!r}: no list of values was typed, and no value is held by enough rows (about "
                    f"{needed} at this ε) for the DP estimate to keep it. Type the column's public list of values, or "
                    "raise the preprocessing ε, to keep it.")
                unkept.append(column)
                continue
            categorical[column] = discovered[column]
            category_warnings.append(
                f"{column!r}: no list of values was typed, so a DP estimate kept {len(discovered[column])} value(s), "
                f"those held by about {needed} rows or more; the others encode as none of them and are not stored. "
                "Type the column's public list of values to keep them all.")
        else:
            categorical[column] = sorted(values.dropna().unique().tolist())
            derived.append(column)
        # Data minimisation: a value outside the column's list is never used (it encodes as none), so it is not
        # stored either: a rare value nobody typed never reaches the disk.
        table[column] = values.where(values.isin(categorical[column]))
    if unkept:
        if len(unkept) == len(features):
            raise DataError("Nothing is left to train on: no text column kept a value under the DP estimate. Type the "
                            "columns' public lists of values, or raise the preprocessing ε.")
        table = table.drop(columns=unkept)
        drops = (*drops, *unkept)
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
        dp_columns=tuple(c for c in features if (c in released or c in estimated or c in released_text or c in discovered)
                         and c not in unkept),
        preprocessing_privacy=privacy,
        class_counts=per_class, n_train=len(train), n_test=len(test), warnings=tuple(warnings),
    )


def _checked_bounds(given: Mapping | None, numeric_kept: list[str], what: str) -> dict[str, tuple[float, float]]:
    checked = {}
    for column, pair in dict(given or {}).items():
        if column not in numeric_kept:
            raise DataError(f"{what} were given for {column!r}, which is not a kept numeric column: "
                            f"declare bounds only for {', '.join(numeric_kept) or 'none (no numeric column is kept)'}.")
        try:
            low, high = (float(value) for value in pair)
        except (TypeError, ValueError) as exc:
            raise DataError(f"{what} for {column!r} must be two numbers (low, high), got {pair!r}.") from exc
        if not (np.isfinite(low) and np.isfinite(high) and low < high):
            raise DataError(f"{what} for {column!r} must be finite with low < high, got ({low:g}, {high:g}).")
        if max(abs(low), abs(high)) > MAX_ABS_VALUE:
            raise DataError(f"{what} for {column!r} must lie within ±{MAX_ABS_VALUE:.0e} (scaling beyond overflows), "
                            f"got ({low:g}, {high:g}).")
        checked[column] = (low, high)
    return checked


def _total_privacy(carried: Mapping | None, spent: dict | None) -> dict | None:
    """The preprocessing release(s) behind this table's DP bounds: an export's carried one, this upload's, or both
    (pure epsilon-DP releases on the same rows: their epsilons add)."""
    if not carried and not spent:
        return None
    if not carried:
        return spent
    carried = {"epsilon": float(carried["epsilon"]), "delta": float(carried.get("delta") or 0.0),
               "mechanism": str(carried.get("mechanism") or "a DP range estimate"),
               "columns": list(carried.get("columns") or [])}
    if not spent:
        return carried
    return {"epsilon": carried["epsilon"] + spent["epsilon"], "delta": carried["delta"] + spent["delta"],
            "mechanism": spent["mechanism"], "columns": [*carried["columns"], *spent["columns"]]}


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
        "bounds_source": "data" if plan.data_derived_columns else "dp" if plan.dp_columns else "public",
        "data_derived_columns": list(plan.data_derived_columns),
        "dp_estimated_columns": list(plan.dp_columns),
        **({"preprocessing_privacy": plan.preprocessing_privacy} if plan.preprocessing_privacy else {}),
        "numeric": plan.numeric,
        "categorical": plan.categorical,
        "upload": {"filename": inspection.filename, "sha256": inspection.sha256,
                   "uploaded_at": when.isoformat(timespec="seconds"), "encoding": inspection.encoding,
                   "delimiter": {"\t": "tab"}.get(inspection.delimiter, inspection.delimiter),
                   "rows_in_file": inspection.n_rows, "warnings": list(plan.warnings),
                   # Flagged as identifiers yet kept by the user: an exported schema must say so again.
                   "kept_identifiers": [c for c in features if c in inspection.suspected_identifiers],
                   # What the user declared (never values read from the rows): the same file with the same
                   # declarations again is the same upload, and draws no second DP estimate.
                   "declared": declaration(spec)},
    }
