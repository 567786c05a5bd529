"""Read an uploaded CSV: decode and sniff it, parse it, profile each column and flag suspected identifiers.

Nothing here is written anywhere; the result (CsvInspection) is what the Data page shows before the user
chooses what to keep (validate.py) and saves it (register.py).
"""

from __future__ import annotations

import csv
import hashlib
import io
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from engine.data.identifiers import identifier_reason
from engine.data.uploads.limits import MAX_ABS_VALUE, MAX_CATEGORIES, MIN_TRAIN_PER_CLASS, TEST_FRACTION
from engine.errors import DataError

# What counts as a missing value (pandas' defaults and "?"), matched once surrounding spaces are trimmed.
MISSING = frozenset({"", "?", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN",
                     "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null"})


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
    unusable: dict[str, str] = field(default_factory=dict)  # numeric columns with infinite or absurd values: why

    @property
    def n_rows(self) -> int:
        return len(self.frame)

    def preview(self, rows: int = 20) -> pd.DataFrame:
        return self.frame.head(rows)

    def profile(self, column: str) -> ColumnProfile:
        return next(p for p in self.columns if p.name == column)

    @property
    def suggested_drops(self) -> tuple[str, ...]:
        """Suspected identifiers, over-varied text columns and numbers that cannot be used: dropped unless kept."""
        return tuple(dict.fromkeys([*self.suspected_identifiers, *self.too_many_categories, *self.unusable]))

    def class_counts(self, column: str) -> dict[str, int]:
        """Values of a (label) column as text, with their counts, most frequent first; missing left out."""
        return label_text(self.frame[column]).value_counts().to_dict()


def label_text(values: pd.Series) -> pd.Series:
    """A label column as text: whole numbers without '.0' (1.0 -> '1'), missing kept missing."""
    if pd.api.types.is_numeric_dtype(values):
        return values.map(lambda v: None if pd.isna(v) else (str(int(v)) if float(v).is_integer() else repr(float(v)))
                          ).astype("string")
    return values.astype("string")


_BOMS = ((b"\xff\xfe\x00\x00", "utf-32-le"), (b"\x00\x00\xfe\xff", "utf-32-be"), (b"\xef\xbb\xbf", "utf-8-sig"),
         (b"\xff\xfe", "utf-16-le"), (b"\xfe\xff", "utf-16-be"))
EXPORT_AS_CSV = ("export the table as CSV (comma, semicolon or tab separated text, e.g. Excel's File > Save As > CSV "
                 "UTF-8) and upload that.")


def _utf16_without_bom(raw: bytes) -> str | None:
    """'utf-16-le' or 'utf-16-be' where every other byte of the start is NUL (ASCII-range text in UTF-16), else None."""
    head = raw[:8192]
    even, odd = head[0::2], head[1::2]
    if len(head) < 4:
        return None
    if odd.count(0) >= 0.6 * len(odd) and even.count(0) <= 0.05 * len(even):
        return "utf-16-le"
    if even.count(0) >= 0.6 * len(even) and odd.count(0) <= 0.05 * len(odd):
        return "utf-16-be"
    return None


