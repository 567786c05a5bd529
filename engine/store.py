"""The result store: embedded SQLite, one row per run, written (and committed) as soon as a run ends.

WAL journaling plus a commit per run means a killed sweep keeps every finished run and the file stays
consistent. Later techniques add columns by appending to COLUMNS: opening an older store adds them.
"""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path
from typing import Any, Iterable

import pandas as pd

from engine.errors import ConfigError

DEFAULT_STORE = Path(".frontier") / "results.sqlite"

# (name, SQL type). JSON columns are decoded on read.
COLUMNS: list[tuple[str, str]] = [
    ("run_id", "TEXT PRIMARY KEY"),
    ("status", "TEXT NOT NULL"),  # "ok" or "failed"
    ("error", "TEXT"),
    ("dataset", "TEXT NOT NULL"),
    ("technique", "TEXT NOT NULL"),
    ("model", "TEXT"),
    ("seed", "INTEGER"),
    ("target_epsilon", "REAL"),
    ("epsilon", "REAL"),  # what the accountant reports for the training actually done
    ("delta", "REAL"),
    ("accountant", "TEXT"),
    ("noise_multiplier", "REAL"),
    ("max_grad_norm", "REAL"),
    ("sample_rate", "REAL"),
    ("batch_size", "INTEGER"),
    ("epochs", "INTEGER"),
    ("steps", "INTEGER"),
    ("learning_rate", "REAL"),
    ("accuracy", "REAL"),
    ("balanced_accuracy", "REAL"),
    ("roc_auc", "REAL"),
    ("train_seconds", "REAL"),
    ("peak_memory_mb", "REAL"),
    ("device", "TEXT"),
    ("n_train", "INTEGER"),
    ("dataset_fingerprint", "TEXT"),
    ("privacy_model", "TEXT"),  # "none" or "global" (central DP); later: "local"
    ("data_derived_bounds", "TEXT"),  # JSON list of columns whose preprocessing bounds came from the data
    ("versions", "TEXT"),  # JSON
    ("created_at", "TEXT"),
    ("config", "TEXT"),  # JSON: the resolved RunConfig
    ("train_technique", "TEXT"),  # he-inference: how the served model was trained (baseline or dp-sgd)
    # Federated runs (engine/federated): their settings, the unit of privacy and the bytes on the wire. Here
    # rather than registered later, since every record carries the RunConfig fields (None outside federated runs).
    ("n_clients", "INTEGER"),
    ("partition", "TEXT"),
    ("alpha", "REAL"),
    ("partition_column", "TEXT"),
    ("rounds", "INTEGER"),
    ("local_epochs", "INTEGER"),
    ("clients_per_round", "INTEGER"),
    ("secure_aggregation", "INTEGER"),  # 0/1
    ("dropout", "REAL"),
    ("mu", "REAL"),
    ("compression", "TEXT"),
    ("client", "TEXT"),  # single-silo: the client trained alone
    ("privacy_unit", "TEXT"),  # federated: "record", "client" or "none"
    ("comm_bytes", "INTEGER"),  # federated: total bytes up and down over the run
    ("extra", "TEXT"),  # JSON: technique-specific measurements
]
JSON_COLUMNS = {"versions", "config", "extra", "data_derived_bounds"}
COLUMN_NAMES = [name for name, _ in COLUMNS]


def register_columns(columns: list[tuple[str, str]]) -> None:
    """Technique modules declare the record fields they add (e.g. ("comm_bytes", "INTEGER")).

    A RunResult.extra key with a registered column's name is stored in that column; stores opened later
    gain the column. Registering the same name twice with the same type is harmless.
    """
    known = dict(COLUMNS)
    for name, kind in columns:
        if name in known:
            if known[name] != kind:
                raise ValueError(f"Column {name!r} is already registered as {known[name]}, not {kind}.")
            continue
        COLUMNS.append((name, kind))
        COLUMN_NAMES.append(name)
        known[name] = kind


def resolve_store_path(path: str | os.PathLike | None = None) -> Path:
    """--store, else $FRONTIER_STORE, else ./.frontier/results.sqlite."""
    return Path(path or os.environ.get("FRONTIER_STORE") or DEFAULT_STORE)


