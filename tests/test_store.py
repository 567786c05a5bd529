import sqlite3

import pytest

from engine import store as store_module
from engine.errors import ConfigError
from engine.store import ResultStore, register_columns


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


def test_registered_columns_are_added_to_an_older_store(tmp_path, monkeypatch):
    path = tmp_path / "old.sqlite"
    ResultStore(path).close()  # a store written before the column existed
    monkeypatch.setattr(store_module, "COLUMNS", list(store_module.COLUMNS))
    monkeypatch.setattr(store_module, "COLUMN_NAMES", list(store_module.COLUMN_NAMES))
    register_columns([("comm_bytes_test", "INTEGER")])
    register_columns([("comm_bytes_test", "INTEGER")])  # twice is harmless
    with pytest.raises(ValueError, match="already registered"):
        register_columns([("comm_bytes_test", "TEXT")])
    with ResultStore(path) as reopened:
        reopened.write(_record("r1", comm_bytes_test=42))
        assert reopened.get("r1")["comm_bytes_test"] == 42


def test_a_file_that_is_not_a_store_gives_a_clear_error(tmp_path):
    broken = tmp_path / "broken.sqlite"
    broken.write_text("this is not sqlite" * 100)
    with pytest.raises(ConfigError, match="not a usable result store"):
        ResultStore(broken)
    with pytest.raises(ConfigError, match="No result store"):
        ResultStore(tmp_path / "missing.sqlite", create=False)


def test_commits_are_visible_to_another_connection_at_once(store):
    store.write(_record("r1", accuracy=0.5))
    with sqlite3.connect(store.path) as other:
        assert other.execute("SELECT count(*) FROM runs").fetchone()[0] == 1