def _decode(raw: bytes) -> tuple[str, str]:
    """The file's text and its encoding: a BOM's (UTF-8, UTF-16, UTF-32), UTF-16 without BOM, UTF-8, else latin-1."""
    if not raw.strip(b" \t\r\n\x00"):
        raise DataError("The file is empty: upload a CSV with a header row and at least 2 data rows.")
    for magic, kind in ((b"PK\x03\x04", "an Excel workbook or a zip archive"), (b"\xd0\xcf\x11\xe0", "an old Excel (.xls) file"),
                        (b"%PDF", "a PDF"), (b"\x89PNG", "a PNG image"), (b"\xff\xd8\xff", "a JPEG image"),
                        (b"PAR1", "a parquet file"), (b"\x1f\x8b", "a gzip archive")):
        if raw.startswith(magic):
            raise DataError(f"This file is {kind}, not a CSV: {EXPORT_AS_CSV}")
    encoding = next((name for bom, name in _BOMS if raw.startswith(bom)), None) or _utf16_without_bom(raw)
    if encoding is None:
        head = raw[:8192]
        if head.count(0) > 0.05 * len(head):  # a few NULs in text: refused below, naming the line
            raise DataError(f"This file is binary, not a CSV: {EXPORT_AS_CSV}")
        encoding = "utf-8"
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError as exc:
        if encoding != "utf-8":
            line = raw[:exc.start].count("\n".encode(encoding.removesuffix("-sig"))) + 1
            raise DataError(f"This file starts as {encoding.upper()} text but is not valid {encoding.upper()} near line "
                            f"{line}: {EXPORT_AS_CSV}") from None
        text, encoding = raw.decode("latin-1"), "latin-1"
    text = text.removeprefix("\ufeff")
    encoding = {"utf-8-sig": "utf-8"}.get(encoding, encoding)
    if "\x00" in text:
        line = text.count("\n", 0, text.index("\x00")) + 1
        raise DataError(f"Line {line} holds a NUL byte (\\x00), which a CSV never does: the file is damaged or was saved "
                        f"in another format; {EXPORT_AS_CSV}")
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


