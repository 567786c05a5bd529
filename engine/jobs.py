"""Sweeps as background jobs: the dashboard starts `frontier sweep` detached and reads its progress back.

A job is a folder beside the result store, `<store folder>/jobs/<job_id>/`:

    spec.yaml   the sweep spec (SweepSpec.to_mapping()), read by `frontier sweep --config`
    job.json    job_id, pid, pgid, started_at, store, spec, runs (run_id + label), cached_ids, workers, device, command
    log.txt     the command's stdout and stderr
    exit_code   the command's exit status, written by the runner (`python -m engine.jobs run`) when it exits
    cancelled   written by cancel_job

Everything job_status reports comes from these files, the process table and the store (a run is done when
its record is there), so a browser refresh, another tab or a restarted dashboard sees the same progress.
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
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path

import yaml

from engine.config import RunConfig, SweepSpec
from engine.errors import EngineError
from engine.store import ResultStore, resolve_store_path

# The first-visit demo: non-private MLP + DP-SGD at five budgets on adult, PRV accountant, 10 epochs, 6 runs.
# Timing on the 2-core CPU machine (`frontier sweep --workers 1`, and launched from the Sweep page): 8 min 18 s
# and 8 min 30 s while two or three other jobs shared the two cores (baseline 17-24 s, DP-SGD 54-89 s a run).
# Alone on the cores, GUIDE section 4's ~9 s per DP-SGD run plus ~5 s per PRV calibration and ~8 s start-up
# give about 1.5-2 min: DEMO_SECONDS is that figure, shown next to the demo button.
DEMO_SPEC = SweepSpec(dataset="adult", techniques=("baseline", "dp-sgd"), model="mlp",
                      epsilons=(0.1, 0.5, 1.0, 2.0, 8.0), clipping_norms=(1.0,), seeds=(0,))
DEMO_SECONDS = 120

STATES = ("running", "finished", "failed", "cancelled", "interrupted")
STARTUP_SECONDS = 8.0  # a fresh process: import torch and Opacus, load and prepare the data
RUN_OVERHEAD_SECONDS = 1.0  # per run besides training: model set-up, evaluation, writing the record
CALIBRATION_SECONDS = {"prv": 5.0, "rdp": 0.5}  # noise calibration per new target epsilon (GUIDE section 4)
# Seconds per training row per epoch on 2 idle CPU cores, used only when the store holds no comparable run to
# learn from. Tables: adult MLP 64, batch 512 (GUIDE section 4: ~9 s for 10 DP-SGD epochs; the baseline
# measured 2.8x faster side by side here).
# Images: mnist CNN, scaled from adult by a side-by-side run on this machine (1 epoch each, same load: the CNN
# cost 15x the MLP per row without privacy, 7.6x with DP-SGD).
DEFAULT_ROW_EPOCH_SECONDS = {("baseline", "tabular"): 1.0e-5, ("dp-sgd", "tabular"): 3.0e-5,
                             ("baseline", "image"): 1.5e-4, ("dp-sgd", "image"): 2.3e-4}
CANCEL_GRACE_SECONDS = 10.0  # SIGTERM, then SIGKILL after this long
ROOT = Path(__file__).resolve().parents[1]  # where `python -m engine.cli` imports this very engine

_CHILDREN: dict[int, subprocess.Popen] = {}  # processes this process started, so they can be reaped


class JobRunningError(EngineError):
    """A sweep is already running on this result store."""


@dataclass(frozen=True)
class SweepEstimate:
    total: int  # runs in the grid
    cached: int  # already in the store (successful)
    to_train: int
    seconds: float  # rough wall time for the runs to train
    basis: str  # what the estimate is based on, in words


@dataclass(frozen=True)
class RunState:
    """One run of a job as the page lists it. status: cached | ok | failed | training | queued."""

    run_id: str
    label: str
    status: str
    epsilon: float | None = None
    accuracy: float | None = None
    error: str | None = None


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
    failed_runs: list[tuple[str, str]] = field(default_factory=list)  # (config summary, error)
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


def run_label(config: RunConfig) -> str:
    """'dp-sgd · mlp · ε 0.5 · C 1 · seed 0'."""
    parts = [config.technique, config.model]
    if config.target_epsilon is not None:
        parts.append(f"ε {config.target_epsilon:g}")
    if config.max_grad_norm is not None:
        parts.append(f"C {config.max_grad_norm:g}")
    return " · ".join([*parts, f"seed {config.seed}"])


def cpu_count() -> int:
    """Cores this process may use (a container's limit, not the host's)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _secs(seconds: float) -> str:
    return "under 0.1 s" if seconds < 0.1 else f"{seconds:.1f} s" if seconds < 10 else f"{seconds:.0f} s"