class ResultStore:
    """Runs and calibrated noise multipliers. Use as a context manager or call close()."""

    def __init__(self, path: str | os.PathLike | None = None, *, create: bool = True):
        self.path = resolve_store_path(path)
        if not create and not self.path.exists():
            raise ConfigError(f"No result store at {self.path}: run `frontier sweep` first or pass --store PATH.")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(self.path, timeout=30)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._create()
        except sqlite3.DatabaseError as exc:
            raise ConfigError(f"{self.path} is not a usable result store ({exc}): pass another --store path.") from exc

    def _create(self) -> None:
        columns = ", ".join(f'"{name}" {kind}' for name, kind in COLUMNS)
        self._db.execute(f"CREATE TABLE IF NOT EXISTS runs ({columns})")
        present = {row[1] for row in self._db.execute("PRAGMA table_info(runs)")}
        for name, kind in COLUMNS:
            if name not in present:  # a store written by an older engine: add what is new
                self._db.execute(f'ALTER TABLE runs ADD COLUMN "{name}" {kind.replace("PRIMARY KEY", "")}')
        self._db.execute("CREATE TABLE IF NOT EXISTS noise_calibrations (key TEXT PRIMARY KEY, noise_multiplier REAL NOT NULL)")
        self._db.commit()

    # --- runs -------------------------------------------------------------------------------------------
    def write(self, record: dict[str, Any]) -> None:
        """Insert or replace one run record and commit at once."""
        unknown = set(record) - set(COLUMN_NAMES)
        if unknown:
            raise ValueError(f"Record has fields the store does not know: {sorted(unknown)}")
        values = [json.dumps(record.get(name)) if name in JSON_COLUMNS else record.get(name) for name in COLUMN_NAMES]
        placeholders = ", ".join("?" for _ in COLUMN_NAMES)
        quoted = ", ".join(f'"{name}"' for name in COLUMN_NAMES)
        self._db.execute(f"INSERT OR REPLACE INTO runs ({quoted}) VALUES ({placeholders})", values)
        self._db.commit()

    def completed_ids(self, run_ids: Iterable[str]) -> set[str]:
        """Which of these runs finished successfully (failed runs are tried again)."""
        wanted = list(run_ids)
        done: set[str] = set()
        for start in range(0, len(wanted), 500):
            chunk = wanted[start:start + 500]
            marks = ", ".join("?" for _ in chunk)
            done.update(row[0] for row in self._db.execute(
                f"SELECT run_id FROM runs WHERE status = 'ok' AND run_id IN ({marks})", chunk))
        return done

    def records(self, *, dataset: str | None = None, technique: str | None = None, status: str | None = None,
                run_ids: Iterable[str] | None = None) -> list[dict[str, Any]]:
        clauses, params = [], []
        for column, value in (("dataset", dataset), ("technique", technique), ("status", status)):
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)
        if run_ids is not None:
            ids = list(run_ids)
            clauses.append(f"run_id IN ({', '.join('?' for _ in ids) or 'NULL'})")
            params.extend(ids)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        cursor = self._db.execute(f"SELECT * FROM runs {where} ORDER BY created_at, run_id", params)
        names = [description[0] for description in cursor.description]
        return [self._decode(dict(zip(names, row))) for row in cursor]

    def get(self, run_id: str) -> dict[str, Any] | None:
        found = self.records(run_ids=[run_id])
        return found[0] if found else None

    def dataframe(self, **filters) -> pd.DataFrame:
        return pd.DataFrame(self.records(**filters), columns=COLUMN_NAMES)

    @staticmethod
    def _decode(record: dict[str, Any]) -> dict[str, Any]:
        for name in JSON_COLUMNS & set(record):
            if record[name] is not None:
                record[name] = json.loads(record[name])
        return record

    # --- noise calibration cache (engine.techniques.base.NoiseCache) -------------------------------------
    def get_noise(self, key: str) -> float | None:
        row = self._db.execute("SELECT noise_multiplier FROM noise_calibrations WHERE key = ?", (key,)).fetchone()
        return None if row is None else float(row[0])

    def put_noise(self, key: str, noise_multiplier: float) -> None:
        self._db.execute("INSERT OR REPLACE INTO noise_calibrations VALUES (?, ?)", (key, noise_multiplier))
        self._db.commit()

    # --- upkeep -----------------------------------------------------------------------------------------
    def integrity_check(self) -> str:
        return self._db.execute("PRAGMA integrity_check").fetchone()[0]

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> "ResultStore":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def store_signature(path: str | os.PathLike | None = None) -> tuple:
    """Changes whenever a run is written (WAL mode writes the -wal file first): a cheap cache key for readers."""
    base = resolve_store_path(path)
    signature = []
    for part in (base, base.with_name(base.name + "-wal")):
        try:
            stat = part.stat()
            signature.append((stat.st_mtime_ns, stat.st_size))
        except OSError:
            signature.append(None)
    return tuple(signature)


def read_runs(path: str | os.PathLike | None = None) -> pd.DataFrame:
    """All runs as a DataFrame with numeric columns as floats; empty when there is no store yet (never creates one)."""
    import engine.techniques  # noqa: F401 - every technique registers its record columns on import
    from engine.frontier import numeric_runs

    resolved = resolve_store_path(path)
    if not resolved.exists():
        return pd.DataFrame(columns=COLUMN_NAMES)
    with ResultStore(resolved, create=False) as store:
        return numeric_runs(store.dataframe())