def _records(text: str, delimiter: str, filename: str) -> tuple[list[str], list[list[str]], list[int]]:
    """The header, the data rows and each row's line number. Refuses (naming the line) what pandas would silently
    fill, rename or drop: rows with fewer or more fields than the header, bad quoting."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, skipinitialspace=True, strict=True)
    header, rows, lines, last = None, [], [], 0
    try:
        for fields in reader:
            start, last = last + 1, reader.line_num
            if not fields or (len(fields) == 1 and not fields[0].strip()):
                continue  # a blank line
            if header is None:
                header = fields
            elif len(fields) != len(header):
                raise DataError(f"Could not read {filename} as CSV: line {start} has {len(fields)} field(s) where the "
                                f"header has {len(header)}. Every row must have as many fields as the header, "
                                "separated by commas, semicolons or tabs, with text containing the separator in "
                                "double quotes.")
            else:
                rows.append(fields)
                lines.append(start)
    except csv.Error as exc:
        raise DataError(f"Could not read {filename} as CSV (line {reader.line_num}: {exc}): every row must have as many "
                        "fields as the header, separated by commas, semicolons or tabs, with text containing the "
                        "separator in double quotes.") from None
    if header is None:
        raise DataError("The file has no header row: the first line must name the columns.")
    return header, rows, lines


def _check_header(header: list[str]) -> list[str]:
    """The column names, trimmed; refuses empty, duplicate and (once trimmed) colliding names, naming them."""
    names = [name.strip() for name in header]
    unnamed = [str(position) for position, name in enumerate(names, start=1) if not name]
    if unnamed:
        raise DataError(f"{'Columns' if len(unnamed) > 1 else 'Column'} {', '.join(unnamed)} of the header "
                        f"{'have' if len(unnamed) > 1 else 'has'} no name: name every column in the first line (a "
                        "separator at the end of each line makes an unnamed last column: remove it).")
    positions: dict[str, list[int]] = {}
    for position, name in enumerate(names, start=1):
        positions.setdefault(name, []).append(position)
    clashes = []
    for name, where in positions.items():
        if len(where) > 1:
            written = list(dict.fromkeys(header[i - 1] for i in where))
            at = " and ".join(map(str, where))
            clashes.append(f"{name!r} appears {len(where)} times (columns {at})" if len(written) == 1 else
                           f"{' and '.join(map(repr, written))} (columns {at}) are the same name once surrounding "
                           "spaces are trimmed")
    if clashes:
        raise DataError(f"Column names must be unique: {'; '.join(clashes)}. Rename them in the first line.")
    return names


def _unusable_numbers(numbers: pd.Series, written: pd.Series, lines: list[int]) -> str | None:
    """Why a column of numbers cannot be used as numbers (non-finite or beyond MAX_ABS_VALUE), naming a line."""
    bad = ~np.isfinite(numbers.to_numpy(float)) | (numbers.abs().to_numpy(float) > MAX_ABS_VALUE)
    if not bad.any():
        return None
    first = int(np.flatnonzero(bad)[0])
    return (f"{int(bad.sum())} value(s) are infinite or too large to use (beyond ±{MAX_ABS_VALUE:.0e}), the first "
            f"{written.iloc[first]!r} on line {lines[numbers.index[first]]}: they would overflow when scaled. Fix or "
            "remove them to keep this column")


def inspect_csv(raw: bytes, filename: str) -> CsvInspection:
    """Read an uploaded CSV (delimiter and encoding sniffed) and profile it. Raises DataError saying how to fix it."""
    text, encoding = _decode(raw)
    delimiter = _sniff(text)
    header, rows, lines = _records(text, delimiter, filename)
    if len(rows) < 2:
        raise DataError(f"The file has {len(rows)} data row(s) below its header: at least 2 are needed to read it, "
                        f"and a model needs at least {MIN_TRAIN_PER_CLASS} training rows of each class (about "
                        f"{int(np.ceil(2 * MIN_TRAIN_PER_CLASS / (1 - TEST_FRACTION)))} rows in all; hundreds in practice).")
    if len(header) < 2:
        raise DataError(f"Only one column was found ({header[0].strip()!r}): a dataset needs a label and at least one "
                        "feature. Check the separator: columns must be separated by commas, semicolons or tabs.")
    names = _check_header(header)
    frame = pd.DataFrame(rows, columns=names, dtype="string")
    frame = frame.apply(lambda column: column.str.strip().mask(lambda values: values.isin(MISSING)))
    profiles, typed, identifiers, varied, empty, unusable = [], {}, {}, {}, [], {}
    for column in frame.columns:
        values = frame[column]
        present = values.dropna()
        if present.empty:
            empty.append(column)
            profiles.append(ColumnProfile(column, "empty", len(values), 0))
            continue
        numbers = pd.to_numeric(present, errors="coerce")
        is_numeric = bool(numbers.notna().all())
        kind = "numeric" if is_numeric else "categorical"
        typed[column] = pd.to_numeric(values, errors="coerce").astype("float64") if is_numeric else values.astype("string")
        problem = _unusable_numbers(numbers, present, lines) if is_numeric else None
        if problem:
            unusable[column] = problem
        distinct = int(present.nunique())
        profiles.append(ColumnProfile(
            column, kind, int(values.isna().sum()), distinct,
            low=float(numbers.min()) if is_numeric else None, high=float(numbers.max()) if is_numeric else None,
            examples=tuple(str(v) for v in present.drop_duplicates().head(3)),
        ))
        reason = identifier_reason(column, typed[column], kind, len(frame), written=present)
        if reason:
            identifiers[column] = reason
        elif kind == "categorical" and distinct > MAX_CATEGORIES:
            varied[column] = (f"{distinct} different values: too many to one-hot encode (at most {MAX_CATEGORIES}); "
                              "drop it, or group its values into fewer categories before uploading")
    warnings = [f"{column!r}: {why}; it is dropped unless you keep it, and refused if kept." for column, why in unusable.items()]
    if empty:
        warnings.append(f"Dropped {len(empty)} column(s) with no value in any row: {', '.join(empty)}.")
    if len(typed) < 2:
        raise DataError(f"Only {len(typed)} column(s) hold any value ({', '.join(typed) or 'none'}); the empty "
                        f"column(s) {', '.join(empty)} were dropped. A dataset needs a label and at least one feature.")
    return CsvInspection(
        filename=filename, sha256=hashlib.sha256(raw).hexdigest(), encoding=encoding, delimiter=delimiter,
        frame=pd.DataFrame(typed), columns=tuple(profiles), suspected_identifiers=identifiers,
        too_many_categories=varied, empty_columns=tuple(empty), warnings=tuple(warnings), unusable=unusable,
    )