# --- estimate -------------------------------------------------------------------------------------------
def estimate_sweep(spec: SweepSpec, store_path=None, *, uploads_dir: Path | None = None, workers: int = 1) -> SweepEstimate:
    """How many runs `spec` is, how many the store already holds, and roughly how long the rest take.

    Per technique, training time is the mean train_seconds of stored successful runs with the same
    dataset, technique, model and epochs; without such runs, DEFAULT_ROW_EPOCH_SECONDS x rows x epochs.
    Raises ConfigError for an invalid spec. Never creates the store.
    """
    from engine.data import get_dataset_info
    from engine.privacy.accounting import steps_and_sample_rate
    from engine.privacy.calibration import calibration_key
    from engine.sweep import plan_sweep

    plan = plan_sweep(spec, None, uploads_dir=uploads_dir)
    path = resolve_store_path(store_path)
    store = ResultStore(path, create=False) if path.exists() else None
    try:
        cached = store.completed_ids(plan.run_ids) if store else set()
        pending = [config for run_id, config in zip(plan.run_ids, plan.configs) if run_id not in cached]
        kind = "image" if get_dataset_info(spec.dataset, uploads_dir).is_image else "tabular"
        seconds, basis, calibrations = 0.0, [], set()
        for technique in dict.fromkeys(config.technique for config in pending):
            runs = [c for c in pending if c.technique == technique]
            model = runs[0].model
            past = [r["train_seconds"] for r in (store.records(dataset=spec.dataset, technique=technique, status="ok")
                                                 if store else [])
                    if r["model"] == model and r["epochs"] == spec.epochs and r["train_seconds"] is not None]
            if past:
                per_run = sum(past) / len(past)
                basis.append(f"{technique} {_secs(per_run)} a run (the mean of {len(past)} stored run(s) like it)")
            else:
                rate = DEFAULT_ROW_EPOCH_SECONDS.get((technique, kind), DEFAULT_ROW_EPOCH_SECONDS[("dp-sgd", kind)])
                per_run = rate * plan.n_train * spec.epochs
                basis.append(f"{technique} {_secs(per_run)} a run (a default for {plan.n_train:,} rows × "
                             f"{spec.epochs} epochs on 2 CPU cores)")
            seconds += len(runs) * (per_run + RUN_OVERHEAD_SECONDS)
            for config in runs:
                if config.target_epsilon is not None and config.accountant in CALIBRATION_SECONDS:
                    steps, sample_rate = steps_and_sample_rate(plan.n_train, config.batch_size, config.epochs)
                    key = calibration_key(target_epsilon=config.target_epsilon, delta=config.delta, sample_rate=sample_rate,
                                          steps=steps, accountant=config.accountant)
                    if not (store and store.get_noise(key) is not None):
                        calibrations.add((key, config.accountant))
    finally:
        if store:
            store.close()
    seconds += sum(CALIBRATION_SECONDS[accountant] for _, accountant in calibrations)
    if pending:
        seconds = STARTUP_SECONDS + seconds / max(1, min(workers, cpu_count(), len(pending)))
        if calibrations:
            basis.append(f"{len(calibrations)} noise calibration(s)")
        basis.append(f"{STARTUP_SECONDS:.0f} s to start" + (f"; {workers} runs at a time" if workers > 1 else ""))
    return SweepEstimate(total=len(plan.run_ids), cached=len(cached), to_train=len(pending), seconds=seconds,
                         basis="; ".join(basis) if basis else "nothing to train: every run is in the store")


# --- starting -------------------------------------------------------------------------------------------
def _jobs_dir(store_path) -> Path:
    return resolve_store_path(store_path).resolve().parent / "jobs"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")  # the store's created_at format


