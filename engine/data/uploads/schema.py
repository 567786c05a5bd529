"""An upload's schema: what a user declares about a CSV so that registering it is repeatable anywhere.

The same schema is written by hand (`frontier upload FILE.csv --schema schema.yaml`), carried by an exported
config.yaml (its `upload:` section) and offered for download on the Data page. It holds only what the user
declares, never values read from the rows: the label and its positive class, the kept feature columns with
their public bounds (numeric) or public category lists (text), the flagged columns the user keeps on purpose,
and, in an export, the prepared table's fingerprint so that another CSV is refused rather than silently swept.

    name: loans                      # the dataset name (run ids include it)
    label: defaulted
    positive: "yes"                  # text; optional when the label has two values (the rarer one is the event)
    columns:                         # the kept features; every other column is dropped (never stored)
      age: {bounds: [18, 100]}       # public bounds: domain knowledge, not the rows' min/max
      income: {}                     # kept; bounds read from the rows, recorded as data-derived
      purpose: {categories: [car, home, other]}   # a public code list
    keep_identifiers: [branch_code]  # flagged as identifiers, kept on purpose
    fingerprint: 0123456789abcdef    # exports only: the prepared table this schema must reproduce
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any, Mapping

import yaml

from engine.data.catalogue import DatasetInfo
from engine.data.uploads.inspect import CsvInspection
from engine.data.uploads.validate import UploadSpec, default_positive_class
from engine.errors import DataError

SCHEMA_KEYS = ("name", "label", "positive", "columns", "keep_identifiers", "fingerprint")
COLUMN_KEYS = ("bounds", "categories")


@dataclass(frozen=True)
class ColumnSchema:
    """One kept feature column: declared public bounds or categories, or neither (read from the rows)."""

    bounds: tuple[float, float] | None = None
    categories: tuple[str, ...] | None = None


@dataclass(frozen=True)
class UploadSchema:
    """What a user declares about an uploaded CSV (see the module docstring). None: not declared."""

    label: str | None = None
    name: str | None = None
    positive: str | None = None
    columns: Mapping[str, ColumnSchema] | None = None  # None: every column but the suspected identifiers
    keep_identifiers: tuple[str, ...] = ()
    fingerprint: str | None = None  # the registered table's fingerprint (engine.data.prepare)

    def to_mapping(self) -> dict[str, Any]:
        """Plain values for YAML, in the documented order, leaving out what is not declared."""
        values: dict[str, Any] = {"name": self.name, "label": self.label, "positive": self.positive}
        if self.columns is not None:
            values["columns"] = {column: ({"bounds": list(c.bounds)} if c.bounds is not None else {})
                                 | ({"categories": list(c.categories)} if c.categories is not None else {})
                                 for column, c in self.columns.items()}
        if self.keep_identifiers:
            values["keep_identifiers"] = list(self.keep_identifiers)
        values["fingerprint"] = self.fingerprint
        return {key: value for key, value in values.items() if value is not None}


# --- reading, strictly: a wrong key or type is a one-line error naming it --------------------------------
def read_schema(values: Any, where: str = "the upload schema") -> UploadSchema:
    """An UploadSchema from plain YAML values. Raises DataError naming the wrong key and what it should be."""
    if not isinstance(values, Mapping):
        raise DataError(f"{where} must be a mapping (label: COLUMN, columns: {{...}}), got {_kind(values)}.")
    unknown = sorted(str(key) for key in values if key not in SCHEMA_KEYS)
    if unknown:
        raise DataError(f"Unknown key(s) {', '.join(unknown)} in {where}: known keys are {', '.join(SCHEMA_KEYS)}.")
    text = {key: _text(values[key], f"{where}: {key}") for key in ("name", "label", "positive", "fingerprint")
            if values.get(key) is not None}
    columns = None
    if values.get("columns") is not None:
        if not isinstance(values["columns"], Mapping) or not values["columns"]:
            raise DataError(f"{where}: columns must map each kept column to {{}}, {{bounds: [low, high]}} or "
                            f"{{categories: [...]}}, got {_kind(values['columns'])}.")
        columns = {_text(column, f"{where}: a column name"): _column(spec, f"{where}: columns.{column}")
                   for column, spec in values["columns"].items()}
    keep = values.get("keep_identifiers") or []
    if not isinstance(keep, list):
        raise DataError(f"{where}: keep_identifiers must be a list of column names, got {_kind(keep)}.")
    return UploadSchema(label=text.get("label"), name=text.get("name"), positive=text.get("positive"),
                        columns=columns, keep_identifiers=tuple(_text(c, f"{where}: keep_identifiers") for c in keep),
                        fingerprint=text.get("fingerprint"))


def _column(spec: Any, where: str) -> ColumnSchema:
    spec = {} if spec is None else spec
    if not isinstance(spec, Mapping):
        raise DataError(f"{where} must be {{}}, {{bounds: [low, high]}} or {{categories: [...]}}, got {_kind(spec)}.")
    unknown = sorted(str(key) for key in spec if key not in COLUMN_KEYS)
    if unknown:
        raise DataError(f"Unknown key(s) {', '.join(unknown)} in {where}: a column takes bounds or categories.")
    if "bounds" in spec and "categories" in spec:
        raise DataError(f"{where} has both bounds and categories: bounds are for numbers, categories for text.")
    bounds = spec.get("bounds")
    if bounds is not None:
        if (not isinstance(bounds, list) or len(bounds) != 2
                or not all(isinstance(b, numbers.Real) and not isinstance(b, bool) and math.isfinite(b) for b in bounds)):
            raise DataError(f"{where}: bounds must be two finite numbers [low, high], got {bounds!r}.")
        if not bounds[0] < bounds[1]:
            raise DataError(f"{where}: bounds must have low < high, got {bounds!r}.")
        bounds = (float(bounds[0]), float(bounds[1]))
    categories = spec.get("categories")
    if categories is not None:
        if not isinstance(categories, list) or not categories:
            raise DataError(f"{where}: categories must be a non-empty list of values, got {_kind(categories)}.")
        categories = tuple(_text(c, f"{where}: categories") for c in categories)
        if len(set(categories)) != len(categories):
            raise DataError(f"{where}: categories lists a value twice.")
    return ColumnSchema(bounds=bounds, categories=categories)


def _text(value: Any, where: str) -> str:
    """Text as written: YAML's 1 or true is refused rather than turned into "1" (quote it to mean the text)."""
    if not isinstance(value, str) or not value.strip():
        hint = f' (quote it: "{value}")' if isinstance(value, (bool, int, float)) else ""
        raise DataError(f"{where} must be text, got {value!r}{hint}.")
    return value.strip()


