"""The dataset catalogue: what each dataset is and how to prepare it.

Bundled datasets are declared in the repository's datasets/catalogue.yaml. Uploaded ones (engine/data/uploads/)
each have a folder `<uploads_dir>/<name>/` holding data.parquet and a catalogue.yaml in the same schema. The
uploads folder is always passed in (`uploads_dir`; None: bundled datasets only), never found through the
environment. Uploads are re-read when they change (an upload, a replace, a delete), so every process sees the
current set.
"""

from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from engine.errors import ConfigError, DataError

BUNDLED_DIR = Path(__file__).resolve().parents[2] / "datasets"  # the repository's datasets/ folder


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
    bounds_source: str = "public"  # "public" (domain knowledge), "dp" (some DP-estimated) or "data" (some from the rows)
    numeric_bounds_from: str | None = None
    image: dict[str, Any] | None = None
    origin: str = "bundled"  # "bundled" (datasets/catalogue.yaml) or "uploaded" (under an uploads folder)
    folder: str | None = None  # the folder `file` lives in; None: the bundled datasets folder
    data_derived_columns: tuple[str, ...] = ()  # uploads: columns whose bounds or categories were read from the rows
    fingerprint: str | None = None  # uploads: the prepared data's fingerprint when registered
    upload: dict[str, Any] | None = None  # uploads: filename, sha256, uploaded_at, warnings
    dp_estimated_columns: tuple[str, ...] = ()  # uploads: columns whose bounds or category list are a DP estimate
    # uploads: the DP release(s) that estimated those bounds, {epsilon, delta, mechanism, columns}; composed into
    # every run on the table (engine.services.preprocessing_releases). `earlier_preprocessing`: those of the
    # versions this upload replaced (the same name, maybe the same people): they compose too.
    preprocessing_privacy: dict[str, Any] | None = None
    earlier_preprocessing: tuple[dict[str, Any], ...] = ()

    @property
    def is_image(self) -> bool:
        return self.image is not None

    @property
    def path(self) -> Path | None:
        """The data file, or None for a dataset shipped inside a library (breast-cancer)."""
        return Path(self.folder or BUNDLED_DIR) / self.file if self.file else None

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
            "origin": self.origin,
        }


def parse_entry(name: str, values: dict[str, Any], folder: Path | None = None) -> DatasetInfo:
    """One catalogue entry as a DatasetInfo; `folder` marks an uploaded dataset living there."""
    values = dict(values)
    for key in ("identifier_columns", "data_derived_columns", "dp_estimated_columns", "earlier_preprocessing"):
        values[key] = tuple(values.get(key) or ())
    if folder is not None:
        values.update(origin="uploaded", folder=str(folder))
    return DatasetInfo(name=name, **values)


@functools.lru_cache(maxsize=1)
def _read_catalogue() -> dict[str, DatasetInfo]:
    path = BUNDLED_DIR / "catalogue.yaml"
    if not path.exists():
        raise DataError(f"Dataset catalogue not found at {path}: restore datasets/catalogue.yaml from the repository.")
    raw = yaml.safe_load(path.read_text())
    return {name: parse_entry(name, values) for name, values in raw.items()}


_USER_ENTRIES: dict[Path, tuple[tuple[int, int], DatasetInfo | None]] = {}  # catalogue.yaml -> (stat, entry)


def _read_user_entry(path: Path) -> DatasetInfo | None:
    stat = path.stat()
    key = (stat.st_mtime_ns, stat.st_size)
    cached = _USER_ENTRIES.get(path)
    if cached is not None and cached[0] == key:
        return cached[1]
    name = path.parent.name
    try:
        info = parse_entry(name, (yaml.safe_load(path.read_text(encoding="utf-8")) or {})[name], path.parent)
    except (yaml.YAMLError, KeyError, TypeError, OSError) as exc:
        warnings.warn(f"Skipping uploaded dataset at {path}: unreadable catalogue entry ({exc}).", stacklevel=2)
        info = None
    _USER_ENTRIES[path] = (key, info)
    return info


def _user_catalogue(uploads_dir: Path | None) -> dict[str, DatasetInfo]:
    if uploads_dir is None or not Path(uploads_dir).is_dir():
        return {}
    bundled = _read_catalogue()
    entries = {}
    for path in sorted(Path(uploads_dir).glob("*/catalogue.yaml")):
        if path.parent.name.startswith("."):  # an upload being written or replaced
            continue
        try:
            info = _read_user_entry(path)
        except OSError:  # removed while we looked
            continue
        if info is not None and info.name not in bundled:
            entries[info.name] = info
    return entries


def catalogue_signature(uploads_dir: Path | None = None) -> tuple:
    """Changes whenever an upload in `uploads_dir` is added, replaced or deleted (a cache key for dashboards)."""
    if uploads_dir is None:
        return (None,)
    root = Path(uploads_dir)
    signature = []
    for path in sorted(root.glob("*/catalogue.yaml")) if root.is_dir() else ():
        try:
            stat = path.stat()
            signature.append((str(path), stat.st_mtime_ns, stat.st_size))
        except OSError:
            continue
    return (str(root), *signature)


def bundled_dataset_names() -> list[str]:
    return list(_read_catalogue())


def dataset_names(uploads_dir: Path | None = None) -> list[str]:
    """Bundled datasets in catalogue order, then the uploads in `uploads_dir` (alphabetical)."""
    return [*_read_catalogue(), *_user_catalogue(uploads_dir)]


def get_dataset_info(name: str, uploads_dir: Path | None = None) -> DatasetInfo:
    """A bundled dataset's entry, or an upload's in `uploads_dir` (None: bundled datasets only)."""
    catalogue = _read_catalogue()
    if name in catalogue:
        return catalogue[name]
    uploads = _user_catalogue(uploads_dir)
    if name not in uploads:
        raise ConfigError(f"Unknown dataset {name!r}: choose one of {', '.join([*catalogue, *uploads])} "
                          "(see `frontier datasets`), or upload a CSV on the dashboard's Data page.")
    return uploads[name]
