"""Load a catalogued dataset and prepare it for training without spending privacy.

Every transformation uses only the catalogue's public bounds and category lists, never statistics of the
private rows: clipping to declared bounds, scaling to [-1, 1], one-hot over declared categories. The one
exception (breast-cancer, whose bounds exist only in the data) is recorded in `data_derived_bounds`, as are the
columns of an uploaded table whose bounds or categories were read from its rows (DatasetInfo.data_derived_columns).
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from engine.data.catalogue import DatasetInfo, get_dataset_info
from engine.errors import DataError

SUBSAMPLE_SEED = 0  # the subset for train_subsample is the same for every run: only its size varies
VALIDATION_SEED = 1  # the validation rows are the same for every run
VALIDATION_FRACTION = 0.2  # of the training rows, held out of training to choose thresholds and configurations
MAX_VALIDATION_ROWS = 10_000


@dataclass(frozen=True, eq=False)
class PreparedDataset:
    """Arrays ready for a model. Tables: (n, d) float32. Images: (n, 1, 28, 28) float32. Labels: (n,) int64."""

    name: str
    info: DatasetInfo  # the catalogue entry it was prepared from: techniques read bounds and silos here
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    feature_names: tuple[str, ...]
    n_classes: int
    fingerprint: str
    is_image: bool = False
    data_derived_bounds: tuple[str, ...] = ()  # columns whose bounds were computed from the rows
    x_val: np.ndarray | None = None  # validation rows carved from the training rows (with_validation)
    y_val: np.ndarray | None = None

    @property
    def n_train(self) -> int:
        return int(self.y_train.shape[0])

    @property
    def n_features(self) -> int:
        return int(np.prod(self.x_train.shape[1:]))

    def subsample(self, size: int | None) -> "PreparedDataset":
        """A fixed subset of the training rows (same for every seed); the test set is unchanged."""
        if size is None or size >= self.n_train:
            return self
        rows = np.sort(np.random.default_rng(SUBSAMPLE_SEED).permutation(self.n_train)[:size])
        return replace(self, x_train=self.x_train[rows], y_train=self.y_train[rows],
                       fingerprint=_fingerprint(self.x_train[rows], self.y_train[rows], self.x_test, self.y_test,
                                                self.feature_names))

    def with_validation(self, fraction: float = VALIDATION_FRACTION) -> "PreparedDataset":
        """Hold a fixed, stratified share of the training rows out as validation rows (the same for every seed):
        configurations and decision thresholds are chosen on them, so the test rows only report the choice."""
        if self.x_val is not None:
            return self
        rng = np.random.default_rng(VALIDATION_SEED)
        held = []
        for label in np.unique(self.y_train):  # stratified: every class keeps its share in both parts
            rows = rng.permutation(np.flatnonzero(self.y_train == label))
            held.append(rows[: int(round(len(rows) * fraction))])
        validation = np.sort(np.concatenate(held))
        if len(validation) > MAX_VALIDATION_ROWS:
            validation = np.sort(rng.choice(validation, MAX_VALIDATION_ROWS, replace=False))
        keep = np.setdiff1d(np.arange(self.n_train), validation)
        x_train, y_train = self.x_train[keep], self.y_train[keep]
        x_val, y_val = self.x_train[validation], self.y_train[validation]
        return replace(self, x_train=x_train, y_train=y_train, x_val=x_val, y_val=y_val,
                       fingerprint=_fingerprint(x_train, y_train, self.x_test, self.y_test, self.feature_names,
                                                x_val, y_val))


def _fingerprint(x_train, y_train, x_test, y_test, feature_names, *validation) -> str:
    digest = hashlib.sha256()
    for array in (x_train, y_train, x_test, y_test, *validation):
        contiguous = np.ascontiguousarray(array)
        digest.update(str((contiguous.shape, contiguous.dtype.str)).encode())
        digest.update(contiguous.tobytes())
    digest.update("\x1f".join(feature_names).encode())
    return digest.hexdigest()[:16]


def _transform(values: np.ndarray, name: str | None) -> np.ndarray:
    if name is None:
        return values
    if name == "log1p":
        return np.log1p(values)
    if name == "signed_log1p":
        return np.sign(values) * np.log1p(np.abs(values))
    raise DataError(f"Unknown transform {name!r} in the catalogue: use log1p or signed_log1p.")


def encode_table(frame: pd.DataFrame, numeric: dict, categorical: dict) -> tuple[np.ndarray, list[str]]:
    """Encode features with declared bounds and categories only. Returns (n, d) float32 and column names.

    Numeric: clip raw values to [low, high], transform, scale to [-1, 1]; nullable columns get a 0/1
    missing indicator and the missing value is imputed at the lower bound. Categorical: one-hot over the
    declared categories; an undeclared or missing value encodes as all zeros.
    """
    blocks: list[np.ndarray] = []
    names: list[str] = []
    for column, spec in numeric.items():
        if column not in frame:
            raise DataError(f"Numeric column {column!r} declared in the catalogue is not in the data.")
        raw = pd.to_numeric(frame[column], errors="coerce").astype(float).to_numpy()
        for missing_value in spec.get("missing_values", []):
            raw = np.where(raw == missing_value, np.nan, raw)
        low, high = (float(b) for b in spec["bounds"])
        missing = np.isnan(raw)
        clipped = np.clip(np.where(missing, low, raw), low, high)
        t_low, t_high, t_values = (_transform(np.asarray(v, dtype=float), spec.get("transform"))
                                   for v in (low, high, clipped))
        span = float(t_high - t_low) or 1.0
        blocks.append((2.0 * (t_values - t_low) / span - 1.0)[:, None])  # centred: helps (DP-)SGD
        names.append(column)
        if spec.get("nullable"):
            blocks.append(missing.astype(float)[:, None])
            names.append(f"{column}=missing")
        elif missing.any():
            raise DataError(f"Column {column!r} has missing values but is not declared nullable in the catalogue.")
    for column, categories in categorical.items():
        if column not in frame:
            raise DataError(f"Categorical column {column!r} declared in the catalogue is not in the data.")
        values = frame[column].astype("string").fillna("\x00missing").to_numpy(dtype=object)
        blocks.append(np.stack([(values == str(category)) for category in categories], axis=1).astype(float))
        names.extend(f"{column}={category}" for category in categories)
    return np.concatenate(blocks, axis=1).astype(np.float32), names


def _labels(frame: pd.DataFrame, label: dict) -> np.ndarray:
    column = label["column"]
    if column not in frame:
        raise DataError(f"Label column {column!r} is not in the data: check the catalogue's label entry.")
    values = frame[column]
    if "positive_if" in label:  # e.g. heart: "> 0" (num 1-4 are all disease)
        operator, threshold = label["positive_if"].split()
        if operator != ">":
            raise DataError(f"Only '> value' label rules are supported, got {label['positive_if']!r}.")
        return (pd.to_numeric(values) > float(threshold)).to_numpy().astype(np.int64)
    return (values.astype(str) == str(label["positive"])).to_numpy().astype(np.int64)


def split_rows(frame: pd.DataFrame, split: dict) -> tuple[np.ndarray, np.ndarray]:
    """(train rows, test rows) of `frame` by the catalogue's split: a marker column, or a seeded permutation."""
    if "column" in split:
        marks = frame[split["column"]].astype(str).to_numpy()
        return np.flatnonzero(marks == "train"), np.flatnonzero(marks == "test")
    order = np.random.default_rng(int(split["seed"])).permutation(len(frame))
    n_test = int(round(len(frame) * float(split["test_fraction"])))
    return np.sort(order[n_test:]), np.sort(order[:n_test])


