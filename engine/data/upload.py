"""User CSV uploads: inspect a file, validate the user's choices, register it as a dataset the engine can sweep.

Data minimisation: columns that look like direct identifiers (names, e-mail addresses, phone numbers, national
ids, row ids) are flagged and dropped by default, and dropped columns are never written to disk. The kept
columns go to `<uploads_dir>/<name>/data.parquet` with a catalogue entry beside it; nothing is sent anywhere.

Bounds: an upload comes without a catalogue of public bounds. Bounds the user declares as public knowledge
(age 18-100, a legal limit) are used as such. Every other numeric bound is the column's min/max and every
category list is read from the rows: both are recorded as data-derived (`data_derived_columns` in the entry,
`data_derived_bounds` in every run record), because they leak information that epsilon does not cover.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
import shutil
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Mapping

import numpy as np
import pandas as pd
import yaml

from engine.data.catalogue import DatasetInfo, bundled_dataset_names, parse_entry
from engine.data.identifiers import identifier_reason
from engine.data.prepare import prepare_table, split_rows
from engine.errors import DataError

MIN_TRAIN_PER_CLASS = 10  # training rows of each class below which a frontier means nothing
MAX_CATEGORIES = 50  # a text column with more distinct values is not one-hot encoded: drop or bin it
TEST_FRACTION, SPLIT_SEED = 0.25, 20261123  # the same fixed split as the bundled tables
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9-]{1,39}$")
EXTRA_MISSING = ["?"]  # besides pandas' defaults ("", NA, N/A, n/a, null, NaN, None, ...)

@dataclass(frozen=True)
class ColumnProfile:
    """One column as read: kind ("numeric", "categorical" or "empty"), missing and distinct counts."""

    name: str
    kind: str
    missing: int
    distinct: int
    low: float | None = None  # numeric: the smallest and largest value in the file
    high: float | None = None
    examples: tuple[str, ...] = ()


@dataclass(frozen=True, eq=False)
class CsvInspection:
    """What `inspect_csv` read. `frame` holds every row of the non-empty columns (numbers as float64, text as string)."""

    filename: str
    sha256: str  # of the uploaded bytes
    encoding: str
    delimiter: str
    frame: pd.DataFrame  # (rows, non-empty columns)
    columns: tuple[ColumnProfile, ...]  # every column of the file, empty ones included
    suspected_identifiers: dict[str, str]  # column -> why it looks like a (quasi-)identifier
    too_many_categories: dict[str, str]  # text columns too varied to one-hot encode
    empty_columns: tuple[str, ...]  # dropped: no value in any row
    warnings: tuple[str, ...] = ()

    @property
    def n_rows(self) -> int:
        return len(self.frame)

    def preview(self, rows: int = 20) -> pd.DataFrame:
        return self.frame.head(rows)

    def profile(self, column: str) -> ColumnProfile:
        return next(p for p in self.columns if p.name == column)

    @property
    def suggested_drops(self) -> tuple[str, ...]:
        """Suspected identifiers and over-varied text columns: dropped unless the user keeps them."""
        return tuple(dict.fromkeys([*self.suspected_identifiers, *self.too_many_categories]))

    def class_counts(self, column: str) -> dict[str, int]:
        """Values of a (label) column as text, with their counts, most frequent first; missing left out."""
        return label_text(self.frame[column]).value_counts().to_dict()


@dataclass(frozen=True)
class UploadSpec:
    """The user's choices. drop_columns None: the inspection's suggested drops (identifiers first)."""

    name: str  # slug: lower-case letters, digits, hyphens
    label_column: str
    positive_class: str  # as text; for a numeric label the value as written, e.g. "1"
    drop_columns: tuple[str, ...] | None = None
    numeric_bounds: Mapping[str, tuple[float, float]] = field(default_factory=dict)  # declared public knowledge
    public_categories: tuple[str, ...] = ()  # text columns whose list of values is public (a fixed code list)


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


def label_text(values: pd.Series) -> pd.Series:
    """A label column as text: whole numbers without '.0' (1.0 -> '1'), missing kept missing."""
    if pd.api.types.is_numeric_dtype(values):
        return values.map(lambda v: None if pd.isna(v) else (str(int(v)) if float(v).is_integer() else repr(float(v)))
                          ).astype("string")
    return values.astype("string")


def slugify(filename: str) -> str:
    """'Loan Applications 2026.csv' -> 'loan-applications-2026' (a valid dataset name, or '' if none)."""
    stem = re.sub(r"[^a-z0-9]+", "-", Path(filename).stem.lower()).strip("-")
    stem = re.sub(r"^[^a-z]+", "", stem)[:40].strip("-")
    return stem if NAME_PATTERN.match(stem) else ""


# --- reading ------------------------------------------------------------------------------------------------
def _decode(raw: bytes) -> tuple[str, str]:
    if not raw.strip():
        raise DataError("The file is empty: upload a CSV with a header row and at least 2 data rows.")
    for magic, kind in ((b"PK\x03\x04", "an Excel workbook or a zip archive"), (b"\xd0\xcf\x11\xe0", "an old Excel (.xls) file"),
                        (b"%PDF", "a PDF"), (b"\x89PNG", "a PNG image"), (b"\xff\xd8\xff", "a JPEG image"),
                        (b"PAR1", "a parquet file"), (b"\x1f\x8b", "a gzip archive")):
        if raw.startswith(magic):
            raise DataError(f"This file is {kind}, not a CSV: export the table as CSV (comma, semicolon or "
                            "tab separated text, e.g. Excel's File > Save As > CSV UTF-8) and upload that.")
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        return raw.decode("utf-16"), "utf-16"
    head = raw[:8192]
    if b"\x00" in head:
        raise DataError("This file is binary, not a CSV: export the table as CSV (comma, semicolon or tab separated "
                        "text) and upload that.")
    try:
        text, encoding = raw.decode("utf-8-sig"), "utf-8"
    except UnicodeDecodeError:
        text, encoding = raw.decode("latin-1"), "latin-1"
    sample = text[:8192]
    control = sum(1 for ch in sample if ord(ch) < 32 and ch not in "\t\r\n")
    if control > 0.01 * len(sample):
        raise DataError("This file does not look like text: export the table as CSV (comma, semicolon or tab "
                        "separated text) and upload that.")
    return text, encoding


def _sniff(text: str) -> str:
    """The delimiter (',', ';' or tab) that splits the first lines into the most, equally wide, fields."""
    lines = [line for line in text.splitlines()[:50] if line.strip()]
    best, best_width = ",", 1
    for delimiter in (",", ";", "\t"):
        widths = [len(row) for row in csv.reader(lines, delimiter=delimiter)]
        if widths and widths[0] > best_width and sum(w == widths[0] for w in widths) >= 0.8 * len(widths):
            best, best_width = delimiter, widths[0]
    return best


def inspect_csv(raw: bytes, filename: str) -> CsvInspection:
    """Read an uploaded CSV (delimiter and encoding sniffed) and profile it. Raises DataError saying how to fix it."""
    text, encoding = _decode(raw)
    delimiter = _sniff(text)
    try:
        frame = pd.read_csv(io.StringIO(text), sep=delimiter, dtype=str, na_values=EXTRA_MISSING,
                            skipinitialspace=True, on_bad_lines="error")
    except pd.errors.EmptyDataError as exc:
        raise DataError("The file has no header row: the first line must name the columns.") from exc
    except (pd.errors.ParserError, ValueError, csv.Error) as exc:
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"Could not read {filename} as CSV ({detail}): every row must have as many fields as the "
                        "header, separated by commas, semicolons or tabs, with text containing the separator in "
                        "double quotes.") from exc
    frame.columns = [str(column).strip() for column in frame.columns]
    if len(frame) < 2:
        raise DataError(f"The file has {len(frame)} data row(s) below its header: at least 2 are needed to read it, "
                        f"and a model needs at least {MIN_TRAIN_PER_CLASS} training rows of each class (about "
                        f"{int(np.ceil(2 * MIN_TRAIN_PER_CLASS / (1 - TEST_FRACTION)))} rows in all; hundreds in practice).")
    if frame.shape[1] < 2:
        raise DataError(f"Only one column was found ({frame.columns[0]!r}): a dataset needs a label and at least one "
                        "feature. Check the separator: columns must be separated by commas, semicolons or tabs.")
    frame = frame.apply(lambda column: column.str.strip().replace("", pd.NA))
    profiles, typed, identifiers, varied, empty = [], {}, {}, {}, []
    for column in frame.columns:
        values = frame[column]
        present = values.dropna()
        if present.empty:
            empty.append(column)
            profiles.append(ColumnProfile(column, "empty", len(values), 0))
            continue
        numbers = pd.to_numeric(present, errors="coerce")
        is_numeric = bool(numbers.notna().all() and np.isfinite(numbers.to_numpy(float)).all())
        kind = "numeric" if is_numeric else "categorical"
        typed[column] = pd.to_numeric(values, errors="coerce").astype("float64") if is_numeric else values.astype("string")
        distinct = int(present.nunique())
        profiles.append(ColumnProfile(
            column, kind, int(values.isna().sum()), distinct,
            low=float(numbers.min()) if is_numeric else None, high=float(numbers.max()) if is_numeric else None,
            examples=tuple(str(v) for v in present.drop_duplicates().head(3)),
        ))
        reason = identifier_reason(column, typed[column], kind, len(frame))
        if reason:
            identifiers[column] = reason
        elif kind == "categorical" and distinct > MAX_CATEGORIES:
            varied[column] = (f"{distinct} different values: too many to one-hot encode (at most {MAX_CATEGORIES}); "
                              "drop it, or group its values into fewer categories before uploading")
    warnings = []
    if empty:
        warnings.append(f"Dropped {len(empty)} column(s) with no value in any row: {', '.join(empty)}.")
    if len(typed) < 2:
        raise DataError(f"Only {len(typed)} column(s) hold any value ({', '.join(typed) or 'none'}); the empty "
                        f"column(s) {', '.join(empty)} were dropped. A dataset needs a label and at least one feature.")
    return CsvInspection(
        filename=filename, sha256=hashlib.sha256(raw).hexdigest(), encoding=encoding, delimiter=delimiter,
        frame=pd.DataFrame(typed), columns=tuple(profiles), suspected_identifiers=identifiers,
        too_many_categories=varied, empty_columns=tuple(empty), warnings=tuple(warnings),
    )


# --- validating ---------------------------------------------------------------------------------------------
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

    numeric, categorical, derived = {}, {}, []
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
        else:
            categorical[column] = sorted(values.dropna().unique().tolist())
            if column not in spec.public_categories:
                derived.append(column)
    identifiers = tuple(c for c in drops if c in inspection.suspected_identifiers)
    kept_identifiers = [c for c in features if c in inspection.suspected_identifiers]
    warnings = list(inspection.warnings)
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


# --- registering --------------------------------------------------------------------------------------------
def _catalogue_entry(inspection: CsvInspection, plan: UploadPlan, when: datetime) -> dict:
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
                   "rows_in_file": inspection.n_rows, "warnings": list(plan.warnings)},
    }


def _write_entry(folder: Path, name: str, entry: dict) -> None:
    with (folder / "catalogue.yaml").open("w", encoding="utf-8") as handle:
        handle.write("# Written by the Data page (engine/data/upload.py). Bounds and categories listed in\n"
                     "# data_derived_columns were read from the rows: every run record repeats them.\n")
        yaml.safe_dump({name: entry}, handle, sort_keys=False, allow_unicode=True)


def register_upload(raw: bytes, inspection_or_filename: CsvInspection | str, spec: UploadSpec, *,
                    uploads_dir: Path, replace: bool = False) -> DatasetInfo:
    """Keep the upload as a dataset under `<uploads_dir>/<name>/` and return its catalogue entry.

    Only the kept columns are written (dropped and identifier columns never touch the disk). The same name with
    the same prepared data again is a no-op; with other data it is an error unless `replace` (earlier runs
    keep their old fingerprint in their cache key, so they are never mistaken for runs on the new data).
    """
    inspection = (inspection_or_filename if isinstance(inspection_or_filename, CsvInspection)
                  else inspect_csv(raw, str(inspection_or_filename)))
    if inspection.sha256 != hashlib.sha256(raw).hexdigest():
        raise DataError("The inspection passed to register_upload belongs to another file: inspect this file again.")
    plan = validate_upload(inspection, spec)
    root = Path(uploads_dir)
    root.mkdir(parents=True, exist_ok=True)
    folder = root / spec.name
    staging = root / f".{spec.name}.staging-{uuid.uuid4().hex[:8]}"
    staging.mkdir()
    try:
        entry = _catalogue_entry(inspection, plan, datetime.now(timezone.utc))
        plan.table.to_parquet(staging / "data.parquet", index=False)
        _write_entry(staging, spec.name, entry)
        # Prepare it once now, as a sweep would: fails here (not in the middle of a sweep) and gives the fingerprint.
        info = parse_entry(spec.name, entry, staging)
        entry["fingerprint"] = prepare_table(info).fingerprint
        _write_entry(staging, spec.name, entry)
        if (folder / "catalogue.yaml").exists():
            old = (yaml.safe_load((folder / "catalogue.yaml").read_text(encoding="utf-8")) or {}).get(spec.name) or {}
            if old.get("fingerprint") == entry["fingerprint"] and old.get("data_derived_columns") == entry["data_derived_columns"]:
                shutil.rmtree(staging)
                return parse_entry(spec.name, old, folder)
            if not replace:
                raise DataError(f"A dataset named {spec.name!r} already exists ({old.get('provenance', 'uploaded earlier')}) "
                                "with other data: choose another name, or replace it (runs on the old data stay in the "
                                "store under their own fingerprint).")
        if folder.exists():
            retired = root / f".{spec.name}.replaced-{uuid.uuid4().hex[:8]}"
            folder.rename(retired)
            staging.rename(folder)
            shutil.rmtree(retired, ignore_errors=True)
        else:
            staging.rename(folder)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return parse_entry(spec.name, entry, folder)


def delete_upload(name: str, *, uploads_dir: Path) -> None:
    """Remove an uploaded dataset's folder in `uploads_dir` (its stored rows and entry). Runs already in the result
    store stay."""
    folder = Path(uploads_dir) / name
    if name in bundled_dataset_names() or not NAME_PATTERN.match(name) or not (folder / "catalogue.yaml").exists():
        raise DataError(f"{name!r} is not an uploaded dataset in {folder.parent}: nothing to delete.")
    shutil.rmtree(folder)