def _write_atomic(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(text)
    os.replace(temporary, path)


def start_sweep_job(spec: SweepSpec, *, store_path=None, uploads_dir: Path | None = None, workers: int = 1,
                    device: str = "auto") -> str:
    """Check `spec`, then run `frontier sweep` on it in a detached process; returns the job id.

    `uploads_dir` must be the `datasets/` folder beside the store: the detached `frontier sweep --store` looks there.

    Raises ConfigError (invalid spec, workers, device) or JobRunningError before anything is written.
    """
    from engine.measure import resolve_device
    from engine.sweep import plan_sweep

    plan = plan_sweep(spec, None, uploads_dir=uploads_dir)
    if not (isinstance(workers, int) and workers >= 1):
        raise EngineError(f"workers must be an integer >= 1, got {workers!r}.")
    resolve_device(device)  # ConfigError for cuda without a GPU or an unknown device
    store = resolve_store_path(store_path).resolve()
    folder = _jobs_dir(store)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".launch.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two tabs pressing Launch at once start one job
        running = active_job(store)
        if running is not None:
            raise JobRunningError(f"A sweep is already running on this store (job {running.job_id}, {running.done} "
                                  f"of {running.total} runs): wait for it to finish or cancel it.")
        if store.exists():
            with ResultStore(store, create=False) as opened:
                cached = sorted(opened.completed_ids(plan.run_ids))
        else:
            cached = []
        job_id = f"{datetime.now():%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"
        job_dir = folder / job_id
        job_dir.mkdir()
        (job_dir / "spec.yaml").write_text(yaml.safe_dump(spec.to_mapping(), sort_keys=False))
        command = [sys.executable, "-m", "engine.cli", "sweep", "--config", str(job_dir / "spec.yaml"),
                   "--store", str(store), "--workers", str(workers), "--device", device, "--quiet"]
        started_at = _now()
        try:
            with open(job_dir / "log.txt", "wb") as log:
                process = subprocess.Popen(
                    [sys.executable, "-m", "engine.jobs", "run", str(job_dir), "--", *command],
                    cwd=ROOT, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                    env={**os.environ, "PYTHONUNBUFFERED": "1"},
                )
        except OSError as exc:
            shutil.rmtree(job_dir, ignore_errors=True)
            raise EngineError(f"Could not start the sweep process ({exc}).") from exc
        _CHILDREN[process.pid] = process
        meta = {"job_id": job_id, "pid": process.pid, "pgid": process.pid, "start_ticks": _start_ticks(process.pid),
                "started_at": started_at, "store": str(store), "spec": spec.to_mapping(),
                "runs": [{"run_id": run_id, "label": run_label(config)}
                         for run_id, config in zip(plan.run_ids, plan.configs)],
                "cached_ids": cached, "workers": workers, "device": device, "command": command}
        _write_atomic(job_dir / "job.json", json.dumps(meta, indent=1))
    return job_id


def _run(job_dir: Path, command: list[str]) -> int:
    """The detached runner: run the CLI, then record its exit status (which a later page rerun cannot wait for)."""
    child = subprocess.Popen(command, cwd=ROOT)

    def forward(signum, frame):  # a SIGTERM to this process alone still stops the sweep cleanly
        if child.poll() is None:
            child.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    code = child.wait()
    _write_atomic(job_dir / "exit_code", f"{code}\n")
    return code


# --- reading --------------------------------------------------------------------------------------------
def _start_ticks(pid: int) -> int | None:
    """The process's start time (clock ticks since boot): tells our process from a later one reusing its pid."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return None if fields[0] == "Z" else int(fields[19])


def _alive(meta: dict) -> bool:
    pid = meta["pid"]
    child = _CHILDREN.get(pid)
    if child is not None and child.poll() is not None:  # reaps our own child: no zombie left behind
        _CHILDREN.pop(pid, None)
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    if not Path("/proc").is_dir():
        return True
    ticks = _start_ticks(pid)
    return ticks is not None and (meta.get("start_ticks") is None or ticks == meta["start_ticks"])


def _read_meta(job_dir: Path) -> dict | None:
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


def _log_tail(path: Path, lines: int = 25) -> str:
    try:
        with open(path, "rb") as log:
            log.seek(max(0, log.seek(0, os.SEEK_END) - 8000))
            text = log.read().decode(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.replace("\r", "\n").splitlines()[-lines:])


def _status(job_dir: Path, meta: dict) -> JobStatus:
    alive = _alive(meta)
    exit_code = _read_int(job_dir / "exit_code")
    cancelled = (job_dir / "cancelled").exists()
    store = Path(meta["store"])
    records = {}
    if store.exists():
        try:
            with ResultStore(store, create=False) as opened:
                records = {r["run_id"]: r for r in opened.records(run_ids=[run["run_id"] for run in meta["runs"]])}
        except EngineError:
            records = {}
    cached_ids, started = set(meta["cached_ids"]), meta["started_at"]
    runs = []
    for run in meta["runs"]:
        record = records.get(run["run_id"])
        if run["run_id"] in cached_ids:
            status = "cached"
        elif record and record["status"] == "ok":
            status = "ok"
        elif record and record["status"] == "failed" and (record["created_at"] or "") >= started:
            status = "failed"  # a failure from an earlier sweep is retried, so it is not done yet
        else:
            status = "queued"
        runs.append(RunState(run["run_id"], run["label"], status, error=record.get("error") if status == "failed" else None,
                             epsilon=record.get("epsilon") if record else None,
                             accuracy=record.get("accuracy") if record else None))
    log_tail = _log_tail(job_dir / "log.txt")
    queued = [index for index, run in enumerate(runs) if run.status == "queued"]
    done = len(runs) - len(queued)
    if alive:
        state = "cancelled" if cancelled else "running"
    elif cancelled and exit_code != 0:
        state = "cancelled"
    elif exit_code == 0 or (exit_code == 1 and not queued):  # 1: the sweep ended with failed runs
        state = "finished"
    elif exit_code is None or exit_code < 0 or exit_code == 130:
        state = "interrupted"  # killed, or the machine or dashboard went down, before the CLI could finish
    else:
        state = "failed"
    current = ""
    if state == "running":
        if "to train (store:" not in log_tail:  # the CLI prints this line once its checks are done
            current = "starting: loading libraries and data"
        elif queued:
            # Runs train in plan order (each worker takes the next one), so the first queued are in training.
            training = queued[:max(1, int(meta.get("workers", 1)))]
            for index in training:
                runs[index] = replace(runs[index], status="training")
            current = "training " + ", ".join(runs[index].label for index in training)
        else:
            current = "writing the last results"
    finished_at = None
    if state != "running":
        finished_at = _mtime(job_dir / "exit_code") or _mtime(job_dir / "cancelled") or _mtime(job_dir / "log.txt")
    failed = [run for run in runs if run.status == "failed"]
    return JobStatus(
        job_id=meta["job_id"], state=state, total=len(runs), done=done, cached_at_start=len(cached_ids),
        failed=len(failed), running_since=datetime.fromisoformat(started), finished_at=finished_at,
        failed_runs=[(run.label, run.error or "") for run in failed], current=current, log_tail=log_tail,
        dataset=meta["spec"].get("dataset", ""), workers=int(meta.get("workers", 1)), exit_code=exit_code,
        runs=tuple(runs),
    )


def _job_dirs(store_path) -> list[tuple[Path, dict]]:
    """(folder, job.json) of every job on this store, newest first."""
    store = str(resolve_store_path(store_path).resolve())
    folder = _jobs_dir(store_path)
    found = []
    for job_dir in sorted(folder.iterdir(), reverse=True) if folder.is_dir() else ():
        meta = _read_meta(job_dir) if job_dir.is_dir() else None
        if meta is not None and meta.get("store") == store:  # stores sharing a folder share jobs/
            found.append((job_dir, meta))
    return found


def job_status(job_id: str, store_path=None) -> JobStatus:
    meta = _read_meta(_jobs_dir(store_path) / job_id)
    if meta is None:
        raise EngineError(f"No sweep job {job_id!r} next to the store {resolve_store_path(store_path)}.")
    return _status(_jobs_dir(store_path) / job_id, meta)


def list_jobs(store_path=None, *, limit: int | None = None) -> list[JobStatus]:
    """Jobs on this store, newest first."""
    return [_status(job_dir, meta) for job_dir, meta in _job_dirs(store_path)[:limit]]


def active_job(store_path=None) -> JobStatus | None:
    """The job running on this store, if any."""
    for job_dir, meta in _job_dirs(store_path):
        if _alive(meta):
            return _status(job_dir, meta)
    return None


def latest_job(store_path=None) -> JobStatus | None:
    """The running job, else the newest one: what a page shows after a refresh or in another tab."""
    running = active_job(store_path)
    if running is not None:
        return running
    newest = list_jobs(store_path, limit=1)
    return newest[0] if newest else None


# --- cancelling -----------------------------------------------------------------------------------------
def cancel_job(job_id: str, store_path=None, *, grace_seconds: float = CANCEL_GRACE_SECONDS) -> JobStatus:
    """Stop a running job: SIGTERM its process group (the CLI keeps finished runs and exits), SIGKILL after
    `grace_seconds`. Every run finished before stays in the store; launching the same sweep finishes it."""
    job_dir = _jobs_dir(store_path) / job_id
    meta = _read_meta(job_dir)
    if meta is None:
        raise EngineError(f"No sweep job {job_id!r} next to the store {resolve_store_path(store_path)}.")
    if _alive(meta):
        _write_atomic(job_dir / "cancelled", _now() + "\n")
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(meta["pgid"], sig)
            except ProcessLookupError:
                break
            deadline = time.monotonic() + grace_seconds
            while _alive(meta) and time.monotonic() < deadline:
                time.sleep(0.1)
            if not _alive(meta):
                break
    return _status(job_dir, meta)


if __name__ == "__main__":  # python -m engine.jobs run JOB_DIR -- COMMAND...
    if len(sys.argv) < 5 or sys.argv[1] != "run" or sys.argv[3] != "--":
        sys.exit("usage: python -m engine.jobs run JOB_DIR -- COMMAND...")
    sys.exit(_run(Path(sys.argv[2]), sys.argv[4:]))
