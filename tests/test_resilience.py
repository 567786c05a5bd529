"""Nothing crashes, nothing is lost (issue 12): store faults, concurrent sweeps, killed processes, NaN results.

Real processes, bounded in time: every wait polls a condition (the store, the process table) with a deadline.
`slow-test` (tests/fixtures/resilience_techniques.py) is the baseline after a pause, so that a second sweep or a
kill meets runs in progress.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import pytest
from typer.testing import CliRunner

from engine.cli import app
from engine.errors import StoreError
from engine.runner.execute import run_plan
from engine.runner.records import open_store
from engine.runner.store import SCHEMA_VERSION, unsaved_paths
from engine.techniques.registry import register_technique, unregister_technique
from engine_support import make_spec, plan_sweep, poll, run_sweep
from conftest import QUICK
from fixtures.resilience_techniques import NaNScores

ROOT = Path(__file__).resolve().parents[1]
PLUGIN_ENV = {**os.environ, "FRONTIER_PLUGINS": "fixtures.resilience_techniques", "PYTHONWARNINGS": "ignore",
              "PYTHONPATH": os.pathsep.join([str(ROOT / "tests"), str(ROOT), os.environ.get("PYTHONPATH", "")])}
SWEEP = [sys.executable, "-m", "engine.cli", "sweep", "--dataset", "breast-cancer", "--technique", "slow-test",
         "--seeds", "0", "--epochs", "1", "--batch-size", "64", "--device", "cpu", "--quiet"]


def _epsilons(count: int) -> list[str]:
    return ["--epsilon", ",".join(str(value) for value in range(1, count + 1))]


def _sweep(store: Path, runs: int, *extra: str, slow: float = 1.0) -> subprocess.Popen:
    return subprocess.Popen([*SWEEP, *_epsilons(runs), "--store", str(store), *extra], cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**PLUGIN_ENV, "FRONTIER_TEST_SLOW_SECONDS": str(slow)})


def _count(store: Path, sql: str) -> int:
    try:
        with sqlite3.connect(store, timeout=5) as db:
            return db.execute(sql).fetchone()[0]
    except sqlite3.DatabaseError:  # the table is not there yet, or the file is no store
        return 0


def _alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _workers(parent: psutil.Process) -> list[psutil.Process]:
    """The parent's pool workers (spawned interpreters; not the resource tracker)."""
    found = []
    for child in parent.children():
        try:
            if "spawn_main" in " ".join(child.cmdline()):
                found.append(child)
        except psutil.Error:
            continue
    return found


def _done_line(output: str) -> dict[str, int]:
    line = next(line for line in output.splitlines() if line.startswith("done:"))
    counts = {name: int(number) for number, name in re.findall(r"(\d+) (trained by another sweep|trained|cached|failed)",
                                                                 line)}
    return {"trained": counts.get("trained", 0), "cached": counts.get("cached", 0),
            "elsewhere": counts.get("trained by another sweep", 0), "failed": counts.get("failed", 0)}


# --- two sweeps over one grid --------------------------------------------------------------------------------
def test_two_concurrent_sweeps_train_each_run_once(tmp_path):
    store = tmp_path / "shared.sqlite"
    open_store(store).close()
    with sqlite3.connect(store) as db:  # every insert into runs, with the sweep that wrote it
        db.execute("CREATE TABLE writes (run_id TEXT, trained_by TEXT)")
        db.execute("CREATE TRIGGER logged AFTER INSERT ON runs BEGIN INSERT INTO writes VALUES "
                   "(NEW.run_id, json_extract(NEW.extra, '$.trained_by')); END")
    runs = 8
    first, second = _sweep(store, runs), _sweep(store, runs)
    outputs = [process.communicate(timeout=120) for process in (first, second)]
    for process, (out, err) in zip((first, second), outputs):
        assert process.returncode == 0, err
    with sqlite3.connect(store) as db:
        writes = db.execute("SELECT run_id, trained_by FROM writes").fetchall()
        assert db.execute("SELECT count(*) FROM runs WHERE status = 'ok'").fetchone()[0] == runs
        assert db.execute("SELECT count(*) FROM claims").fetchone()[0] == 0  # every claim released
    assert len(writes) == runs and len({run_id for run_id, _ in writes}) == runs  # each run recorded once
    owners = {trained_by for _, trained_by in writes}
    assert len(owners) == 2  # both sweeps trained: they split the grid
    counts = [_done_line(out) for out, _ in outputs]
    assert sum(count["trained"] for count in counts) == runs
    for count in counts:
        assert count["trained"] + count["cached"] + count["elsewhere"] == runs and count["failed"] == 0


