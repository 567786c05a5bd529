"""Training a plan: every pending run, in this process or in worker processes, each stored the moment it ends.

Runs that a technique can train together (equal `batch_key`) go to it as one group; every run is still
recorded on its own. Failed runs are stored with their error and the sweep goes on; a rerun retries only
those and whatever is missing.

What keeps a sweep from losing or doubling work:
- the store is checked writable (a row written and rolled back, room on its disk) before anything trains; a
  record the store refuses later (a full disk) stops the sweep and is kept in a file beside the store (or in
  the temp folder), written into the store by the next sweep on it;
- each group is claimed in the store just before it trains (engine.runner.claims), so sweeps sharing a store
  split the grid; runs another live sweep holds are waited for and reported as trained elsewhere;
- worker processes die with their parent (PR_SET_PDEATHSIG on Linux, and a thread watching the parent pid);
  a group whose worker process died is retried once in a fresh pool before its runs are recorded failed;
- a result with non-finite scores or metrics, or inputs holding non-finite values, is recorded failed with the
  reason, never ok (checked here, for every technique).
"""

from __future__ import annotations

import ctypes
import math
import multiprocessing
import multiprocessing.context
import os
import queue as queue_module
import signal
import sys
import threading
import time
from collections import deque
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from multiprocessing import spawn
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from engine.config import RunConfig, SweepReport
from engine.data import PreparedDataset
from engine.errors import ConfigError, DataError, EngineError, StoreError
from engine.measure import resolve_device
from engine.runner.artefacts import write_artefacts
from engine.runner.claims import Claims
from engine.runner.events import ProgressCallback, ProgressEvent
from engine.runner.plan import SweepPlan, prepared_data
from engine.runner.records import make_record
from engine.runner.store import ResultStore
from engine.techniques import scoring_tap
from engine.techniques.base import RunContext, RunResult
from engine.techniques.registry import create_technique, load_plugins, loaded_plugins

try:
    from multiprocessing import popen_spawn_posix
except ImportError:  # Windows: plain spawn (workers there end with their parent through the watch thread)
    popen_spawn_posix = None

Group = list[tuple[str, RunConfig]]
POLL_SECONDS = 0.5  # how often a sweep looks at its workers and at runs another sweep holds
WORKER_RETRIES = 1  # a group whose worker process died is tried this many more times in a fresh one
METRICS = ("accuracy", "balanced_accuracy", "roc_auc", "val_accuracy", "val_balanced_accuracy", "val_roc_auc",
           "decision_threshold")


class NonFiniteError(EngineError):
    """A run's inputs or outputs held NaN or infinite values: it is recorded failed, never ok."""


@dataclass(frozen=True)
class RunnerReport(SweepReport):
    elsewhere: int = 0  # runs of the plan that another sweep on the same store trained meanwhile


@dataclass(frozen=True)
class WorkerSetup:
    """What a worker process needs to rebuild the plan's data and techniques (all picklable)."""

    dataset: str
    train_subsample: int | None
    uploads_dir: Path | None
    fingerprint: str
    device: str
    store_path: str  # for the noise-calibration cache only
    plugins: tuple[str, ...]


def _groups(pending: Group) -> list[Group]:
    """Runs with equal (technique, batch_key) form one group; a None key means a group of one."""
    groups: dict[object, Group] = {}
    for run_id, config in pending:
        key = create_technique(config.technique).batch_key(config)
        groups.setdefault((config.technique, key) if key is not None else run_id, []).append((run_id, config))
    return list(groups.values())


