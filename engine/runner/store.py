"""The result store: embedded SQLite, one row per run, written (and committed) as soon as a run ends.

WAL journaling plus a commit per run means a killed sweep keeps every finished run and the file stays
consistent. The store knows its own core columns; the columns that follow from the declarations (shared
and technique settings, technique measurements) are passed in by whoever writes (engine.runner.records),
added when missing, and described in the `schema_columns` table so that any reader decodes them without
knowing any technique. `PRAGMA user_version` records the schema version: an older engine refuses a newer
store, and opening an older store migrates it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import pandas as pd

from engine.errors import StoreError

SCHEMA_VERSION = 4  # 1: engine 0.1 (privacy_model, no point_id); 3: audits tables; 4: random searches, val_ columns
# Empirical privacy audits (engine.audit): one row per audit, and the parts of an unfinished one (its plan and
# each finished model's scores, dropped once the audit is recorded).
AUDIT_TABLES = (
    "CREATE TABLE IF NOT EXISTS audits (audit_id TEXT PRIMARY KEY, run_id TEXT NOT NULL, point_id TEXT, "
    "dataset TEXT, technique TEXT, attack TEXT NOT NULL, settings TEXT NOT NULL, status TEXT NOT NULL, error TEXT, "
    "epsilon REAL, epsilon_lower_bound REAL, breach INTEGER, figures TEXT, versions TEXT, created_at TEXT)",
    "CREATE INDEX IF NOT EXISTS audits_by_run ON audits (run_id)",
    "CREATE TABLE IF NOT EXISTS audit_parts (audit_id TEXT NOT NULL, part INTEGER NOT NULL, payload BLOB NOT NULL, "
    "PRIMARY KEY (audit_id, part))",
)
AUDIT_JSON = ("settings", "figures", "versions")
MIN_FREE_BYTES = 5_000_000  # a sweep refuses to start with less room than this beside the store
WRITE_CHECK_ID = "__write_check__"  # the row a write check inserts and rolls back


def store_fault(path: Path, exc: BaseException, doing: str = "write to") -> str:
    """One line saying what went wrong with the store at `path`, and how to fix it."""
    text = str(exc)
    lowered = text.lower()
    if "readonly" in lowered or "read-only" in lowered:
        return (f"The result store {path} is read-only ({text}): make the file and its folder writable (SQLite "
                f"writes {path.name}-wal and {path.name}-shm beside it), or pass another store path.")
    if "full" in lowered or "no space" in lowered:
        return f"The disk holding the result store {path} is full ({text}): free some space, then rerun the sweep."
    if "unable to open" in lowered or "permission" in lowered:
        return (f"Cannot {doing} the result store {path} ({text}): its folder must be writable (SQLite writes "
                f"{path.name}-wal and {path.name}-shm beside it), or pass another store path.")
    if "malformed" in lowered or "not a database" in lowered or "corrupt" in lowered:
        return f"{path} is damaged or not a result store ({text}): pass another store path."
    return f"Cannot {doing} the result store {path} ({text}): check the file, or pass another store path."


def unsaved_paths(path: Path) -> tuple[Path, Path]:
    """Where runs that could not be written to the store at `path` are kept: beside it, else the temp folder."""
    digest = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]
    return path.with_name(path.name + ".unsaved.jsonl"), Path(tempfile.gettempdir()) / f"frontier-unsaved-{digest}.jsonl"


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else str(value)  # numpy scalars, else their text


@dataclass(frozen=True)
class Column:
    name: str
    sql_type: str  # TEXT, REAL or INTEGER
    json: bool = False  # stored as JSON text, decoded on read


CORE_COLUMNS: tuple[Column, ...] = (
    Column("run_id", "TEXT PRIMARY KEY"),
    Column("point_id", "TEXT"),  # the configuration without its seed: runs with one point_id are one frontier point
    Column("status", "TEXT NOT NULL"),  # "ok" or "failed"
    Column("error", "TEXT"),
    Column("dataset", "TEXT NOT NULL"),
    Column("technique", "TEXT NOT NULL"),
    Column("epsilon", "REAL"),  # what the accountant reports for the training actually done
    Column("noise_multiplier", "REAL"),
    Column("sample_rate", "REAL"),
    Column("steps", "INTEGER"),
    Column("accuracy", "REAL"),
    Column("balanced_accuracy", "REAL"),
    Column("roc_auc", "REAL"),
    Column("val_accuracy", "REAL"),  # the metrics on the validation rows: what configurations are chosen on
    Column("val_balanced_accuracy", "REAL"),
    Column("val_roc_auc", "REAL"),
    Column("decision_threshold", "REAL"),  # positive-class threshold chosen on the validation rows
    Column("trivial_accuracy", "REAL"),  # always predicting the training rows' commonest class, on the test rows
    Column("trivial_val_accuracy", "REAL"),  # the same on the validation rows
    Column("train_seconds", "REAL"),
    Column("peak_memory_mb", "REAL"),
    Column("device", "TEXT"),
    Column("n_train", "INTEGER"),
    Column("n_classes", "INTEGER"),
    Column("dataset_fingerprint", "TEXT"),
    Column("trust_model", "TEXT"),  # "none", "central" or "local" (engine.techniques.base.TRUST_MODELS)
    Column("data_derived_bounds", "TEXT", json=True),  # columns whose preprocessing bounds came from the data
    Column("versions", "TEXT", json=True),
    Column("created_at", "TEXT"),
    Column("config", "TEXT", json=True),  # the resolved RunConfig
    Column("extra", "TEXT", json=True),  # technique-specific measurements without a column of their own
)


class ResultStore:
    """Runs and calibrated noise multipliers. Use as a context manager or call close()."""

    def __init__(self, path: str | os.PathLike, *, columns: Sequence[Column] = (), create: bool = True):
        self.path = Path(path)
        if self.path.is_dir():
            raise StoreError(f"{self.path} is a folder, not a result store file: pass a file path such as "
                             f"{self.path / 'results.sqlite'}.")
        if not create and not self.path.exists():
            raise StoreError(f"No result store at {self.path}: run `frontier sweep` first or pass another store path.")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, timeout=30)
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"Cannot open the result store {self.path} ({exc}): pass a writable path.") from exc
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._prepare([*CORE_COLUMNS, *columns])
        except sqlite3.DatabaseError as exc:
            self._db.close()
            damaged = not isinstance(exc, sqlite3.OperationalError) or "malformed" in str(exc)
            raise StoreError(f"{self.path} is not a usable result store ({exc}): pass another store path." if damaged
                             else store_fault(self.path, exc, "open")) from exc

    # --- schema -------------------------------------------------------------------------------------------
    def _prepare(self, columns: Sequence[Column]) -> None:
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise StoreError(f"{self.path} was written by a newer Privacy Frontier (store schema {version}; this engine "
                             f"reads up to {SCHEMA_VERSION}): upgrade the engine, or use another store.")
        exists = self._db.execute("SELECT 1 FROM sqlite_master WHERE name = 'runs'").fetchone() is not None
        present = {row[1] for row in self._db.execute("PRAGMA table_info(runs)")} if exists else set()
        wanted = {column.name: column for column in columns}
        missing = [column for name, column in wanted.items() if name not in present]
        needs_migration = exists and version < SCHEMA_VERSION
        if not (missing or needs_migration or not exists or version != SCHEMA_VERSION):
            self._json = self._json_columns()
            return
        try:
            with self._db:  # one transaction: a failed migration leaves the file as it was
                if not exists:
                    body = ", ".join(f'"{c.name}" {c.sql_type}' for c in wanted.values())
                    self._db.execute(f"CREATE TABLE runs ({body})")
                else:
                    if needs_migration:
                        from engine.runner.migrations import migrate

                        migrate(self._db, version)
                        present = {row[1] for row in self._db.execute("PRAGMA table_info(runs)")}
                    for column in wanted.values():
                        if column.name not in present:
                            kind = column.sql_type.replace("PRIMARY KEY", "").replace("NOT NULL", "")
                            self._db.execute(f'ALTER TABLE runs ADD COLUMN "{column.name}" {kind}')
                self._db.execute("CREATE TABLE IF NOT EXISTS noise_calibrations "
                                 "(key TEXT PRIMARY KEY, noise_multiplier REAL NOT NULL)")
                self._db.execute("CREATE TABLE IF NOT EXISTS schema_columns (name TEXT PRIMARY KEY, json INTEGER)")
                self._db.execute("CREATE TABLE IF NOT EXISTS searches (search_id TEXT PRIMARY KEY, mean_trials REAL, "
                                 "trials TEXT NOT NULL, created_at TEXT)")
                for statement in AUDIT_TABLES:  # schema 3 (migrations.py: nothing in `runs` changes)
                    self._db.execute(statement)
                self._db.executemany("INSERT OR REPLACE INTO schema_columns VALUES (?, ?)",
                                     [(c.name, int(c.json)) for c in wanted.values()])
                self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        except sqlite3.OperationalError as exc:
            if "readonly" in str(exc) or "read-only" in str(exc):
                raise StoreError(f"{self.path} is read-only and needs its schema updated: open it once with write "
                                 "access, or copy it somewhere writable.") from exc
            raise
        self._json = self._json_columns()

    def _json_columns(self) -> set[str]:
        try:
            return {name for name, is_json in self._db.execute("SELECT name, json FROM schema_columns") if is_json}
        except sqlite3.OperationalError:
            return {column.name for column in CORE_COLUMNS if column.json}

    def column_names(self) -> list[str]:
        return [row[1] for row in self._db.execute("PRAGMA table_info(runs)")]

    # --- runs -------------------------------------------------------------------------------------------
    def write(self, record: dict[str, Any]) -> None:
        """Insert or replace one run record and commit at once."""
        names = self.column_names()
        unknown = set(record) - set(names)
        if unknown:
            raise ValueError(f"Record has fields the store does not know: {sorted(unknown)}")
        values = [json.dumps(record.get(name)) if name in self._json else record.get(name) for name in names]
        quoted = ", ".join(f'"{name}"' for name in names)
        try:
            with self._db:
                self._db.execute(f"INSERT OR REPLACE INTO runs ({quoted}) VALUES ({', '.join('?' for _ in names)})",
                                 values)
        except sqlite3.IntegrityError as exc:
            raise StoreError(f"Could not write run {record.get('run_id')} to {self.path} ({exc}): the store expects "
                             "fields this engine does not fill (written by a newer or another engine?): upgrade the "
                             "engine, or use another store.") from exc
        except sqlite3.Error as exc:
            raise StoreError(store_fault(self.path, exc)) from exc

    def check_writable(self) -> None:
        """Before anything trains: the store can take a run record (a row written and rolled back), and its disk
        has room. Raises StoreError naming the fault and its fix."""
        try:
            free = shutil.disk_usage(self.path.parent).free
        except OSError:
            free = None
        if free is not None and free < MIN_FREE_BYTES:
            raise StoreError(f"The disk holding the result store {self.path} has only {free / 1e6:.1f} MB free: free "
                             "some space, then rerun the sweep.")
        names = self.column_names()
        probe = {"run_id": WRITE_CHECK_ID, "status": "probe", "dataset": "", "technique": ""}
        quoted = ", ".join(f'"{name}"' for name in names)
        try:
            if self._db.in_transaction:
                self._db.commit()
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute(f"INSERT OR REPLACE INTO runs ({quoted}) VALUES ({', '.join('?' for _ in names)})",
                                 [probe.get(name) for name in names])
            finally:
                self._db.rollback()
        except sqlite3.IntegrityError as exc:
            raise StoreError(f"{self.path} requires fields this engine does not fill ({exc}): it was written by a "
                             "newer or another engine: upgrade the engine, or use another store.") from exc
        except sqlite3.Error as exc:
            raise StoreError(store_fault(self.path, exc)) from exc

    # --- runs that could not be written (a full disk): kept in a file, written at the next sweep -------------
    def save_unsaved(self, records: list[dict[str, Any]]) -> Path | None:
        """Append records the store refused to a JSON-lines file; returns it (None if nowhere would take them)."""
        lines = "".join(json.dumps(record, default=_plain) + "\n" for record in records)
        for candidate in unsaved_paths(self.path):
            try:
                with open(candidate, "a", encoding="utf-8") as kept:
                    kept.write(lines)
                    kept.flush()
                    os.fsync(kept.fileno())
                return candidate
            except OSError:
                continue
        return None

    def recover_unsaved(self) -> int:
        """Write runs an earlier sweep could not store (never over a successful record); returns how many."""
        written = 0
        for candidate in unsaved_paths(self.path):
            if not candidate.exists():
                continue
            try:
                records = [json.loads(line) for line in candidate.read_text(encoding="utf-8").splitlines()
                           if line.strip()]
            except (OSError, ValueError):
                continue  # left for a person to read: the error named it
            known = set(self.column_names())
            done = self.completed_ids(record.get("run_id") for record in records)
            for record in records:
                if record.get("run_id") in done and record.get("status") != "ok":
                    continue
                self.write({key: value for key, value in record.items() if key in known})
                written += 1
            candidate.unlink(missing_ok=True)
        return written

    def completed_ids(self, run_ids: Iterable[str]) -> set[str]:
        """Which of these runs finished successfully (failed runs are tried again)."""
        wanted = list(run_ids)
        done: set[str] = set()
        try:
            for start in range(0, len(wanted), 500):
                chunk = wanted[start:start + 500]
                marks = ", ".join("?" for _ in chunk)
                done.update(row[0] for row in self._db.execute(
                    f"SELECT run_id FROM runs WHERE status = 'ok' AND run_id IN ({marks})", chunk))
        except sqlite3.DatabaseError as exc:
            raise StoreError(store_fault(self.path, exc, "read")) from exc
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
        try:
            cursor = self._db.execute(f"SELECT * FROM runs {where} ORDER BY created_at, run_id", params)
            names = [description[0] for description in cursor.description]
            rows = cursor.fetchall()
        except sqlite3.DatabaseError as exc:
            raise StoreError(store_fault(self.path, exc, "read")) from exc
        return [self._decode(dict(zip(names, row))) for row in rows]

    def get(self, run_id: str) -> dict[str, Any] | None:
        found = self.records(run_ids=[run_id])
        return found[0] if found else None

    def dataframe(self, **filters) -> pd.DataFrame:
        """The records as a DataFrame, one column per store column."""
        return pd.DataFrame(self.records(**filters), columns=self.column_names())

    def _decode(self, record: dict[str, Any]) -> dict[str, Any]:
        for name in self._json & set(record):
            if record[name] is not None:
                try:
                    record[name] = json.loads(record[name])
                except (TypeError, ValueError):  # written by hand or another tool: keep the text, say so
                    record[name] = {"unreadable": str(record[name])} if name == "extra" else record[name]
        return record

    # --- random searches (engine.runner.search) ----------------------------------------------------------
    def get_search(self, search_id: str) -> list[dict] | None:
        """The trials a random search drew the first time it trained (RunConfig dicts), or None."""
        try:
            row = self._db.execute("SELECT trials FROM searches WHERE search_id = ?", (search_id,)).fetchone()
        except sqlite3.OperationalError:  # a store written before searches existed, opened read-only
            return None
        return None if row is None else json.loads(row[0])

    def search_means(self) -> dict[str, float]:
        try:
            return {row[0]: float(row[1]) for row in self._db.execute("SELECT search_id, mean_trials FROM searches")}
        except sqlite3.OperationalError:
            return {}

    def put_search(self, search_id: str, mean_trials: float, trials: list[dict], created_at: str) -> None:
        with self._db:
            self._db.execute("INSERT OR IGNORE INTO searches VALUES (?, ?, ?, ?)",
                             (search_id, mean_trials, json.dumps(trials), created_at))

    # --- noise calibration cache (engine.techniques.base.NoiseCache) -------------------------------------
    def get_noise(self, key: str) -> float | None:
        row = self._db.execute("SELECT noise_multiplier FROM noise_calibrations WHERE key = ?", (key,)).fetchone()
        return None if row is None else float(row[0])

    def put_noise(self, key: str, noise_multiplier: float) -> None:
        try:
            with self._db:
                self._db.execute("INSERT OR REPLACE INTO noise_calibrations VALUES (?, ?)", (key, noise_multiplier))
        except sqlite3.OperationalError:
            pass  # a cache: a read-only or full store only means the next run calibrates again

    # --- audits (engine.audit): records, and the parts of an unfinished one ----------------------------
    def write_audit(self, record: dict[str, Any]) -> None:
        names = [row[1] for row in self._db.execute("PRAGMA table_info(audits)")]
        values = [json.dumps(record.get(name)) if name in AUDIT_JSON else record.get(name) for name in names]
        marks = ", ".join("?" for _ in names)
        with self._db:
            self._db.execute(f"INSERT OR REPLACE INTO audits ({', '.join(names)}) VALUES ({marks})", values)

    def audits(self, *, run_ids: Iterable[str] | None = None, audit_id: str | None = None) -> list[dict[str, Any]]:
        """Audit records, oldest first (every audit of these runs, or the one audit asked for)."""
        clauses, params = [], []
        if run_ids is not None:
            ids = list(run_ids)
            clauses.append(f"run_id IN ({', '.join('?' for _ in ids) or 'NULL'})")
            params.extend(ids)
        if audit_id is not None:
            clauses.append("audit_id = ?")
            params.append(audit_id)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        cursor = self._db.execute(f"SELECT * FROM audits {where} ORDER BY created_at, audit_id", params)
        names = [description[0] for description in cursor.description]
        rows = [dict(zip(names, row)) for row in cursor]
        for row in rows:
            row.update({name: json.loads(row[name]) for name in AUDIT_JSON if row.get(name) is not None})
        return rows

    def audit_parts(self, audit_id: str) -> dict[int, bytes]:
        return {part: bytes(payload) for part, payload in self._db.execute(
            "SELECT part, payload FROM audit_parts WHERE audit_id = ?", (audit_id,))}

    def put_audit_part(self, audit_id: str, index: int, payload: bytes) -> None:
        with self._db:
            self._db.execute("INSERT OR REPLACE INTO audit_parts VALUES (?, ?, ?)", (audit_id, index, payload))

    def drop_audit_parts(self, audit_id: str) -> None:
        with self._db:
            self._db.execute("DELETE FROM audit_parts WHERE audit_id = ?", (audit_id,))

    # --- upkeep -----------------------------------------------------------------------------------------
    def integrity_check(self) -> str:
        return self._db.execute("PRAGMA integrity_check").fetchone()[0]

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> "ResultStore":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def store_signature(path: str | os.PathLike) -> tuple:
    """Changes whenever a run is written (WAL mode writes the -wal file first): a cheap cache key for readers."""
    base = Path(path)
    signature = []
    for part in (base, base.with_name(base.name + "-wal")):
        try:
            stat = part.stat()
            signature.append((stat.st_mtime_ns, stat.st_size))
        except OSError:
            signature.append(None)
    return tuple(signature)