# --- worker processes ----------------------------------------------------------------------------------------
def test_killing_the_parent_of_workers_leaves_no_process_behind(tmp_path):
    store = tmp_path / "killed.sqlite"
    sweep = _sweep(store, 6, "--workers", "2", slow=5.0)
    try:
        parent = psutil.Process(sweep.pid)
        poll(lambda: len(_workers(parent)) == 2 and _count(store, "SELECT count(*) FROM claims") >= 2, 60,
              "two workers training")
        descendants = parent.children(recursive=True)
        sweep.send_signal(signal.SIGKILL)
        sweep.wait(timeout=10)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(_alive(process) for process in descendants):
            time.sleep(0.1)
        assert not [process.pid for process in descendants if _alive(process)], "orphan processes outlived the sweep"
    finally:
        if sweep.poll() is None:
            sweep.kill()
        sweep.communicate()
    # The dead sweep's claims do not hold up the next one: it trains everything at once.
    rerun = _sweep(store, 6, slow=0.0)
    out, err = rerun.communicate(timeout=60)
    assert rerun.returncode == 0, err
    assert _count(store, "SELECT count(*) FROM runs WHERE status = 'ok'") == 6


def test_a_killed_worker_is_replaced_and_its_runs_retried_once(tmp_path):
    store = tmp_path / "worker.sqlite"
    sweep = _sweep(store, 4, "--workers", "2", slow=1.0)
    try:
        parent = psutil.Process(sweep.pid)
        workers = poll(lambda: len(_workers(parent)) == 2 and _count(store, "SELECT count(*) FROM claims") >= 2
                        and _workers(parent), 60, "two workers training")
        workers[0].send_signal(signal.SIGKILL)
        out, err = sweep.communicate(timeout=120)
    finally:
        if sweep.poll() is None:
            sweep.kill()
            sweep.communicate()
    assert sweep.returncode == 0, err
    assert "Traceback" not in err
    assert _count(store, "SELECT count(*) FROM runs WHERE status = 'ok'") == 4
    assert _done_line(out) == {"trained": 4, "cached": 0, "elsewhere": 0, "failed": 0}


# --- store faults: one line, exit 2, before anything trains ----------------------------------------------------
def _without_root_powers() -> list[str]:
    """A prefix that makes file permissions bind (root ignores them unless it drops CAP_DAC_OVERRIDE)."""
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv: file permissions cannot be made to bind")
    return ["setpriv", "--bounding-set=-dac_override,-dac_read_search"]


def _existing_store(tmp_path: Path) -> Path:
    store = tmp_path / "store" / "results.sqlite"
    with open_store(store) as opened:
        opened.write({"run_id": "kept", "status": "ok", "dataset": "breast-cancer", "technique": "baseline",
                      "created_at": "2026-01-01T00:00:00"})
    return store


def _read_only_file(tmp_path):
    store = _existing_store(tmp_path)
    store.chmod(0o444)
    return store


def _read_only_folder(tmp_path):
    store = _existing_store(tmp_path)
    store.parent.chmod(0o555)
    return store


def _a_folder(tmp_path):
    (tmp_path / "folder.sqlite").mkdir()
    return tmp_path / "folder.sqlite"