def _read_frame(info: DatasetInfo) -> pd.DataFrame:
    if info.source == "sklearn.load_breast_cancer":
        from sklearn.datasets import load_breast_cancer

        bunch = load_breast_cancer(as_frame=True)
        return bunch.frame
    return pd.read_parquet(_data_path(info))


def _data_path(info: DatasetInfo):
    path = info.path
    if not path.exists():
        fix = ("upload the CSV again on the Data page" if info.origin == "uploaded"
               else f"restore it from the repository (datasets/{info.file})")
        raise DataError(f"Data file {path} of dataset {info.name!r} is missing: {fix}.")
    return path


def prepare_table(info: DatasetInfo) -> PreparedDataset:
    """Encode a tabular dataset with its declared bounds and categories; split it with its fixed split."""
    frame = _read_frame(info)
    frame = frame.drop(columns=[c for c in (*info.identifier_columns, *info.drop_columns) if c in frame])
    numeric, data_derived = dict(info.numeric), tuple(info.data_derived_columns)
    if info.numeric_bounds_from == "sklearn_descr":
        # No public domain bounds exist; the dataset's documentation prints each column's min/max over
        # all rows. We use exactly those (computed here) and say so in every run record.
        feature_columns = [c for c in frame.columns if c != info.label["column"]]
        numeric = {c: {"bounds": [float(frame[c].min()), float(frame[c].max())]} for c in feature_columns}
        data_derived = tuple(feature_columns)
    x_all, names = encode_table(frame, numeric, info.categorical)
    y_all = _labels(frame, info.label)
    train_rows, test_rows = split_rows(frame, info.split)
    x_train, y_train, x_test, y_test = x_all[train_rows], y_all[train_rows], x_all[test_rows], y_all[test_rows]
    return PreparedDataset(
        name=info.name, info=info, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test,
        feature_names=tuple(names), n_classes=2,
        fingerprint=_fingerprint(x_train, y_train, x_test, y_test, names),
        data_derived_bounds=data_derived,
    )


