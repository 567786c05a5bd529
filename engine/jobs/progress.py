"""A job's state, read from its folder (job.json, events.jsonl, exit_code, cancelled) and the process table.

So a browser refresh, another tab or a restarted dashboard sees the same progress. Runs move through the
events the worker writes: queued -> training (started) -> done or failed; cached runs were done before.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from engine.errors import EngineError
from engine.runner.events import read_events
from engine.workspace import Workspace

STATES = ("running", "finished", "failed", "cancelled", "interrupted")


@dataclass(frozen=True)
class RunState:
    """One run of a job as the page lists it. status: cached | ok | failed | training | queued."""

    run_id: str
    label: str
    status: str
    epsilon: float | None = None
    accuracy: float | None = None
    error: str | None = None
    fraction: float = 0.0  # of a run in training


@dataclass(frozen=True)
class JobStatus:
    job_id: str
    state: str  # one of STATES
    total: int
    done: int  # runs with a result: cached at start, trained, or failed during this job
    cached_at_start: int
    failed: int
    running_since: datetime
    finished_at: datetime | None
    failed_runs: list[tuple[str, str]] = field(default_factory=list)  # (run label, error)
    current: str = ""  # what the job is doing now, in words
    log_tail: str = ""
    dataset: str = ""
    workers: int = 1
    exit_code: int | None = None
    runs: tuple[RunState, ...] = ()

    @property
    def running(self) -> bool:
        return self.state == "running"

    @property
    def elapsed_seconds(self) -> float:
        end = self.finished_at or datetime.now(timezone.utc)
        return max((end - self.running_since).total_seconds(), 0.0)


# --- the process table ------------------------------------------------------------------------------------
def start_ticks(pid: int) -> int | None:
    """The process's start time (clock ticks since boot): tells our process from a later one reusing its pid.
    None for a process that is gone or a zombie (finished, not yet reaped)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return None if fields[0] == "Z" else int(fields[19])


def is_alive(meta: dict) -> bool:
    pid = meta["pid"]
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    if not Path("/proc").is_dir():
        return True
    ticks = start_ticks(pid)
    return ticks is not None and (meta.get("start_ticks") is None or ticks == meta["start_ticks"])


# --- the job's files ------------------------------------------------------------------------------------
def job_dir_of(workspace: Workspace, job_id: str) -> Path:
    return workspace.jobs_dir.resolve() / job_id


def read_meta(job_dir: Path) -> dict | None:
    try:
        return json.loads((job_dir / "job.json").read_text())
    except (OSError, ValueError):
        return None  # a job being created, or not a job folder


def _read_int(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _mtime(path: Path) -> datetime | None:
    try:
        return datetime.fromtimestamp(path.stat().st_mtime, timezone.utc)
    except OSError:
        return None


def log_tail(path: Path, lines: int = 25) -> str:
    try:
        with open(path, "rb") as log:
            log.seek(max(0, log.seek(0, os.SEEK_END) - 8000))
            text = log.read().decode(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.replace("\r", "\n").splitlines()[-lines:])


def status_of(job_dir: Path, meta: dict) -> JobStatus:
    alive = is_alive(meta)
    exit_code = _read_int(job_dir / "exit_code")
    cancelled = (job_dir / "cancelled").exists()
    cached_ids = set(meta["cached_ids"])
    states = {run["run_id"]: RunState(run["run_id"], run["label"], "cached" if run["run_id"] in cached_ids else "queued")
              for run in meta["runs"]}
    planned = False
    for event in read_events(job_dir / "events.jsonl"):
        kind, run = event["kind"], states.get(event.get("run_id"))
        planned |= kind == "planned"
        if run is None:
            continue
        if kind in ("cached", "elsewhere") or (kind == "finished" and run.status != "cached"):
            states[run.run_id] = RunState(run.run_id, run.label, "ok" if kind == "finished" else "cached",
                                          epsilon=event.get("epsilon"), accuracy=event.get("accuracy"))
        elif kind == "failed":
            states[run.run_id] = RunState(run.run_id, run.label, "failed", error=event.get("error"))
        elif kind in ("started", "progress") and run.status in ("queued", "training"):
            states[run.run_id] = RunState(run.run_id, run.label, "training", fraction=event.get("fraction", 0.0))
    runs = tuple(states.values())
    unfinished = [run for run in runs if run.status in ("queued", "training")]
    if alive:
        state = "cancelled" if cancelled else "running"
    elif cancelled and exit_code != 0:
        state = "cancelled"
    elif exit_code == 0 or (exit_code == 1 and not unfinished):  # 1: the sweep ended with failed runs
        state = "finished"
    elif exit_code is None or exit_code < 0 or exit_code == 130:
        state = "interrupted"  # killed, or the machine or dashboard went down, before the worker could finish
    else:
        state = "failed"
    current = ""
    if state == "running":
        training = [run.label for run in runs if run.status == "training"]
        if not planned:
            current = "starting: loading libraries and data"
        elif training:
            current = "training " + ", ".join(training)
        elif unfinished:
            current = "waiting for a worker"
        else:
            current = "writing the last results"
    finished_at = None
    if state != "running":
        finished_at = _mtime(job_dir / "exit_code") or _mtime(job_dir / "cancelled") or _mtime(job_dir / "log.txt")
    failed = [run for run in runs if run.status == "failed"]
    return JobStatus(
        job_id=meta["job_id"], state=state, total=len(runs), done=len(runs) - len(unfinished),
        cached_at_start=len(cached_ids), failed=len(failed), running_since=datetime.fromisoformat(meta["started_at"]),
        finished_at=finished_at, failed_runs=[(run.label, run.error or "") for run in failed], current=current,
        log_tail=log_tail(job_dir / "log.txt"), dataset=meta.get("dataset", ""), workers=int(meta.get("workers", 1)),
        exit_code=exit_code, runs=runs,
    )


def _job_dirs(workspace: Workspace) -> list[tuple[Path, dict]]:
    """(folder, job.json) of every job on this store, newest first."""
    store = str(workspace.store_path.resolve())
    folder = workspace.jobs_dir.resolve()
    found = []
    for job_dir in sorted(folder.iterdir(), reverse=True) if folder.is_dir() else ():
        meta = read_meta(job_dir) if job_dir.is_dir() else None
        if meta is not None and meta.get("store") == store:  # stores sharing a folder share jobs/
            found.append((job_dir, meta))
    return found


def job_status(job_id: str, workspace: Workspace) -> JobStatus:
    job_dir = job_dir_of(workspace, job_id)
    meta = read_meta(job_dir)
    if meta is None:
        raise EngineError(f"No sweep job {job_id!r} next to the store {workspace.store_path}.")
    return status_of(job_dir, meta)


def list_jobs(workspace: Workspace, *, limit: int | None = None) -> list[JobStatus]:
    """Jobs on this store, newest first."""
    return [status_of(job_dir, meta) for job_dir, meta in _job_dirs(workspace)[:limit]]


def active_job(workspace: Workspace) -> JobStatus | None:
    """The job running on this store, if any."""
    for job_dir, meta in _job_dirs(workspace):
        if is_alive(meta):
            return status_of(job_dir, meta)
    return None


def latest_job(workspace: Workspace) -> JobStatus | None:
    """The running job, else the newest one: what a page shows after a refresh or in another tab."""
    running = active_job(workspace)
    if running is not None:
        return running
    newest = list_jobs(workspace, limit=1)
    return newest[0] if newest else None
