"""An upload's schema: what a user declares about a CSV so that registering it is repeatable anywhere.

The same schema is written by hand (`frontier upload FILE.csv --schema schema.yaml`), carried by an exported
config.yaml (its `upload:` section) and offered for download on the Data page. It holds only what the user
declares, never values read from the rows: the label and its positive class, the kept feature columns with
their public bounds (numeric) or public category lists (text), the flagged columns the user keeps on purpose,
what to do with the columns left undeclared, and, in an export, the prepared table's fingerprint so that another
CSV is refused rather than silently swept, with the DP-estimated bounds and categories and the release that drew
them (a DP release may be published: the other store rebuilds the same table and composes the same spend).

    name: loans                      # the dataset name (run ids include it)
    label: defaulted
    positive: "yes"                  # text; optional when the label has two values (the rarer one is the event)
    columns:                         # the kept features; every other column is dropped (never stored)
      age: {bounds: [18, 100]}       # public bounds: domain knowledge, not the rows' min/max
      income: {}                     # kept, undeclared: see `undeclared`
      purpose: {categories: [car, home, other]}   # a public code list
    keep_identifiers: [branch_code]  # flagged as identifiers, kept on purpose
    undeclared: dp                   # dp (default): DP estimates of undeclared bounds and category lists,
                                     #   spending preprocessing_epsilon; data: read from the rows (data-derived)
    preprocessing_epsilon: 0.1       # pure-DP epsilon in all for those estimates (default 0.1)
    fingerprint: 0123456789abcdef    # exports only: the prepared table this schema must reproduce
    # exports only: `dp_bounds: [low, high]` / `dp_categories: [...]` on a column, and the release behind them:
    # preprocessing_privacy: {epsilon: 0.1, delta: 0.0, mechanism: ...}
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any, Mapping

import yaml

from engine.data.catalogue import DatasetInfo
from engine.data.uploads.inspect import CsvInspection
from engine.data.uploads.validate import UNDECLARED, UploadSpec, default_positive_class
from engine.errors import DataError

SCHEMA_KEYS = ("name", "label", "positive", "columns", "keep_identifiers", "undeclared", "preprocessing_epsilon",
               "fingerprint", "preprocessing_privacy")
COLUMN_KEYS = ("bounds", "categories", "dp_bounds", "dp_categories")
PRIVACY_KEYS = ("epsilon", "delta", "mechanism", "columns", "epsilon_per_column", "category_threshold")


@dataclass(frozen=True)
class ColumnSchema:
    """One kept feature column: declared public bounds or categories, or neither (read from the rows)."""

    bounds: tuple[float, float] | None = None
    categories: tuple[str, ...] | None = None
    dp_bounds: tuple[float, float] | None = None  # exports: an earlier DP estimate, carried (not public knowledge)
    dp_categories: tuple[str, ...] | None = None


@dataclass(frozen=True)
class UploadSchema:
    """What a user declares about an uploaded CSV (see the module docstring). None: not declared."""

    label: str | None = None
    name: str | None = None
    positive: str | None = None
    columns: Mapping[str, ColumnSchema] | None = None  # None: every column but the suspected identifiers
    keep_identifiers: tuple[str, ...] = ()
    undeclared: str | None = None  # "dp" or "data"; None: dp
    preprocessing_epsilon: float | None = None  # None: UploadSpec's default
    fingerprint: str | None = None  # the registered table's fingerprint (engine.data.prepare)
    preprocessing_privacy: Mapping[str, Any] | None = None  # exports: the release behind dp_bounds / dp_categories

    def to_mapping(self) -> dict[str, Any]:
        """Plain values for YAML, in the documented order, leaving out what is not declared."""
        values: dict[str, Any] = {"name": self.name, "label": self.label, "positive": self.positive}
        if self.columns is not None:
            values["columns"] = {column: {key: list(getattr(c, key)) for key in COLUMN_KEYS if getattr(c, key) is not None}
                                 for column, c in self.columns.items()}
        if self.keep_identifiers:
            values["keep_identifiers"] = list(self.keep_identifiers)
        values["undeclared"] = self.undeclared
        values["preprocessing_epsilon"] = self.preprocessing_epsilon
        values["fingerprint"] = self.fingerprint
        values["preprocessing_privacy"] = dict(self.preprocessing_privacy) if self.preprocessing_privacy else None
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
    undeclared = values.get("undeclared")
    if undeclared is not None and undeclared not in UNDECLARED:
        raise DataError(f"{where}: undeclared must be dp (DP estimates) or data (read from the rows), got {undeclared!r}.")
    epsilon = values.get("preprocessing_epsilon")
    if epsilon is not None and not (_number(epsilon) and epsilon > 0):
        raise DataError(f"{where}: preprocessing_epsilon must be a positive number, got {epsilon!r}.")
    privacy = values.get("preprocessing_privacy")
    if privacy is not None:
        if not isinstance(privacy, Mapping) or not _number(privacy.get("epsilon")) or not privacy["epsilon"] > 0:
            raise DataError(f"{where}: preprocessing_privacy must be {{epsilon: E, delta: D, mechanism: ...}} as an "
                            f"export writes it, got {_kind(privacy)}.")
        unknown = sorted(str(key) for key in privacy if key not in PRIVACY_KEYS)
        if unknown:
            raise DataError(f"Unknown key(s) {', '.join(unknown)} in {where}: preprocessing_privacy.")
        privacy = dict(privacy)
    released = [c for c, spec in (columns or {}).items() if spec.dp_bounds is not None or spec.dp_categories is not None]
    if released and privacy is None:
        raise DataError(f"{where}: dp_bounds or dp_categories of {released[0]!r} come from an export, with the "
                        "preprocessing_privacy that drew them: give it, or declare public bounds/categories instead.")
    return UploadSchema(label=text.get("label"), name=text.get("name"), positive=text.get("positive"),
                        columns=columns, keep_identifiers=tuple(_text(c, f"{where}: keep_identifiers") for c in keep),
                        undeclared=undeclared, preprocessing_epsilon=None if epsilon is None else float(epsilon),
                        fingerprint=text.get("fingerprint"), preprocessing_privacy=privacy)


def _number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def _column(spec: Any, where: str) -> ColumnSchema:
    spec = {} if spec is None else spec
    if not isinstance(spec, Mapping):
        raise DataError(f"{where} must be {{}}, {{bounds: [low, high]}} or {{categories: [...]}}, got {_kind(spec)}.")
    unknown = sorted(str(key) for key in spec if key not in COLUMN_KEYS)
    if unknown:
        raise DataError(f"Unknown key(s) {', '.join(unknown)} in {where}: a column takes bounds or categories.")
    given = [key for key in COLUMN_KEYS if key in spec]
    if len(given) > 1:
        raise DataError(f"{where} has both {given[0]} and {given[1]}: give one (bounds are for numbers, categories "
                        "for text).")
    return ColumnSchema(bounds=_bounds(spec.get("bounds"), f"{where}: bounds"),
                        categories=_categories(spec.get("categories"), f"{where}: categories"),
                        dp_bounds=_bounds(spec.get("dp_bounds"), f"{where}: dp_bounds"),
                        dp_categories=_categories(spec.get("dp_categories"), f"{where}: dp_categories", empty=True))


def _bounds(bounds: Any, where: str) -> tuple[float, float] | None:
    if bounds is None:
        return None
    if not isinstance(bounds, list) or len(bounds) != 2 or not all(_number(b) for b in bounds):
        raise DataError(f"{where} must be two finite numbers [low, high], got {bounds!r}.")
    if not bounds[0] < bounds[1]:
        raise DataError(f"{where} must have low < high, got {bounds!r}.")
    return float(bounds[0]), float(bounds[1])


def _categories(categories: Any, where: str, empty: bool = False) -> tuple[str, ...] | None:
    if categories is None:
        return None
    if not isinstance(categories, list) or not (categories or empty):
        raise DataError(f"{where} must be a non-empty list of values, got {_kind(categories)}.")
    categories = tuple(_text(c, where) for c in categories)
    if len(set(categories)) != len(categories):
        raise DataError(f"{where} lists a value twice.")
    return categories


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
        undeclared=schema.undeclared or "dp",
        **({} if schema.preprocessing_epsilon is None else {"preprocessing_epsilon": schema.preprocessing_epsilon}),
        released_bounds={c: spec.dp_bounds for c, spec in columns.items() if spec.dp_bounds is not None},
        released_categories={c: spec.dp_categories for c, spec in columns.items() if spec.dp_categories is not None},
        released_privacy=dict(schema.preprocessing_privacy) if schema.preprocessing_privacy else None,
    )


def schema_of(info: DatasetInfo) -> UploadSchema:
    """The schema that registers an uploaded dataset again from the same CSV: its declared (public) bounds and
    categories, and its DP-estimated ones with the release that drew them (a DP release may be published);
    columns whose bounds or categories came from the rows are named, never valued."""
    if info.origin != "uploaded":
        raise DataError(f"{info.name!r} is a bundled dataset, not an upload: it has no upload schema.")
    derived, estimated = set(info.data_derived_columns), set(info.dp_estimated_columns)
    columns = {}
    for c, spec in info.numeric.items():
        bounds = tuple(float(b) for b in spec["bounds"])
        columns[c] = (ColumnSchema() if c in derived else ColumnSchema(dp_bounds=bounds) if c in estimated
                      else ColumnSchema(bounds=bounds))
    for c, values in info.categorical.items():
        values = tuple(map(str, values))
        columns[c] = (ColumnSchema() if c in derived else ColumnSchema(dp_categories=values) if c in estimated
                      else ColumnSchema(categories=values))
    declared = (info.upload or {}).get("declared") or {}
    return UploadSchema(label=info.label["column"], name=info.name, positive=str(info.label["positive"]),
                        columns=columns, keep_identifiers=tuple((info.upload or {}).get("kept_identifiers") or ()),
                        undeclared=declared.get("undeclared") or ("data" if derived - set(info.categorical) else None),
                        preprocessing_epsilon=declared.get("preprocessing_epsilon") if estimated else None,
                        fingerprint=info.fingerprint,
                        preprocessing_privacy=dict(info.preprocessing_privacy) if estimated and info.preprocessing_privacy else None)


def schema_yaml(schema: UploadSchema) -> str:
    """schema.yaml's text: what `frontier upload FILE.csv --schema schema.yaml` reads back."""
    return ("# Upload schema (Privacy Frontier): register the same CSV anywhere with\n"
            "#   frontier upload FILE.csv --schema schema.yaml\n"
            "# Only declared values are listed (and DP estimates, dp_bounds / dp_categories, with the release that\n"
            "# drew them): columns shown as {} have bounds or categories read from the rows.\n"
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
