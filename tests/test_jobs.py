"""Background sweep jobs (engine.jobs): estimates, a real detached `frontier sweep`, cancel, and states from files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
import yaml

from engine import jobs
from engine.config import SweepSpec
from engine.errors import ConfigError
from engine.store import ResultStore
from engine.sweep import plan_sweep, run_sweep
from conftest import QUICK

WAIT_S = 120  # a fresh process imports torch: seconds on a busy 2-core machine


@pytest.fixture(autouse=True)
def _no_job_outlives_its_test(isolated_store):
    """A detached job runs in its own session: stop it if a test ends (or fails) while it still runs."""
    yield
    running = jobs.active_job(isolated_store)
    if running is not None:
        jobs.cancel_job(running.job_id, isolated_store, grace_seconds=5)


def _wait(job_id: str, store_path: Path, until, timeout: float = WAIT_S) -> jobs.JobStatus:
    deadline = time.monotonic() + timeout
    while True:
        status = jobs.job_status(job_id, store_path)
        if until(status):
            return status
        if time.monotonic() > deadline:
            pytest.fail(f"job {job_id} did not get there in {timeout} s: {status}\n{status.log_tail}")
        time.sleep(0.2)


def test_demo_spec_is_valid_and_on_adult():
    spec = jobs.DEMO_SPEC.validate()
    assert spec.dataset == "adult" and set(spec.techniques) == {"baseline", "dp-sgd"} and spec.model == "mlp"
    assert len(plan_sweep(spec, None).configs) == 6


def test_estimate_counts_cached_runs_and_learns_from_the_store(isolated_store, quick_spec):
    empty = jobs.estimate_sweep(quick_spec)
    assert (empty.total, empty.cached, empty.to_train) == (3, 0, 3)
    assert empty.seconds > 0 and "default" in empty.basis
    assert not isolated_store.exists()  # estimating never creates a store

    with ResultStore(isolated_store) as store:
        run_sweep(SweepSpec(techniques=("baseline",), **QUICK), store=store, device="cpu")
    partly = jobs.estimate_sweep(quick_spec)
    assert (partly.total, partly.cached, partly.to_train) == (3, 1, 2)
    assert "dp-sgd" in partly.basis and "baseline" not in partly.basis  # only what is left to train is timed

    baseline_again = jobs.estimate_sweep(SweepSpec(techniques=("baseline",), **{**QUICK, "seeds": (0, 1)}))
    assert (baseline_again.cached, baseline_again.to_train) == (1, 1)
    assert "mean of 1 stored run" in baseline_again.basis
    assert jobs.estimate_sweep(quick_spec, workers=2).seconds <= partly.seconds


@pytest.mark.parametrize("bad", [dict(epsilons=(-1.0,)), dict(dataset="no-such-data"), dict(techniques=("magic",)),
                                 dict(delta=0.5)])
def test_invalid_spec_raises_before_anything_is_written(isolated_store, bad):
    spec = SweepSpec(**{**QUICK, "techniques": ("baseline", "dp-sgd"), **bad})
    with pytest.raises(ConfigError):
        jobs.estimate_sweep(spec)
    with pytest.raises(ConfigError):
        jobs.start_sweep_job(spec)
    assert not isolated_store.parent.exists()  # no store, no jobs folder


def test_cuda_without_gpu_is_refused(isolated_store, quick_spec):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is visible")
    with pytest.raises(ConfigError, match="CUDA"):
        jobs.start_sweep_job(quick_spec, device="cuda")
    assert not (isolated_store.parent / "jobs").exists()


def test_job_runs_the_cli_detached_and_finishes(isolated_store, quick_spec):
    job_id = jobs.start_sweep_job(quick_spec, store_path=isolated_store)
    job_dir = isolated_store.parent / "jobs" / job_id
    meta = json.loads((job_dir / "job.json").read_text())
    assert meta["command"][1:4] == ["-m", "engine.cli", "sweep"] and "--quiet" in meta["command"]
    assert SweepSpec.from_mapping(yaml.safe_load((job_dir / "spec.yaml").read_text())) == quick_spec
    assert os.getpgid(meta["pid"]) == meta["pgid"] == meta["pid"]  # its own session: survives the page
    assert jobs.active_job(isolated_store).job_id == job_id

    status = _wait(job_id, isolated_store, lambda s: not s.running)
    assert status.state == "finished", status.log_tail
    assert status.done == status.total == 3 and status.failed == 0 and status.exit_code == 0
    assert status.finished_at is not None and status.elapsed_seconds > 0
    assert [run.status for run in status.runs] == ["ok", "ok", "ok"]
    with ResultStore(isolated_store, create=False) as store:
        assert {r["status"] for r in store.records(run_ids=[run.run_id for run in status.runs])} == {"ok"}
    assert jobs.active_job(isolated_store) is None
    assert [job.job_id for job in jobs.list_jobs(isolated_store)] == [job_id]
    assert jobs.latest_job(isolated_store).job_id == job_id


def test_cancel_keeps_finished_runs_and_a_rerun_trains_only_the_rest(isolated_store):
    spec = SweepSpec(**{**QUICK, "techniques": ("dp-sgd",), "epsilons": (0.5, 1.0, 2.0, 4.0), "epochs": 2})
    job_id = jobs.start_sweep_job(spec, store_path=isolated_store)
    with pytest.raises(jobs.JobRunningError, match="already running"):
        jobs.start_sweep_job(spec, store_path=isolated_store)  # one job per store at a time

    running = _wait(job_id, isolated_store, lambda s: s.done >= 1 or not s.running)
    assert running.state == "running" and "training dp-sgd" in running.current
    assert [run.status for run in running.runs].count("training") == 1
    cancelled = jobs.cancel_job(job_id, isolated_store)
    assert cancelled.state == "cancelled"
    assert jobs.active_job(isolated_store) is None
    kept = cancelled.done
    assert 1 <= kept < cancelled.total, "the sweep ended before it could be cancelled: make it longer"
    assert "interrupted" in cancelled.log_tail  # the CLI's SIGTERM handler let it report and exit
    with ResultStore(isolated_store, create=False) as store:
        assert store.integrity_check() == "ok"
        assert len(store.records(status="ok")) == kept

    again = jobs.start_sweep_job(spec, store_path=isolated_store)
    assert jobs.job_status(again, isolated_store).cached_at_start == kept
    finished = _wait(again, isolated_store, lambda s: not s.running)
    assert finished.state == "finished" and finished.done == finished.total == 4, finished.log_tail
    assert "4 runs, %d cached, %d to train" % (kept, 4 - kept) in finished.log_tail
    assert [job.state for job in jobs.list_jobs(isolated_store)] == ["finished", "cancelled"]


# --- states derived from the files, with fake jobs ---------------------------------------------------------
def _fake_job(store_path: Path, name: str, pid: int, *, exit_code: int | None = None, cancelled: bool = False,
              start_ticks: int | None = None) -> str:
    job_dir = store_path.parent / "jobs" / name
    job_dir.mkdir(parents=True)
    (job_dir / "log.txt").write_text("breast-cancer: 1 runs, 0 cached, 1 to train (store: x)\n")
    meta = {"job_id": name, "pid": pid, "pgid": pid, "start_ticks": start_ticks,
            "started_at": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
            "store": str(store_path.resolve()), "spec": {"dataset": "breast-cancer"},
            "runs": [{"run_id": "r1", "label": "baseline · mlp · seed 0"}], "cached_ids": [], "workers": 1}
    (job_dir / "job.json").write_text(json.dumps(meta))
    if exit_code is not None:
        (job_dir / "exit_code").write_text(f"{exit_code}\n")
    if cancelled:
        (job_dir / "cancelled").write_text("now\n")
    return name


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


@pytest.mark.parametrize("exit_code, cancelled, state", [
    (None, False, "interrupted"), (0, False, "finished"), (2, False, "failed"), (1, False, "failed"),
    (130, False, "interrupted"), (-9, False, "interrupted"), (130, True, "cancelled"), (None, True, "cancelled"),
])
def test_state_of_an_ended_job(isolated_store, exit_code, cancelled, state):
    job_id = _fake_job(isolated_store, "20260101-000000-aaaa", _dead_pid(), exit_code=exit_code, cancelled=cancelled)
    status = jobs.job_status(job_id, isolated_store)
    assert status.state == state and not status.running and status.finished_at is not None
    assert jobs.active_job(isolated_store) is None


def test_a_reused_pid_is_not_taken_for_the_job(isolated_store):
    me = os.getpid()
    job_id = _fake_job(isolated_store, "20260101-000000-bbbb", me, start_ticks=jobs._start_ticks(me))
    assert jobs.job_status(job_id, isolated_store).state == "running"
    assert "training baseline" in jobs.job_status(job_id, isolated_store).current
    other = _fake_job(isolated_store, "20260101-000000-cccc", me, start_ticks=(jobs._start_ticks(me) or 0) + 1)
    assert jobs.job_status(other, isolated_store).state == "interrupted"
    assert [job.job_id for job in jobs.list_jobs(isolated_store)] == [other, job_id]  # newest first


def test_jobs_of_another_store_in_the_same_folder_are_not_listed(isolated_store):
    _fake_job(isolated_store, "20260101-000000-dddd", _dead_pid(), exit_code=0)
    assert len(jobs.list_jobs(isolated_store)) == 1
    assert jobs.list_jobs(isolated_store.with_name("other.sqlite")) == []
    with pytest.raises(jobs.EngineError, match="No sweep job"):
        jobs.job_status("nope", isolated_store)
