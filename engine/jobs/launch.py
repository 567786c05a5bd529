"""Starting a planned sweep in a detached process, and stopping it.

Only one job runs per store at a time: two would compete for the same cores (SQLite itself would cope).
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from engine.errors import ConfigError, EngineError
from engine.jobs.progress import JobStatus, active_job, is_alive, job_dir_of, read_meta, start_ticks, status_of
from engine.measure import resolve_device
from engine.present.labels import run_label
from engine.runner.cluster import ClusterSettings
from engine.runner.plan import SweepPlan
from engine.runner.store import ResultStore
from engine.techniques.registry import loaded_plugins
from engine.workspace import Workspace

CANCEL_GRACE_SECONDS = 10.0  # SIGTERM, then SIGKILL after this long
ROOT = Path(__file__).resolve().parents[2]  # where `python -m engine.jobs.worker` imports this very engine

_CHILDREN: dict[int, subprocess.Popen] = {}  # processes this process started, so they can be reaped


class JobRunningError(EngineError):
    """A sweep is already running on this result store."""


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")  # the store's created_at format


def write_atomic(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(text)
    os.replace(temporary, path)


def _keep_search(plan: SweepPlan, store: Path) -> None:
    """A random search's draw, kept in the store before its worker starts (so a rerun of the spec resumes this very
    draw): the worker finds in plan.json only the trials' configurations, and each trial names its per-epsilon
    search, not the spec's (engine.runner.search)."""
    from engine.runner.records import open_store

    with open_store(store) as opened:
        opened.check_writable()  # a read-only, full or foreign store fails here, before anything starts
        opened.put_search(plan.search.search_id, plan.search.mean_trials,
                          [config.to_dict() for config in plan.search.trials], now())


def start_job(plan: SweepPlan, workspace: Workspace, *, workers: int = 1, device: str = "auto",
              cluster: ClusterSettings = ClusterSettings()) -> str:
    """Run `plan` in a detached process; returns the job id. Raises ConfigError or JobRunningError first."""
    if not (isinstance(workers, int) and not isinstance(workers, bool) and workers >= 1):
        raise ConfigError(f"workers must be a whole number >= 1, got {workers!r}.", setting="workers")
    resolve_device(cluster.driver_device(device))  # ConfigError for cuda without a GPU or an unknown device
    store = workspace.store_path.resolve()
    folder = workspace.jobs_dir.resolve()
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".launch.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two tabs pressing Launch at once start one job
        running = active_job(workspace)
        if running is not None:
            raise JobRunningError(f"A sweep is already running on this store (job {running.job_id}, {running.done} "
                                  f"of {running.total} runs): wait for it to finish or cancel it.")
        cached = []
        if store.exists():
            with ResultStore(store, create=False) as opened:
                cached = sorted(opened.completed_ids(plan.run_ids))
        if plan.search is not None:
            _keep_search(plan, store)
        job_id = f"{datetime.now():%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"
        job_dir = folder / job_id
        job_dir.mkdir()
        write_atomic(job_dir / "plan.json", json.dumps({
            "spec": plan.spec.to_mapping(), "configs": [config.to_dict() for config in plan.configs],
            "run_ids": list(plan.run_ids), "fingerprint": plan.fingerprint, "store": str(store),
            "uploads_dir": str(workspace.uploads_dir.resolve()), "workers": workers, "device": device,
            "plugins": loaded_plugins(), "cluster": cluster.to_mapping(),
            "search": None if plan.search is None else {"search_id": plan.search.search_id,
                                                        "mean_trials": plan.search.mean_trials}}, indent=1))
        started_at = now()
        try:
            with open(job_dir / "log.txt", "wb") as log:
                process = subprocess.Popen(
                    [sys.executable, "-m", "engine.jobs.worker", "supervise", str(job_dir)],
                    cwd=ROOT, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                    env={**os.environ, "PYTHONUNBUFFERED": "1"},
                )
        except OSError as exc:
            shutil.rmtree(job_dir, ignore_errors=True)
            raise EngineError(f"Could not start the sweep process ({exc}).") from exc
        _CHILDREN[process.pid] = process
        meta = {"job_id": job_id, "pid": process.pid, "pgid": process.pid, "start_ticks": start_ticks(process.pid),
                "started_at": started_at, "store": str(store), "dataset": plan.spec.dataset,
                "runs": [{"run_id": run_id, "label": run_label(config)}
                         for run_id, config in zip(plan.run_ids, plan.configs)],
                "cached_ids": cached, "workers": workers, "device": device}
        write_atomic(job_dir / "job.json", json.dumps(meta, indent=1))
    return job_id


def reap_children() -> None:
    """Collect our own finished children (no zombies): called by the readers before they look."""
    for pid, child in list(_CHILDREN.items()):
        if child.poll() is not None:
            _CHILDREN.pop(pid, None)


def cancel_job(job_id: str, workspace: Workspace, *, grace_seconds: float = CANCEL_GRACE_SECONDS) -> JobStatus:
    """Stop a running job: SIGTERM its process group (the worker keeps finished runs and exits), SIGKILL after
    `grace_seconds`. Every run finished before stays in the store; launching the same sweep finishes it."""
    job_dir = job_dir_of(workspace, job_id)
    meta = read_meta(job_dir)
    if meta is None:
        raise EngineError(f"No sweep job {job_id!r} next to the store {workspace.store_path}.")
    if is_alive(meta):
        write_atomic(job_dir / "cancelled", now() + "\n")
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(meta["pgid"], sig)
            except ProcessLookupError:
                break
            deadline = time.monotonic() + grace_seconds
            while is_alive(meta) and time.monotonic() < deadline:
                reap_children()
                time.sleep(0.1)
            if not is_alive(meta):
                break
    reap_children()
    return status_of(job_dir, meta)
