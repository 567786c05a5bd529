"""Training a plan: every pending run, in this process or in worker processes, each stored the moment it ends.

Runs that a technique can train together (equal `batch_key`) go to it as one group; every run is still
recorded on its own. Failed runs are stored with their error and the sweep goes on; a rerun retries only
those and whatever is missing.
"""

from __future__ import annotations

import multiprocessing
import queue as queue_module
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

from engine.config import RunConfig, SweepReport
from engine.data import PreparedDataset
from engine.errors import ConfigError, DataError, EngineError
from engine.measure import resolve_device
from engine.runner.events import ProgressCallback, ProgressEvent
from engine.runner.plan import SweepPlan, prepared_data
from engine.runner.records import make_record
from engine.runner.store import ResultStore
from engine.techniques.base import RunContext
from engine.techniques.registry import create_technique, load_plugins, loaded_plugins

Group = list[tuple[str, RunConfig]]


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


def _train_group(group: Group, data: PreparedDataset, device: str, noise_cache, on_progress=None) -> Iterator:
    """Train one group; yields (run_id, config, outcome)."""
    ids = {config: run_id for run_id, config in group}
    technique = create_technique(group[0][1].technique)
    context = RunContext(device=device, noise_cache=noise_cache)
    for config, outcome in technique.run_batch([c for _, c in group], data, context=context, on_progress=on_progress):
        yield ids[config], config, outcome


def _worker_group(group: Group, setup: WorkerSetup, events):
    """In a worker process: train one group, telling `events` (a queue) when it starts and how far it is."""
    import torch

    torch.set_num_threads(1)  # one thread per worker process: workers x threads = cores
    load_plugins(setup.plugins)
    data = prepared_data(setup.dataset, setup.train_subsample, setup.uploads_dir)
    if data.fingerprint != setup.fingerprint:
        raise DataError(f"The data of {setup.dataset} changed while the sweep ran: rerun the sweep.")
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


def run_plan(plan: SweepPlan, *, store: ResultStore, uploads_dir: Path | None, workers: int = 1,
             device: str = "auto", on_progress: ProgressCallback | None = None) -> SweepReport:
    """Run every pending run of `plan`, writing each to `store` as soon as it ends."""
    if not (isinstance(workers, int) and workers >= 1):
        raise ConfigError(f"workers must be a whole number >= 1, got {workers!r}.", setting="workers")
    resolved_device = resolve_device(device)
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
    trained = failed = 0
    interrupted = False
    columns = set(store.column_names())

    def record(run_id, config, outcome):
        nonlocal done, trained, failed
        store.write(make_record(run_id, config, data, outcome, resolved_device, columns))
        done += 1
        if isinstance(outcome, BaseException):
            failed += 1
            notify(ProgressEvent("failed", run_id, config, done, total, error=str(outcome)))
        else:
            trained += 1
            notify(ProgressEvent("finished", run_id, config, done, total, fraction=1.0, result=outcome))

    groups = _groups(pending)
    try:
        if workers == 1 or resolved_device == "cuda" or len(pending) <= 1:
            ids = {config: run_id for run_id, config in pending}
            for group in groups:
                for run_id, config in group:
                    notify(ProgressEvent("started", run_id, config, done, total))
                progress = lambda config, fraction: notify(ProgressEvent("progress", ids[config], config, done, total, fraction))  # noqa: E731
                for run_id, config, outcome in _train_group(group, data, resolved_device, store, progress):
                    record(run_id, config, outcome)
        else:
            setup = WorkerSetup(dataset=plan.spec.dataset, train_subsample=plan.spec.train_subsample,
                                uploads_dir=uploads_dir, fingerprint=data.fingerprint, device=resolved_device,
                                store_path=str(store.path), plugins=tuple(loaded_plugins()))
            configs = dict(pending)

            def relay(events) -> None:  # the workers' started/progress messages, as events
                while True:
                    try:
                        kind, run_id, fraction = events.get_nowait()
                    except queue_module.Empty:
                        return
                    notify(ProgressEvent(kind, run_id, configs[run_id], done, total, fraction))

            # spawn, not fork: forking a process that already ran torch threads can deadlock.
            context = multiprocessing.get_context("spawn")
            with context.Manager() as manager, ProcessPoolExecutor(max_workers=min(workers, len(groups)),
                                                                   mp_context=context) as pool:
                events = manager.Queue()
                futures = {pool.submit(_worker_group, group, setup, events): group for group in groups}
                waiting = set(futures)
                try:
                    while waiting:
                        finished, waiting = wait(waiting, timeout=0.5, return_when=FIRST_COMPLETED)
                        relay(events)
                        for future in finished:
                            try:
                                results = future.result()
                            except Exception as exc:  # the worker itself died: fail its whole group
                                results = [(run_id, config, _portable(exc)) for run_id, config in futures[future]]
                            for run_id, config, outcome in results:
                                record(run_id, config, outcome)
                except KeyboardInterrupt:
                    pool.shutdown(wait=False, cancel_futures=True)
                    raise
    except KeyboardInterrupt:
        interrupted = True
    return SweepReport(total=total, cached=len(cached), trained=trained, failed=failed,
                       run_ids=plan.run_ids, interrupted=interrupted)
