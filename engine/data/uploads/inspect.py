"""Read an uploaded CSV: decode and sniff it, parse it, profile each column and flag suspected identifiers.

Nothing here is written anywhere; the result (CsvInspection) is what the Data page shows before the user
chooses what to keep (validate.py) and saves it (register.py).
"""

from __future__ import annotations

import csv
import hashlib
import io
from dataclasses import dataclass

import numpy as np
import pandas as pd

from engine.data.identifiers import identifier_reason
from engine.data.uploads.limits import MAX_CATEGORIES, MIN_TRAIN_PER_CLASS, TEST_FRACTION
from engine.errors import DataError

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


def label_text(values: pd.Series) -> pd.Series:
    """A label column as text: whole numbers without '.0' (1.0 -> '1'), missing kept missing."""
    if pd.api.types.is_numeric_dtype(values):
        return values.map(lambda v: None if pd.isna(v) else (str(int(v)) if float(v).is_integer() else repr(float(v)))
                          ).astype("string")
    return values.astype("string")


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

