import json
import sqlite3

import pytest

from engine.config import RunConfig
from engine.errors import StoreError
from engine.runner.store import SCHEMA_VERSION, Column, ResultStore


def _record(run_id, status="ok", **fields):
    return {"run_id": run_id, "status": status, "dataset": "heart", "technique": "dp-sgd", "config": {"seed": 0},
            "versions": {"torch": "x"}, "created_at": f"2026-01-01T00:00:0{run_id[-1]}", **fields}


def test_write_read_round_trip_and_failed_runs_are_not_complete(store):
    store.write(_record("r1", accuracy=0.8, extra={"note": "x"}))
    store.write(_record("r2", status="failed", error="boom"))
    assert store.completed_ids(["r1", "r2", "r3"]) == {"r1"}
    first = store.get("r1")
    assert first["accuracy"] == 0.8 and first["config"] == {"seed": 0} and first["extra"] == {"note": "x"}
    assert [r["run_id"] for r in store.records(status="failed")] == ["r2"]
    assert store.integrity_check() == "ok"
    with pytest.raises(ValueError, match="does not know"):
        store.write(_record("r4", not_a_column=1))


def test_declared_columns_are_added_to_an_older_store_and_described(tmp_path):
    path = tmp_path / "old.sqlite"
    ResultStore(path).close()  # a store written before the columns were declared
    with ResultStore(path, columns=[Column("comm_bytes_test", "INTEGER"), Column("client_mix", "TEXT", json=True)]) as store:
        store.write(_record("r1", comm_bytes_test=42, client_mix=[1, 2]))
    with ResultStore(path) as reader:  # a reader that declares nothing still decodes the JSON column
        record = reader.get("r1")
        assert record["comm_bytes_test"] == 42 and record["client_mix"] == [1, 2]


def test_store_faults_are_one_line_errors(tmp_path):
    broken = tmp_path / "broken.sqlite"
    broken.write_text("this is not sqlite" * 100)
    with pytest.raises(StoreError, match="not a usable result store"):
        ResultStore(broken)
    with pytest.raises(StoreError, match="No result store"):
        ResultStore(tmp_path / "missing.sqlite", create=False)
    with pytest.raises(StoreError, match="is a folder"):
        ResultStore(tmp_path)


def test_a_newer_store_is_refused_and_an_older_one_migrated(tmp_path):
    newer = tmp_path / "newer.sqlite"
    ResultStore(newer).close()
    with sqlite3.connect(newer) as db:
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(StoreError, match="written by a newer Privacy Frontier"):
        ResultStore(newer)

    # An unversioned store of engine 0.1: `privacy_model` with "global", no point_id.
    older = tmp_path / "older.sqlite"
    config = RunConfig(dataset="heart", technique="dp-sgd", model="mlp", seed=3, epochs=2, batch_size=8,
                       learning_rate=0.1, hidden_units=4, target_epsilon=1.0, max_grad_norm=1.0, delta=1e-5,
                       accountant="rdp")
    with sqlite3.connect(older) as db:
        db.execute("CREATE TABLE runs (run_id TEXT PRIMARY KEY, status TEXT NOT NULL, error TEXT, dataset TEXT NOT NULL, "
                   "technique TEXT NOT NULL, privacy_model TEXT, dataset_fingerprint TEXT, versions TEXT, config TEXT, "
                   "created_at TEXT, extra TEXT)")
        db.execute("INSERT INTO runs VALUES ('r1', 'ok', NULL, 'heart', 'dp-sgd', 'global', 'fp', ?, ?, '2026', NULL)",
                   (json.dumps({"engine": "0.1.0"}), json.dumps(config.to_dict())))
    with ResultStore(older) as migrated:
        record = migrated.get("r1")
        assert record["trust_model"] == "central" and "privacy_model" not in record
        assert record["point_id"] == config.point_key("fp", "0.1.0")
    with sqlite3.connect(older) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_commits_are_visible_to_another_connection_at_once(store):
    store.write(_record("r1", accuracy=0.5))
    with sqlite3.connect(store.path) as other:
        assert other.execute("SELECT count(*) FROM runs").fetchone()[0] == 1


def test_a_schema_2_store_gains_the_audit_tables(tmp_path):
    path = tmp_path / "v2.sqlite"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE runs (run_id TEXT PRIMARY KEY, status TEXT NOT NULL, dataset TEXT NOT NULL, "
                   "technique TEXT NOT NULL, point_id TEXT, trust_model TEXT, config TEXT, dataset_fingerprint TEXT, "
                   "versions TEXT)")
        db.execute("PRAGMA user_version = 2")
    with ResultStore(path) as store:
        store.write_audit({"audit_id": "a", "run_id": "r", "attack": "one-run", "settings": {"attack": "one-run"},
                           "status": "ok", "figures": {"x": 1}, "created_at": "2026"})
        store.put_audit_part("a", 0, b"plan")
        assert store.audits(run_ids=["r"])[0]["settings"] == {"attack": "one-run"}
        assert store.audit_parts("a") == {0: b"plan"}
        store.drop_audit_parts("a")
        assert store.audit_parts("a") == {}
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
