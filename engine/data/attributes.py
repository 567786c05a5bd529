"""A prepared table seen as its catalogue's ORIGINAL attributes rather than as encoded columns.

`encode_table` turns each numeric column into one column in [-1, 1] (plus a 0/1 "missing" column when
nullable) and each categorical column into a one-hot block. Techniques that reason per attribute (local
DP randomises each attribute of a record; a random DP forest picks one attribute per split) need to know
which encoded columns belong to which attribute. That structure comes from the catalogue alone (public),
never from the rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.data.prepare import PreparedDataset
from engine.errors import DataError, UnsupportedError


@dataclass(frozen=True)
class Attribute:
    """One original attribute and the encoded columns that hold it.

    kind "numeric": one column, value in [-1, 1]. kind "missing": the 0/1 "was missing" column of a nullable
    numeric. kind "categorical": a one-hot block of `len(columns)` declared categories; an all-zero row
    (missing or undeclared value) is the extra category "other", so the attribute has len(columns) + 1 values.
    """

    name: str
    kind: str
    columns: tuple[int, ...]

    @property
    def n_values(self) -> int | None:
        """Size of the attribute's domain (None for a numeric attribute)."""
        return {"numeric": None, "missing": 2, "categorical": len(self.columns) + 1}[self.kind]


def attribute_layout(data: PreparedDataset) -> tuple[Attribute, ...]:
    """The original attributes of a prepared table, in encoded-column order, from the catalogue's structure."""
    if data.is_image:
        raise UnsupportedError(f"{data.name} is an image dataset: it has pixels, not catalogued attributes.")
    info = data.info
    position = {name: index for index, name in enumerate(data.feature_names)}
    categorical_columns: set[int] = set()
    attributes: list[Attribute] = []
    for column, categories in info.categorical.items():
        try:
            block = tuple(position[f"{column}={category}"] for category in categories)
        except KeyError as exc:
            raise DataError(f"Encoded column {exc} of categorical {column!r} is missing from {data.name}.") from exc
        categorical_columns.update(block)
        attributes.append(Attribute(column, "categorical", block))
    for index, name in enumerate(data.feature_names):
        if index in categorical_columns:
            continue
        numeric_name = name.removesuffix("=missing")
        is_flag = name.endswith("=missing") and info.numeric.get(numeric_name, {}).get("nullable", False)
        attributes.append(Attribute(name, "missing" if is_flag else "numeric", (index,)))
    return tuple(sorted(attributes, key=lambda attribute: attribute.columns[0]))


def category_codes(x: np.ndarray, attribute: Attribute) -> np.ndarray:
    """(n,) int codes of a categorical or missing attribute: the one-hot position, len(columns) for "other"."""
    if attribute.kind == "missing":
        return x[:, attribute.columns[0]].astype(np.int64)
    block = x[:, list(attribute.columns)]  # (n, k)
    return np.where(block.max(axis=1) > 0, block.argmax(axis=1), len(attribute.columns)).astype(np.int64)


def one_hot(codes: np.ndarray, attribute: Attribute) -> np.ndarray:
    """Inverse of category_codes for a categorical attribute: (n, k) float32, all zeros for "other"."""
    return (codes[:, None] == np.arange(len(attribute.columns))[None, :]).astype(np.float32)


def compact_table(x: np.ndarray, layout: tuple[Attribute, ...]) -> np.ndarray:
    """(n, attributes) float64, one column per attribute: numeric values in [-1, 1], category codes 0..k."""
    columns = [x[:, attribute.columns[0]].astype(np.float64) if attribute.kind == "numeric"
               else category_codes(x, attribute).astype(np.float64) for attribute in layout]
    return np.stack(columns, axis=1)


def compact_bounds(layout: tuple[Attribute, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Public (lower, upper) of compact_table's columns: [-1, 1] numeric, [0, n_values - 1] coded."""
    lower = [-1.0 if attribute.kind == "numeric" else 0.0 for attribute in layout]
    upper = [1.0 if attribute.kind == "numeric" else float(attribute.n_values - 1) for attribute in layout]
    return np.asarray(lower), np.asarray(upper)


def max_row_norm(layout: tuple[Attribute, ...]) -> float:
    """The largest L2 norm any encoded row can have, from the structure alone (public).

    A numeric column is at most 1 in absolute value, a missing flag at most 1, and a one-hot block holds at
    most one 1: so ||x||^2 <= (#numeric + #flags + #categoricals), usually far below the column count.
    """
    return float(np.sqrt(len(layout)))
