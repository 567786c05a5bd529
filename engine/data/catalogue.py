"""The dataset catalogue (datasets/catalogue.yaml): what each bundled dataset is and how to prepare it."""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from engine.errors import ConfigError, DataError

DATASETS_DIR = Path(os.environ.get("FRONTIER_DATASETS", Path(__file__).resolve().parents[2] / "datasets"))


@dataclass(frozen=True)
class DatasetInfo:
    """One catalogue entry. `numeric` and `categorical` hold the public bounds and category lists."""

    name: str
    title: str
    description: str
    task: str  # "binary" or "multiclass"
    label: dict[str, Any]
    rows: int
    licence: str
    provenance: str
    split: dict[str, Any]
    sensitive_columns: Any
    file: str | None = None
    source: str | None = None
    identifier_columns: tuple[str, ...] = ()
    drop_columns: dict[str, str] = field(default_factory=dict)
    numeric: dict[str, dict[str, Any]] = field(default_factory=dict)
    categorical: dict[str, list[str]] = field(default_factory=dict)
    silo_column: str | None = None
    bounds_source: str = "public"  # "public" (domain knowledge) or "data" (computed from the rows)
    numeric_bounds_from: str | None = None
    image: dict[str, Any] | None = None

    @property
    def is_image(self) -> bool:
        return self.image is not None

    def summary(self) -> dict[str, Any]:
        """The card shown by `frontier datasets` and the dashboard."""
        sensitive = self.sensitive_columns
        return {
            "name": self.name,
            "title": self.title,
            "task": self.task,
            "label": self.label.get("column"),
            "rows": self.rows,
            "licence": self.licence,
            "split": self.split.get("description", ""),
            "sensitive_columns": ", ".join(sensitive) if isinstance(sensitive, list) else str(sensitive),
            "bounds": self.bounds_source,
            "description": self.description,
            "provenance": self.provenance,
        }


@functools.lru_cache(maxsize=1)
def _read_catalogue() -> dict[str, DatasetInfo]:
    path = DATASETS_DIR / "catalogue.yaml"
    if not path.exists():
        raise DataError(f"Dataset catalogue not found at {path}: set FRONTIER_DATASETS to the folder holding catalogue.yaml.")
    raw = yaml.safe_load(path.read_text())
    entries = {}
    for name, values in raw.items():
        values = dict(values)
        values["identifier_columns"] = tuple(values.get("identifier_columns", ()))
        entries[name] = DatasetInfo(name=name, **values)
    return entries


def dataset_names() -> list[str]:
    return list(_read_catalogue())


def get_dataset_info(name: str) -> DatasetInfo:
    catalogue = _read_catalogue()
    if name not in catalogue:
        raise ConfigError(f"Unknown dataset {name!r}: choose one of {', '.join(catalogue)} (see `frontier datasets`).")
    return catalogue[name]