def _truncated(tmp_path):
    store = _existing_store(tmp_path)
    data = store.read_bytes()
    store.write_bytes(data[: len(data) // 3])
    return store


def _not_sqlite(tmp_path):
    store = tmp_path / "notes.sqlite"
    store.write_text("these are my notes, not a result store\n" * 50)
    return store


def _newer_version(tmp_path):
    store = _existing_store(tmp_path)
    with sqlite3.connect(store) as db:
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    return store


def _newer_column(tmp_path):  # a newer engine's required column, at this engine's version number
    store = _existing_store(tmp_path)
    with sqlite3.connect(store) as db:
        db.execute("ALTER TABLE runs ADD COLUMN owner_signature TEXT NOT NULL DEFAULT 'x'")
        db.execute("CREATE TABLE runs2 AS SELECT * FROM runs")  # keep the row; rebuild without the default
        db.execute("DROP TABLE runs")
        columns = ", ".join(f'"{row[1]}" {row[2]}{" PRIMARY KEY" if row[1] == "run_id" else ""}'
                            f'{" NOT NULL" if row[1] == "owner_signature" else ""}'
                            for row in db.execute("PRAGMA table_info(runs2)"))
        db.execute(f"CREATE TABLE runs ({columns})")
        db.execute("INSERT INTO runs SELECT * FROM runs2")
        db.execute("DROP TABLE runs2")
    return store


FAULTS = {"read-only file": (_read_only_file, "read-only"), "read-only folder": (_read_only_folder, "read-only"),
          "a folder": (_a_folder, "is a folder"), "truncated": (_truncated, "not a usable result store"),
          "not SQLite": (_not_sqlite, "not a usable result store"),
          "newer schema version": (_newer_version, "newer Privacy Frontier"),
          "newer required column": (_newer_column, "does not fill")}


def _one_error_line(stderr: str, message: str) -> None:
    errors = stderr.strip().splitlines()
    assert len(errors) == 1 and errors[0].startswith("error: ") and message in errors[0], stderr


@pytest.mark.parametrize("fault", [name for name in FAULTS if name.startswith("read-only")])
def test_a_read_only_store_is_one_line_and_nothing_trains(tmp_path, fault):
    make, message = FAULTS[fault]
    store = make(tmp_path)
    try:
        # Training would take a minute (slow-test pauses 60 s): an answer well within that trained nothing.
        result = subprocess.run([*_without_root_powers(), *SWEEP, *_epsilons(1), "--store", str(store)], cwd=ROOT,
                                text=True, capture_output=True, timeout=50,
                                env={**PLUGIN_ENV, "FRONTIER_TEST_SLOW_SECONDS": "60"})
    finally:
        store.chmod(0o644)
        store.parent.chmod(0o755)
    assert result.returncode == 2, result.stderr
    _one_error_line(result.stderr, message)
    assert "Traceback" not in result.stderr + result.stdout and "trained" not in result.stdout
    assert _count(store, "SELECT count(*) FROM runs") == 1  # nothing written beside the run it held


@pytest.mark.parametrize("fault", [name for name in FAULTS if not name.startswith("read-only")])
def test_a_store_fault_is_one_line_and_nothing_trains(tmp_path, fault, monkeypatch):
    from engine.runner import execute

    make, message = FAULTS[fault]
    store = make(tmp_path)

    def must_not_train(*args, **kwargs):
        raise AssertionError("a run trained on a store that cannot take its record")

    monkeypatch.setattr(execute, "_train_group", must_not_train)
    result = CliRunner().invoke(app, ["sweep", "--dataset", "breast-cancer", "--technique", "baseline", "--seeds", "0",
                                      "--epochs", "1", "--batch-size", "64", "--device", "cpu", "--quiet",
                                      "--store", str(store)])
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit), result.output
    _one_error_line(result.stderr, message)
    assert "Traceback" not in result.output and "trained" not in result.stdout
    if store.is_file() and fault not in ("truncated", "not SQLite"):
        assert _count(store, "SELECT count(*) FROM runs") == 1  # nothing written beside the run it held


def test_a_full_disk_keeps_finished_runs_for_the_next_sweep(tmp_path, monkeypatch):
    store_path = tmp_path / "full.sqlite"
    spec = make_spec(**{**QUICK, "techniques": ("baseline",), "seeds": (0, 1, 2, 3), "epochs": 1})
    plan = plan_sweep(spec, store_path)
    with open_store(store_path) as store:
        checked = store.check_writable

        def check_then_fill() -> None:  # the disk fills up once the sweep has begun
            checked()
            pages = store._db.execute("PRAGMA page_count").fetchone()[0]
            store._db.execute(f"PRAGMA max_page_count = {pages}")

        monkeypatch.setattr(store, "check_writable", check_then_fill)
        with pytest.raises(StoreError, match="full.*kept in") as raised:
            run_plan(plan, store=store, uploads_dir=None, workers=1, device="cpu")
        kept = next(path for path in unsaved_paths(store_path) if path.exists())
        assert str(kept) in str(raised.value)
        unsaved = [json.loads(line)["run_id"] for line in kept.read_text().splitlines()]
    with open_store(store_path) as store:
        stored = {record["run_id"] for record in store.records()}
        assert unsaved and not set(unsaved) & stored  # the runs the store refused are in the file
        report = run_sweep(spec, store=store)  # the next sweep writes them, then trains only what is missing
        assert report.cached == len(stored) + len(unsaved) and report.trained == 4 - report.cached
        assert len(store.records(status="ok")) == 4 and not kept.exists()


# --- results that are not numbers ------------------------------------------------------------------------------
def test_nan_scores_and_non_finite_inputs_are_recorded_failed_with_the_reason(store):
    register_technique("nan-test", NaNScores)
    try:
        report = run_sweep(make_spec(**{**QUICK, "techniques": ("nan-test",), "epochs": 1}), store=store)
    finally:
        unregister_technique("nan-test")
    assert (report.trained, report.failed) == (0, 1)
    [failed] = store.records(status="failed")
    assert "test scores hold" in failed["error"] and "NaN" in failed["error"]

    spec = make_spec(**{**QUICK, "techniques": ("baseline",), "seeds": (5,), "epochs": 1})
    plan = plan_sweep(spec, store.path)
    data = plan.data or __import__("engine_support").prepared_data(spec)
    x_test = data.x_test.copy()
    x_test[0, 0] = np.inf
    report = run_plan(dataclasses.replace(plan, data=dataclasses.replace(data, x_test=x_test)), store=store,
                      uploads_dir=None, device="cpu")
    assert (report.trained, report.failed) == (0, 1)
    assert "NaN or infinite" in store.get(plan.run_ids[0])["error"]


def test_a_non_json_extra_does_not_break_results(store):
    store.write({"run_id": "r1", "status": "ok", "dataset": "breast-cancer", "technique": "baseline",
                 "created_at": "2026-01-01T00:00:00", "accuracy": 0.9})
    with sqlite3.connect(store.path) as db:
        db.execute("UPDATE runs SET extra = '{written by hand' WHERE run_id = 'r1'")
    runner = CliRunner()
    as_json = runner.invoke(app, ["results", "--format", "json", "--store", str(store.path)])
    assert as_json.exit_code == 0, as_json.output
    assert json.loads(as_json.output)[0]["extra"] == {"unreadable": "{written by hand"}
    for output_format in ("table", "csv"):
        shown = runner.invoke(app, ["results", "--format", output_format, "--store", str(store.path)])
        assert shown.exit_code == 0 and "r1" in shown.output
