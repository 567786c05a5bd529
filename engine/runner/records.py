"""What a run record holds, and the store columns that follow from the declarations.

A record is the resolved configuration (shared settings and the technique's params, flattened), the
result, the dataset's fingerprint, versions and device. Its columns: the store's core columns, one per
RunConfig field and technique setting, and one per measurement a technique declares; anything else a
technique reports stays in `extra`.
"""

from __future__ import annotations

import dataclasses
import platform
import traceback
import typing
from datetime import datetime, timezone

import numpy as np

from engine import ENGINE_VERSION
from engine.config import RunConfig
from engine.data import PreparedDataset
from engine.errors import EngineError
from engine.runner.store import CORE_COLUMNS, Column, ResultStore
from engine.techniques.base import RunResult
from engine.techniques.class_weights import record_fields
from engine.techniques.registry import all_measurements, get_technique_class, technique_settings

SQL_TYPES = {int: "INTEGER", float: "REAL", str: "TEXT", bool: "INTEGER"}


def record_columns() -> list[Column]:
    """Columns beyond the core: RunConfig's fields, every technique's run fields and measurements."""
    core = {column.name for column in CORE_COLUMNS}
    columns: dict[str, Column] = {}
    hints = typing.get_type_hints(RunConfig)
    for field in dataclasses.fields(RunConfig):
        if field.name != "params":
            columns[field.name] = Column(field.name, SQL_TYPES[_scalar(hints[field.name])])
    for declared in technique_settings().values():
        name = declared.axis or declared.name  # an axis setting (only_clients) is recorded per run (client)
        columns.setdefault(name, Column(name, "TEXT", json=True) if declared.many and not declared.axis
                           else Column(name, SQL_TYPES[declared.kind]))
    for measurement in all_measurements().values():
        columns.setdefault(measurement.name, Column(measurement.name, SQL_TYPES[measurement.kind]))
    return [column for name, column in columns.items() if name not in core]


def _scalar(hint) -> type:
    arguments = [argument for argument in typing.get_args(hint) if argument is not type(None)]
    return arguments[0] if arguments else hint


def versions() -> dict[str, str]:
    import numpy
    import opacus
    import sklearn
    import torch

    return {"engine": ENGINE_VERSION, "python": platform.python_version(), "torch": torch.__version__,
            "opacus": opacus.__version__, "numpy": numpy.__version__, "scikit-learn": sklearn.__version__,
            "platform": platform.platform()}


def trivial_rates(data: PreparedDataset) -> dict[str, float | None]:
    """What always predicting the training rows' commonest class scores on the test and validation rows (its
    balanced accuracy is 1 / classes and its ROC AUC 0.5 by construction): the floor every model must clear."""
    commonest = int(np.bincount(data.y_train, minlength=data.n_classes).argmax())
    rates = {"trivial_accuracy": float(np.mean(data.y_test == commonest))}
    rates["trivial_val_accuracy"] = (float(np.mean(data.y_val == commonest))
                                     if data.y_val is not None and len(data.y_val) else None)
    return rates


def make_record(run_id: str, config: RunConfig, data: PreparedDataset, outcome: RunResult | BaseException,
                device: str, columns: set[str]) -> dict:
    """The record of one finished run; `columns` are the store's, so measurements with a column get it."""
    record = {
        "run_id": run_id, **config.to_dict(), "point_id": config.point_key(data.fingerprint, ENGINE_VERSION),
        "n_train": data.n_train, "n_classes": data.n_classes, "dataset_fingerprint": data.fingerprint,
        "trust_model": get_technique_class(config.technique).trust_model_for(config),
        "data_derived_bounds": list(data.data_derived_bounds), "versions": versions(), **trivial_rates(data),
        "created_at": datetime.now(timezone.utc).isoformat(timespec="milliseconds"), "config": config.to_dict(),
        "device": device,
    }
    if isinstance(outcome, BaseException):
        detail = str(outcome) if isinstance(outcome, EngineError) else f"{type(outcome).__name__}: {outcome}"
        record.update(status="failed", error=detail,
                      extra={"traceback": "".join(traceback.format_exception(outcome))[-4000:]})
    else:
        record.update(status="ok", error=None, accuracy=outcome.accuracy, balanced_accuracy=outcome.balanced_accuracy,
                      roc_auc=outcome.roc_auc, val_accuracy=outcome.val_accuracy,
                      val_balanced_accuracy=outcome.val_balanced_accuracy, val_roc_auc=outcome.val_roc_auc,
                      decision_threshold=outcome.decision_threshold, train_seconds=outcome.train_seconds,
                      peak_memory_mb=outcome.peak_memory_mb, device=outcome.device, epsilon=outcome.epsilon,
                      noise_multiplier=outcome.noise_multiplier, sample_rate=outcome.sample_rate,
                      steps=outcome.steps)
        promoted = {key: value for key, value in outcome.extra.items() if key in columns and key not in record}
        record.update(promoted, extra={key: value for key, value in outcome.extra.items() if key not in promoted})
    record["extra"] = {**record["extra"], **record_fields(config)}  # a weighted loss's class weights (public)
    return record


def open_store(path, *, create: bool = True) -> ResultStore:
    """The result store at `path` with every declared column (what a writer opens)."""
    return ResultStore(path, columns=record_columns(), create=create)