def _spread(groups: list[Group], workers: int) -> list[Group]:
    """Each group of several runs cut into `workers` near-equal parts, so that worker processes share a group a
    technique trains together (batched DP-SGD: each part is still one pass)."""
    parts: list[Group] = []
    for group in groups:
        size = -(-len(group) // workers)
        parts.extend(group[at:at + size] for at in range(0, len(group), size))
    return parts


# --- non-finite values: one check that every technique goes through --------------------------------------
def nonfinite_inputs(data: PreparedDataset) -> str | None:
    """Why the prepared inputs cannot train a model (they hold NaN or infinite values), or None."""
    for name in ("x_train", "x_val", "x_test"):
        values = getattr(data, name, None)
        if values is None or not np.issubdtype(np.asarray(values).dtype, np.number):
            continue
        bad = int(np.size(values) - np.count_nonzero(np.isfinite(values)))
        if bad:
            return (f"The prepared inputs of {data.name} hold {bad} NaN or infinite value(s) in {name}: fix the data "
                    "(or its declared bounds) so every value is finite.")
    return None


def checked_outcome(outcome: RunResult | BaseException, scores_bad: tuple[int, int] | None):
    """The outcome, or a NonFiniteError when the model's test scores or the result's metrics are not finite."""
    if isinstance(outcome, BaseException):
        return outcome
    if scores_bad is not None:
        bad, size = scores_bad
        return NonFiniteError(f"The trained model's test scores hold {bad} NaN or infinite value(s) of {size}: the "
                              "training diverged (try a lower learning rate or a smaller clipping norm).")
    bad_metrics = [name for name in METRICS if isinstance(getattr(outcome, name, None), float)
                   and not math.isfinite(getattr(outcome, name))]
    if outcome.epsilon is not None and math.isnan(outcome.epsilon):
        bad_metrics.append("epsilon")
    if bad_metrics:
        return NonFiniteError(f"The run reported non-finite {', '.join(bad_metrics)}: it is not a result (the "
                              "training diverged, or the technique could not score its model).")
    return outcome


def _train_group(group: Group, data: PreparedDataset, device: str, noise_cache, on_progress=None) -> Iterator:
    """Train one group; yields (run_id, config, outcome), an outcome with non-finite values being an error."""
    problem = nonfinite_inputs(data)
    if problem:
        for run_id, config in group:
            yield run_id, config, NonFiniteError(problem)
        return
    ids = {config: run_id for run_id, config in group}
    technique = create_technique(group[0][1].technique)
    context = RunContext(device=device, noise_cache=noise_cache)
    reports: list[tuple[int, int] | None] = []  # each test-score matrix since the last run ended: (bad, size) or None

    def listen(scores) -> None:
        values = np.asarray(scores)
        bad = int(values.size - np.count_nonzero(np.isfinite(values))) if np.issubdtype(values.dtype, np.number) else 0
        reports.append((bad, int(values.size)) if bad else None)

    with scoring_tap.listening(listen):  # every technique scores its test rows through the tap
        for config, outcome in technique.run_batch([c for _, c in group], data, context=context,
                                                   on_progress=on_progress):
            outcome = checked_outcome(outcome, reports[-1] if reports else None)  # the last scores: the trained model's
            reports.clear()
            yield ids[config], config, outcome


# --- worker processes --------------------------------------------------------------------------------------
_EVENTS = None  # in a worker: the queue its started/progress messages go to (set by _init_worker)
PR_SET_PDEATHSIG = 1
# The first lines a spawned worker runs, before it imports anything of the sweep (seconds of torch and pandas):
# on Linux the kernel kills it the moment its parent dies, and a parent already gone ends it at once.
LIFELINE = ("try:\n import ctypes, os, signal\n ctypes.CDLL(None).prctl({option}, int(signal.SIGKILL), 0, 0, 0)\n"
            " os.getppid() == {parent} or os._exit(1)\nexcept (OSError, AttributeError):\n pass\n")
_LAUNCH_LOCK = threading.Lock()


class _LifelinePopen(popen_spawn_posix.Popen if popen_spawn_posix else object):
    """The spawn launcher, with LIFELINE put in front of the worker's bootstrap command."""

    def _launch(self, process_obj):
        with _LAUNCH_LOCK:
            plain = spawn.get_command_line

            def with_lifeline(**kwds):
                command = plain(**kwds)
                if "-c" in command:
                    at = command.index("-c") + 1
                    command[at] = LIFELINE.format(option=PR_SET_PDEATHSIG, parent=os.getpid()) + command[at]
                return command

            spawn.get_command_line = with_lifeline
            try:
                super()._launch(process_obj)
            finally:
                spawn.get_command_line = plain


class _LifelineProcess(multiprocessing.context.SpawnProcess):
    @staticmethod
    def _Popen(process_obj):
        return _LifelinePopen(process_obj)


class _LifelineContext(multiprocessing.context.SpawnContext):
    """spawn (never fork: forking a process that already ran torch threads can deadlock), with LIFELINE on Linux."""

    Process = _LifelineProcess


def _worker_context():
    return _LifelineContext() if sys.platform.startswith("linux") else multiprocessing.get_context("spawn")


def _die_with_parent(parent_pid: int) -> None:
    """In a worker: end when the sweep's process ends, however it ends (kill -9 included)."""
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent_pid:  # the parent died before the watch was set
        os._exit(1)

    def watch() -> None:  # the portable fallback: a parent that is gone leaves this process to another parent
        while os.getppid() == parent_pid:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _init_worker(events, parent_pid: int) -> None:
    global _EVENTS
    _EVENTS = events
    _die_with_parent(parent_pid)


def _worker_group(group: Group, setup: WorkerSetup):
    """In a worker process: train one group, telling the events queue when it starts and how far it is."""
    import torch

    torch.set_num_threads(1)  # one thread per worker process: workers x threads = cores
    load_plugins(setup.plugins)
    data = prepared_data(setup.dataset, setup.train_subsample, setup.uploads_dir)
    if data.fingerprint != setup.fingerprint:
        raise DataError(f"The data of {setup.dataset} changed while the sweep ran: rerun the sweep.")
    events = _EVENTS
    ids = {config: run_id for run_id, config in group}
    for run_id, _ in group:
        events.put(("started", run_id, 0.0))
    progress = lambda config, fraction: events.put(("progress", ids[config], fraction))  # noqa: E731
    with ResultStore(setup.store_path) as cache:
        return [(run_id, config, _portable(outcome) if isinstance(outcome, BaseException) else outcome)
                for run_id, config, outcome in _train_group(group, data, setup.device, cache, progress)]


def _portable(exc: BaseException) -> BaseException:
    """Exceptions cross the process boundary as EngineError/RuntimeError carrying their text."""
    return exc if isinstance(exc, EngineError) else RuntimeError(f"{type(exc).__name__}: {exc}")


def _end_workers(pool: ProcessPoolExecutor) -> None:
    """Stop a pool at once: its queued groups are cancelled and its processes killed (their runs stay pending)."""
    processes = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        if process.is_alive():
            process.kill()
    for process in processes:
        process.join(timeout=5)


# --- one sweep's bookkeeping -------------------------------------------------------------------------------
class _Sweep:
    """Claims, records and counts of one run_plan call."""

    def __init__(self, store: ResultStore, claims: Claims, data: PreparedDataset, device: str, notify, total: int,
                 done: int, groups: list[Group]):
        self.store, self.claims, self.data, self.device, self.notify = store, claims, data, device, notify
        self.total, self.done = total, done
        self.trained = self.failed = self.elsewhere = 0
        self.queue: deque[Group] = deque(groups)
        self.deferred: dict[str, RunConfig] = {}  # held by another live sweep: waited for
        self.configs = {run_id: config for group in groups for run_id, config in group}
        self.columns = set(store.column_names())
        self.started_at = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
        self.fault: StoreError | None = None  # the store refused a record: stop training
        self.unsaved: list[dict] = []

    def next_group(self) -> Group | None:
        """The next group's runs that this sweep could claim (others are deferred or counted as landed)."""
        while self.queue and self.fault is None:
            group = self.queue.popleft()
            outcome = self.claims.claim(run_id for run_id, _ in group)
            for run_id in outcome.landed:
                self._landed(run_id, None)
            held, mine = set(outcome.held), set(outcome.mine)
            self.deferred.update((run_id, config) for run_id, config in group if run_id in held)
            group = [(run_id, config) for run_id, config in group if run_id in mine]
            if group:
                return group
        return None

    def poll_deferred(self) -> bool:
        """Runs another sweep held: count those recorded since, take back those it let go. True if any moved."""
        if not self.deferred or self.fault is not None:
            return False
        held = self.claims.held_elsewhere(self.deferred)
        free = [run_id for run_id in self.deferred if run_id not in held]
        if not free:
            return False
        records = {record["run_id"]: record for record in self.store.records(run_ids=free)}
        retake = []
        for run_id in free:
            config = self.deferred.pop(run_id)
            record = records.get(run_id)
            if record is not None and (record["status"] == "ok" or (record.get("created_at") or "") >= self.started_at):
                self._landed(run_id, record)
            else:  # its sweep stopped (or died) before recording it: train it here
                retake.append((run_id, config))
        self.queue.extend(_groups(retake))
        return True

    def wait_for_others(self) -> None:
        if not self.poll_deferred():
            time.sleep(POLL_SECONDS)  # another process holds the runs: look again shortly

    def _landed(self, run_id: str, record: dict | None) -> None:
        config = self.configs[run_id]
        self.done += 1
        if record is None or record["status"] == "ok":
            self.elsewhere += 1
            self.notify(ProgressEvent("elsewhere", run_id, config, self.done, self.total))
        else:
            self.failed += 1
            self.notify(ProgressEvent("failed", run_id, config, self.done, self.total,
                                      error=f"in another sweep: {record.get('error')}"))

    def record(self, run_id: str, config: RunConfig, outcome) -> None:
        if isinstance(outcome, RunResult) and outcome.artefacts:  # files the run releases (engine.runner.artefacts)
            try:
                write_artefacts(Path(self.store.path).parent, run_id, outcome.artefacts)
            except StoreError as exc:  # recorded as failed, saying why: never a record without its table
                outcome = exc
        record = make_record(run_id, config, self.data, outcome, self.device, self.columns)
        record["extra"] = {**(record.get("extra") or {}), "trained_by": self.claims.owner}
        if self.fault is None:
            try:
                self.store.write(record)
            except StoreError as exc:
                self.fault = exc
        if self.fault is not None:
            self.unsaved.append(record)  # kept in a file by run_plan; the next sweep writes it
            return
        self.claims.release([run_id])
        self.done += 1
        if isinstance(outcome, BaseException):
            self.failed += 1
            self.notify(ProgressEvent("failed", run_id, config, self.done, self.total, error=str(outcome)))
        else:
            self.trained += 1
            self.notify(ProgressEvent("finished", run_id, config, self.done, self.total, fraction=1.0,
                                      result=outcome))

    def raise_fault(self) -> None:
        if self.fault is None:
            return
        if self.unsaved:
            kept = self.store.save_unsaved(self.unsaved)
            where = (f" {len(self.unsaved)} finished run(s) are kept in {kept} and written to the store by the next "
                     "sweep on it." if kept else f" {len(self.unsaved)} finished run(s) could not be kept anywhere.")
            raise StoreError(f"{self.fault}{where}") from self.fault
        raise self.fault


def _train_here(sweep: _Sweep) -> None:
    while sweep.fault is None:
        group = sweep.next_group()
        if group is None:
            if not sweep.deferred:
                return
            sweep.wait_for_others()
            continue
        ids = {config: run_id for run_id, config in group}
        for run_id, config in group:
            sweep.notify(ProgressEvent("started", run_id, config, sweep.done, sweep.total))
        progress = lambda config, fraction: sweep.notify(  # noqa: E731
            ProgressEvent("progress", ids[config], config, sweep.done, sweep.total, fraction))
        for run_id, config, outcome in _train_group(group, sweep.data, sweep.device, sweep.store, progress):
            sweep.record(run_id, config, outcome)


def _train_in_workers(sweep: _Sweep, setup: WorkerSetup, workers: int) -> None:
    context = _worker_context()
    size = workers
    attempts: dict[str, int] = {}

    def fresh_pool():
        events = context.Queue()  # a queue per pool: a killed worker may have left the old one locked
        return ProcessPoolExecutor(max_workers=size, mp_context=context, initializer=_init_worker,
                                   initargs=(events, os.getpid())), events

    def relay(events) -> None:  # the workers' started/progress messages, as events
        while True:
            try:
                kind, run_id, fraction = events.get_nowait()
            except (queue_module.Empty, OSError, ValueError, EOFError):
                return
            sweep.notify(ProgressEvent(kind, run_id, sweep.configs[run_id], sweep.done, sweep.total, fraction))

    def collect(future: Future, group: Group, crashed: list[Group]) -> None:
        try:
            results = future.result()
        except BrokenProcessPool:
            crashed.append(group)
            return
        except Exception as exc:
            results = [(run_id, config, _portable(exc)) for run_id, config in group]
        for run_id, config, outcome in results:
            sweep.record(run_id, config, outcome)

    pool, events = fresh_pool()
    running: dict[Future, Group] = {}
    try:
        while True:
            while sweep.fault is None and len(running) < size:
                group = sweep.next_group()
                if group is None:
                    break
                running[pool.submit(_worker_group, group, setup)] = group
            if not running:
                if sweep.fault is not None or not sweep.deferred:
                    return
                sweep.wait_for_others()
                continue
            finished, _ = wait(running, timeout=POLL_SECONDS, return_when=FIRST_COMPLETED)
            relay(events)
            crashed: list[Group] = []
            for future in finished:
                collect(future, running.pop(future), crashed)
            if crashed:  # a worker died: every group of this pool ends (they cannot finish on a broken pool)
                wait(running, timeout=30)
                for future, group in list(running.items()):
                    collect(future, group, crashed)
                running.clear()
                _end_workers(pool)
                retry: Group = []
                for group in crashed:
                    for run_id, config in group:
                        attempts[run_id] = attempts.get(run_id, 0) + 1
                        if attempts[run_id] > WORKER_RETRIES:
                            sweep.record(run_id, config, EngineError(
                                "The worker process training this run died twice (killed, or out of memory): rerun "
                                "the sweep; with {workers} 1 the run trains in the sweep's own process.",
                                mentions=["workers"]))
                        else:
                            retry.append((run_id, config))
                sweep.queue.extendleft(reversed(_groups(retry)))  # still claimed by this sweep: claimed again at once
                pool, events = fresh_pool()
            sweep.poll_deferred()
    finally:
        if running:  # interrupted: what the workers train now would not be recorded
            _end_workers(pool)
        else:
            pool.shutdown(wait=True)


# Trains a sweep's groups somewhere other than this machine (engine.runner.ray_backend), recording each through
# the sweep (claims, records, counts) in this process: the store keeps its one writer.
Trainer = Callable[["_Sweep", WorkerSetup], None]


def run_plan(plan: SweepPlan, *, store: ResultStore, uploads_dir: Path | None, workers: int = 1,
             device: str = "auto", on_progress: ProgressCallback | None = None,
             trainer: Trainer | None = None) -> RunnerReport:
    """Run every pending run of `plan`, writing each to `store` as soon as it ends (through `trainer` if given)."""
    if not (isinstance(workers, int) and workers >= 1):
        raise ConfigError(f"workers must be a whole number >= 1, got {workers!r}.", setting="workers")
    resolved_device = resolve_device(device)
    store.check_writable()  # before anything trains: a read-only, full or foreign store fails here
    store.recover_unsaved()  # runs an earlier sweep finished but could not store
    data = plan.data or prepared_data(plan.spec.dataset, plan.spec.train_subsample, uploads_dir)
    if plan.search is not None:  # kept first, so that a rerun of the spec resumes this very draw
        store.put_search(plan.search.search_id, plan.search.mean_trials,
                         [config.to_dict() for config in plan.search.trials],
                         datetime.now(timezone.utc).isoformat(timespec="milliseconds"))
    cached = frozenset(store.completed_ids(plan.run_ids))  # the store may have moved on since planning
    pending = [(run_id, config) for run_id, config in zip(plan.run_ids, plan.configs) if run_id not in cached]
    total, done = len(plan.configs), 0
    notify = on_progress or (lambda event: None)
    for run_id, config in zip(plan.run_ids, plan.configs):
        if run_id in cached:
            done += 1
            notify(ProgressEvent("cached", run_id, config, done, total))
    interrupted = False
    groups = _groups(pending)
    if trainer is None and workers > 1 and resolved_device != "cuda":
        groups = _spread(groups, workers)  # worker processes on CPU share each batched group
    claims = Claims(store.path)
    claims.heartbeat()
    sweep = _Sweep(store, claims, data, resolved_device, notify, total, done, groups)
    setup = WorkerSetup(dataset=plan.spec.dataset, train_subsample=plan.spec.train_subsample,
                        uploads_dir=uploads_dir, fingerprint=data.fingerprint, device=resolved_device,
                        store_path=str(store.path), plugins=tuple(loaded_plugins()))
    try:
        if trainer is not None:
            trainer(sweep, setup)
        elif workers == 1 or resolved_device == "cuda" or len(pending) <= 1:
            _train_here(sweep)
        else:
            _train_in_workers(sweep, setup, min(workers, len(groups)))
    except KeyboardInterrupt:
        interrupted = True
    finally:
        claims.close()  # unfinished runs are free for the next sweep at once
    sweep.raise_fault()
    return RunnerReport(total=total, cached=len(cached), trained=sweep.trained, failed=sweep.failed,
                        run_ids=plan.run_ids, interrupted=interrupted, elsewhere=sweep.elsewhere)