def _prepare_images(info: DatasetInfo) -> PreparedDataset:
    arrays = np.load(_data_path(info))
    low, high = info.image["pixel_bounds"]

    def scale(pixels: np.ndarray) -> np.ndarray:
        # Fixed public pixel range -> [-1, 1]; no dataset mean/std (those are statistics of private rows).
        return ((pixels.astype(np.float32) - low) / (high - low) * 2.0 - 1.0)[:, None, :, :]  # (n, 1, 28, 28)

    x_train, x_test = scale(arrays["x_train"]), scale(arrays["x_test"])
    y_train, y_test = arrays["y_train"].astype(np.int64), arrays["y_test"].astype(np.int64)
    names = tuple(f"pixel_{i}" for i in range(int(np.prod(x_train.shape[1:]))))
    return PreparedDataset(
        name=info.name, info=info, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test,
        feature_names=names, n_classes=10, is_image=True,
        fingerprint=_fingerprint(x_train, y_train, x_test, y_test, names),
    )


_CACHE: OrderedDict[tuple, PreparedDataset] = OrderedDict()  # the 4 most recently used datasets
_CACHE_LOCK = threading.Lock()


def _version(info: DatasetInfo) -> tuple:
    """Bundled files never change under a running process; an upload can be replaced: key it by its files."""
    if info.origin != "uploaded":
        return ()
    try:
        return tuple((stat.st_mtime_ns, stat.st_size) for stat in (info.path.stat(), (info.path.parent / "catalogue.yaml").stat()))
    except OSError:
        return ("missing",)


def load_dataset(name: str, uploads_dir: Path | None = None) -> PreparedDataset:
    """Prepared arrays of a bundled dataset or of an upload in `uploads_dir` (None: bundled only).

    Cached per process, keyed by the upload's folder and files: a replaced upload is re-read.
    """
    info = get_dataset_info(name, uploads_dir)
    key = (name, info.folder, _version(info))
    with _CACHE_LOCK:
        if key in _CACHE:
            _CACHE.move_to_end(key)
            return _CACHE[key]
    data = _prepare_images(info) if info.is_image else prepare_table(info)
    with _CACHE_LOCK:
        _CACHE[key] = data
        while len(_CACHE) > 4:
            _CACHE.popitem(last=False)
    return data


def clear_dataset_cache() -> None:
    with _CACHE_LOCK:
        _CACHE.clear()
