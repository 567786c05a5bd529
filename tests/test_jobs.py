"""Background sweep jobs (engine.jobs): estimates, a real detached worker, cancel, and states from files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from engine import services
from engine.errors import ConfigError, EngineError
from engine.jobs.launch import JobRunningError
from engine.jobs.progress import start_ticks
from engine.present.demo import DEMO_SPEC
from engine.runner.events import EventLog
from engine.runner.records import open_store as ResultStore
from engine.runner.spec import spec_from_mapping
from engine.workspace import Workspace
from engine_support import make_spec, plan_sweep, run_sweep
from conftest import QUICK

WAIT_S = 120  # a fresh process imports torch: seconds on a busy 2-core machine


@pytest.fixture
def workspace(isolated_store) -> Workspace:
    return Workspace.at(isolated_store)


@pytest.fixture(autouse=True)
def _no_job_outlives_its_test(isolated_store):
    """A detached job runs in its own session: stop it if a test ends (or fails) while it still runs."""
    yield
    running = services.active_job(Workspace.at(isolated_store))
    if running is not None:
        services.cancel(running.job_id, Workspace.at(isolated_store), grace_seconds=5)


def _start(spec, workspace, **options) -> str:
    return services.launch(services.plan(spec, workspace), workspace, **options)


def _wait(job_id: str, workspace: Workspace, until, timeout: float = WAIT_S):
    deadline = time.monotonic() + timeout
    while True:
        status = services.job_status(job_id, workspace)
        if until(status):
            return status
        if time.monotonic() > deadline:
            pytest.fail(f"job {job_id} did not get there in {timeout} s: {status}\n{status.log_tail}")
        time.sleep(0.2)


def test_demo_spec_is_valid_and_on_adult():
    spec = DEMO_SPEC.validate()
    assert spec.dataset == "adult" and set(spec.techniques) == {"baseline", "dp-sgd"} and spec.model == "mlp"
    assert len(plan_sweep(spec).configs) == 6


def test_estimate_counts_cached_runs_and_learns_from_the_store(isolated_store, workspace, quick_spec):
    empty = services.estimate(services.plan(quick_spec, workspace), workspace)
    assert (empty.total, empty.cached, empty.to_train) == (3, 0, 3)
    assert empty.seconds > 0 and "measured on this machine" in empty.basis  # no stored run: measured here
    assert not isolated_store.exists()  # planning and estimating never create a store

    with ResultStore(isolated_store) as store:
        run_sweep(make_spec(techniques=("baseline",), **QUICK), store=store)
    partly = services.estimate(services.plan(quick_spec, workspace), workspace)
    assert (partly.total, partly.cached, partly.to_train) == (3, 1, 2)
    assert "dp-sgd" in partly.basis and "baseline" not in partly.basis  # only what is left to train is timed

    baseline_again = services.estimate(services.plan(make_spec(techniques=("baseline",), **{**QUICK, "seeds": (0, 1)}),
                                                     workspace), workspace)
    assert (baseline_again.cached, baseline_again.to_train) == (1, 1)
    assert "mean of 1 stored run" in baseline_again.basis
    plan = services.plan(quick_spec, workspace)
    assert services.estimate(plan, workspace, workers=2).seconds <= partly.seconds


@pytest.mark.parametrize("bad", [dict(epsilons=(-1.0,)), dict(dataset="no-such-data"), dict(techniques=("magic",)),
                                 dict(delta=0.5)])
def test_invalid_spec_raises_before_anything_is_written(isolated_store, workspace, bad):
    with pytest.raises(ConfigError):
        services.plan(make_spec(**{**QUICK, "techniques": ("baseline", "dp-sgd"), **bad}), workspace)
    assert not isolated_store.parent.exists()  # no store, no jobs folder


def test_cuda_without_gpu_is_refused(isolated_store, workspace, quick_spec):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is visible")
    with pytest.raises(ConfigError, match="CUDA"):
        _start(quick_spec, workspace, device="cuda")
    assert not (isolated_store.parent / "jobs").exists()


def test_job_trains_the_plan_detached_and_finishes(isolated_store, workspace, quick_spec):
    plan = services.plan(quick_spec, workspace)
    job_id = services.launch(plan, workspace)
    job_dir = isolated_store.parent / "jobs" / job_id
    meta = json.loads((job_dir / "job.json").read_text())
    planned = json.loads((job_dir / "plan.json").read_text())
    assert planned["run_ids"] == list(plan.run_ids)  # the worker trains exactly the planned runs
    assert spec_from_mapping(planned["spec"]) == quick_spec
    assert os.getpgid(meta["pid"]) == meta["pgid"] == meta["pid"]  # its own session: survives the page
    assert services.active_job(workspace).job_id == job_id

    status = _wait(job_id, workspace, lambda s: not s.running)
    assert status.state == "finished", status.log_tail
    assert status.done == status.total == 3 and status.failed == 0 and status.exit_code == 0
    assert status.finished_at is not None and status.elapsed_seconds > 0
    assert [run.status for run in status.runs] == ["ok", "ok", "ok"]
    with ResultStore(isolated_store, create=False) as store:
        assert {r["status"] for r in store.records(run_ids=[run.run_id for run in status.runs])} == {"ok"}
    kinds = [json.loads(line)["kind"] for line in (job_dir / "events.jsonl").read_text().splitlines()]
    assert kinds[0] == "planned" and kinds[-1] == "ended" and kinds.count("finished") == 3
    assert services.active_job(workspace) is None
    assert [job.job_id for job in services.list_jobs(workspace)] == [job_id]
    assert services.latest_job(workspace).job_id == job_id


def test_cancel_keeps_finished_runs_and_a_rerun_trains_only_the_rest(isolated_store, workspace):
    # Batched DP-SGD trains the four runs in one pass: the 2-epoch runs are recorded while the 1000-epoch ones train.
    spec = make_spec(**{**QUICK, "techniques": ("dp-sgd",), "epsilons": (0.5, 1.0), "epochs": (2, 1000)})
    job_id = _start(spec, workspace)
    with pytest.raises(JobRunningError, match="already running"):
        _start(spec, workspace)  # one job per store at a time

    running = _wait(job_id, workspace, lambda s: s.done >= 1 or not s.running)
    assert running.state == "running"
    cancelled = services.cancel(job_id, workspace)
    assert cancelled.state == "cancelled"
    assert services.active_job(workspace) is None
    kept = cancelled.done
    assert 1 <= kept < cancelled.total, "the sweep ended before it could be cancelled: make it longer"
    assert "interrupted" in cancelled.log_tail  # the worker's SIGTERM handler let it report and exit
    with ResultStore(isolated_store, create=False) as store:
        assert store.integrity_check() == "ok"
        assert len(store.records(status="ok")) == kept

    again = _start(spec, workspace)
    assert services.job_status(again, workspace).cached_at_start == kept
    finished = _wait(again, workspace, lambda s: not s.running)
    assert finished.state == "finished" and finished.done == finished.total == 4, finished.log_tail
    assert [job.state for job in services.list_jobs(workspace)] == ["finished", "cancelled"]


def test_progress_comes_from_events_not_from_printed_text(isolated_store, workspace):
    """The log is only shown, never read: a job whose log says nothing useful (or something misleading) still
    reports which run is training from its events."""
    spec = make_spec(**{**QUICK, "techniques": ("dp-sgd",), "epsilons": (0.5, 1.0, 2.0), "epochs": 3})
    job_id = _start(spec, workspace)
    log = isolated_store.parent / "jobs" / job_id / "log.txt"
    training = _wait(job_id, workspace, lambda s: any(run.status == "training" for run in s.runs) or not s.running)
    log.write_text("breast-cancer: 99 runs, 0 cached, 99 to train (store: nowhere)\n")  # misleading text
    status = services.job_status(job_id, workspace)
    assert training.state == "running" and status.total == 3
    assert status.current.startswith("training dp-sgd") or status.done > training.done
    finished = _wait(job_id, workspace, lambda s: not s.running)
    assert finished.state == "finished" and finished.done == 3


# --- states derived from the files, with fake jobs ---------------------------------------------------------
def _fake_job(store_path: Path, name: str, pid: int, *, exit_code: int | None = None, cancelled: bool = False,
              ticks: int | None = None, events: tuple[dict, ...] = ()) -> str:
    job_dir = store_path.parent / "jobs" / name
    job_dir.mkdir(parents=True)
    (job_dir / "log.txt").write_text("anything at all\n")
    meta = {"job_id": name, "pid": pid, "pgid": pid, "start_ticks": ticks,
            "started_at": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
            "store": str(store_path.resolve()), "dataset": "breast-cancer",
            "runs": [{"run_id": "r1", "label": "baseline · mlp · seed 0"}], "cached_ids": [], "workers": 1}
    (job_dir / "job.json").write_text(json.dumps(meta))
    log = EventLog(job_dir / "events.jsonl")
    for event in events:
        log.write(**event)
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
def test_state_of_an_ended_job(isolated_store, workspace, exit_code, cancelled, state):
    job_id = _fake_job(isolated_store, "20260101-000000-aaaa", _dead_pid(), exit_code=exit_code, cancelled=cancelled)
    status = services.job_status(job_id, workspace)
    assert status.state == state and not status.running and status.finished_at is not None
    assert services.active_job(workspace) is None


def test_a_running_job_reads_its_runs_from_events_and_a_reused_pid_is_not_taken_for_it(isolated_store, workspace):
    me = os.getpid()
    job_id = _fake_job(isolated_store, "20260101-000000-bbbb", me, ticks=start_ticks(me))
    assert services.job_status(job_id, workspace).state == "running"
    assert services.job_status(job_id, workspace).current == "starting: loading libraries and data"
    started = _fake_job(isolated_store, "20260101-000000-bbbc", me, ticks=start_ticks(me),
                        events=({"kind": "planned", "total": 1}, {"kind": "started", "run_id": "r1"}))
    status = services.job_status(started, workspace)
    assert status.current == "training baseline · mlp · seed 0" and status.runs[0].status == "training"
    other = _fake_job(isolated_store, "20260101-000000-cccc", me, ticks=(start_ticks(me) or 0) + 1)
    assert services.job_status(other, workspace).state == "interrupted"
    assert [job.job_id for job in services.list_jobs(workspace)] == [other, started, job_id]  # newest first


def test_jobs_of_another_store_in_the_same_folder_are_not_listed(isolated_store, workspace):
    _fake_job(isolated_store, "20260101-000000-dddd", _dead_pid(), exit_code=0)
    assert len(services.list_jobs(workspace)) == 1
    assert services.list_jobs(Workspace.at(isolated_store.with_name("other.sqlite"))) == []
    with pytest.raises(EngineError, match="No sweep job"):
        services.job_status("nope", workspace)
