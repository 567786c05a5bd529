"""Upgrading a result store written by an older engine, inside the caller's transaction.

Schema 1 (engine 0.1, unversioned): `privacy_model` ("none", "global", "local") and no `point_id`.
Schema 2: `trust_model` ("none", "central", "local") and `point_id` (RunConfig.point_key).
Schema 3: the `audits` and `audit_parts` tables (engine.audit). Nothing in `runs` changes, so there is no step
here: ResultStore creates the tables (store.AUDIT_TABLES, IF NOT EXISTS) whenever it prepares a store.
"""

from __future__ import annotations

import json
import sqlite3

from engine.config import RunConfig

TRUST_MODEL_NAMES = {"global": "central"}  # schema 1 called central DP "global"


def migrate(db: sqlite3.Connection, version: int) -> None:
    if version < 2:
        _to_2(db)


def _to_2(db: sqlite3.Connection) -> None:
    columns = {row[1] for row in db.execute("PRAGMA table_info(runs)")}
    if "privacy_model" in columns and "trust_model" not in columns:
        db.execute('ALTER TABLE runs RENAME COLUMN "privacy_model" TO "trust_model"')
        for old, new in TRUST_MODEL_NAMES.items():
            db.execute("UPDATE runs SET trust_model = ? WHERE trust_model = ?", (new, old))
    if "point_id" not in columns:
        db.execute('ALTER TABLE runs ADD COLUMN "point_id" TEXT')
    rows = db.execute("SELECT run_id, config, dataset_fingerprint, versions FROM runs WHERE point_id IS NULL").fetchall()
    updates = []
    for run_id, config_text, fingerprint, versions_text in rows:
        try:
            config = RunConfig.from_dict(json.loads(config_text))
            engine_version = (json.loads(versions_text) or {}).get("engine", "")
        except (TypeError, ValueError, KeyError):
            continue  # a row we cannot read stays without a point: it is shown on its own
        updates.append((config.point_key(fingerprint or "", engine_version), run_id))
    db.executemany("UPDATE runs SET point_id = ? WHERE run_id = ?", updates)