def _kind(value: Any) -> str:
    return f"{type(value).__name__} {value!r}"[:80]


# --- using it ---------------------------------------------------------------------------------------------
def upload_spec(schema: UploadSchema, inspection: CsvInspection, name: str) -> UploadSpec:
    """The UploadSpec that registers `inspection` as `schema` declares (the same spec the Data page builds).

    Kept columns that look like identifiers are refused unless listed in keep_identifiers: on the command line
    nobody sees the page's warning, so keeping one must be said in the schema.
    """
    if schema.label is None:
        raise DataError("No label column: pass --label COLUMN or give `label:` in the schema.")
    present = [p.name for p in inspection.columns if p.kind != "empty"]
    named = [*(schema.columns or {}), *schema.keep_identifiers]
    missing = [c for c in named if c not in present]
    if missing:
        raise DataError(f"Column(s) {', '.join(map(repr, missing))} of the schema are not in {inspection.filename} "
                        f"(or empty in every row); its columns are {', '.join(present)}.")
    if schema.columns is None:
        drops = tuple(c for c in inspection.suggested_drops if c != schema.label and c not in schema.keep_identifiers)
    else:
        drops = tuple(c for c in present if c != schema.label and c not in schema.columns)
        flagged = [c for c in schema.columns if c in inspection.suspected_identifiers and c not in schema.keep_identifiers]
        if flagged:
            column = flagged[0]
            raise DataError(f"Column {column!r} looks like an identifier ({inspection.suspected_identifiers[column]}): "
                            "drop it from the schema's columns, or list it under keep_identifiers if you are sure "
                            "it is not one.")
    columns = schema.columns or {}
    return UploadSpec(
        name=name, label_column=schema.label,
        positive_class=schema.positive or default_positive_class(inspection, schema.label),
        drop_columns=drops,
        numeric_bounds={c: spec.bounds for c, spec in columns.items() if spec.bounds is not None},
        declared_categories={c: spec.categories for c, spec in columns.items() if spec.categories is not None},
    )


def schema_of(info: DatasetInfo) -> UploadSchema:
    """The schema that registers an uploaded dataset again from the same CSV: only its declared (public) bounds
    and categories are written out; columns whose bounds or categories came from the rows are named, not valued."""
    if info.origin != "uploaded":
        raise DataError(f"{info.name!r} is a bundled dataset, not an upload: it has no upload schema.")
    derived = set(info.data_derived_columns)
    columns = {c: ColumnSchema(bounds=None if c in derived else tuple(float(b) for b in spec["bounds"]))
               for c, spec in info.numeric.items()}
    columns |= {c: ColumnSchema(categories=None if c in derived else tuple(map(str, values)))
                for c, values in info.categorical.items()}
    return UploadSchema(label=info.label["column"], name=info.name, positive=str(info.label["positive"]),
                        columns=columns, keep_identifiers=tuple((info.upload or {}).get("kept_identifiers") or ()),
                        fingerprint=info.fingerprint)


def schema_yaml(schema: UploadSchema) -> str:
    """schema.yaml's text: what `frontier upload FILE.csv --schema schema.yaml` reads back."""
    return ("# Upload schema (Privacy Frontier): register the same CSV anywhere with\n"
            "#   frontier upload FILE.csv --schema schema.yaml\n"
            "# Only declared values are listed: columns shown as {} have bounds or categories read from the rows.\n"
            + yaml.safe_dump(schema.to_mapping(), sort_keys=False, allow_unicode=True))


def schema_from_yaml(text: str, where: str) -> UploadSchema:
    """The schema in a schema.yaml, or in an exported config.yaml's `upload:` section."""
    try:
        loaded = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise DataError(f"{where} is not valid YAML: {str(exc).splitlines()[0]}") from exc
    if isinstance(loaded, Mapping) and "sweep" in loaded:  # an exported config: its upload section
        if loaded.get("upload") is None:
            raise DataError(f"{where} is a sweep config without an `upload:` section: its dataset is not an upload.")
        return read_schema(loaded["upload"], f"{where} (upload:)")
    return read_schema(loaded, where)
