"""Training a sweep on a Ray cluster: each group of runs is one Ray task; this process alone writes the store.

The runner (engine.runner.execute) plans, claims and records as it does locally; this module only replaces where
the groups train:
- a group a technique trains together (batched DP-SGD) is cut into one part per task slot, so every node trains;
- the prepared data goes to the cluster once (ray.put); each task gets a reference, so no node reads the data
  files or opens the store (a node needs the project installed, nothing else);
- calibrated noise multipliers are answered once here (engine.runner.shared_noise) and handed to every task;
- each task declares its resources (ClusterSettings: CPUs, a GPU or a fraction of one); tasks with a GPU train
  on CUDA;
- results come back as each task ends (a ray.wait loop) and are recorded here the moment they arrive; a task
  lost with its node or worker process is retried by Ray (`max_retries`); a run is recorded once even if a
  retried task returned it twice;
- a sweep stopped here (Ctrl-C, a background job's Cancel: SIGTERM) cancels its tasks (ray.cancel), and their
  runs stay pending for the next sweep.
Importing this module does not import ray; connecting does, and says how to install it when it is missing.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import threading
from collections import deque
from typing import Any

from engine.errors import EngineError
from engine.runner.cluster import ClusterSettings, require_ray
from engine.runner.events import ProgressEvent
from engine.runner.execute import POLL_SECONDS, Group, Trainer, WorkerSetup, _portable, _Sweep, _train_group
from engine.runner.shared_noise import SharedNoise, calibrate_once
from engine.techniques.registry import load_plugins

FORWARDED_PREFIX = "FRONTIER_"  # engine switches (FRONTIER_BATCHED_DP_SGD) reach the tasks as they reach workers


def train_group_task(group: Group, data, setup: WorkerSetup, noise: dict[str, float], environment: dict[str, str],
                     threads: int) -> tuple[list, dict[str, float]]:
    """In a Ray worker: train one group; returns its (run_id, config, outcome) list and the noise it calibrated."""
    import torch

    os.environ.update(environment)
    torch.set_num_threads(threads)  # the task's reserved CPUs
    load_plugins(setup.plugins)
    cache = SharedNoise(noise)
    results = [(run_id, config, _portable(outcome) if isinstance(outcome, BaseException) else outcome)
               for run_id, config, outcome in _train_group(group, data, setup.device, cache)]
    return results, cache.computed


def trainer_for(settings: ClusterSettings) -> Trainer | None:
    """What run_plan trains through for these settings (None: this machine)."""
    if not settings.on_ray:
        return None
    return lambda sweep, setup: train_on_ray(sweep, setup, settings)


def connect(settings: ClusterSettings) -> tuple[Any, bool]:
    """(the ray module, whether this call connected and so must disconnect). A process already connected
    (a notebook, a test) keeps its connection."""
    require_ray()
    import ray

    if ray.is_initialized():
        return ray, False
    # Ray's core installs its own SIGTERM handler, which ends the process at once: a background job's Cancel would
    # then skip the sweep's ray.cancel and its report. This process's handlers are put back after connecting.
    handlers = {number: signal.getsignal(number) for number in (signal.SIGTERM, signal.SIGINT)} \
        if threading.current_thread() is threading.main_thread() else {}
    try:
        ray.init(address=settings.ray_address, log_to_driver=False, logging_level=logging.WARNING)
    except (ConnectionError, ValueError, RuntimeError, TimeoutError) as exc:
        where = settings.ray_address or "$RAY_ADDRESS or this machine"
        detail = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise EngineError(f"Could not reach the Ray cluster at {where} ({detail}): check {{ray_address}} "
                          "(`ray status` on the head node prints it).", mentions=["ray_address"]) from exc
    for number, handler in handlers.items():
        if handler is not None:
            signal.signal(number, handler)
    return ray, True


def task_slots(ray, settings: ClusterSettings) -> int:
    """How many tasks the live nodes can run at once with the declared resources (0: no node fits one)."""
    slots = 0
    for node in ray.nodes():
        if not node.get("Alive"):
            continue
        resources = node.get("Resources", {})
        fits = resources.get("CPU", 0.0) / settings.ray_cpus
        if settings.ray_gpus:
            fits = min(fits, resources.get("GPU", 0.0) / settings.ray_gpus)
        slots += int(fits + 1e-9)
    return slots


def cut(groups, slots: int) -> list[Group]:
    """Each group of several runs (a batched DP-SGD pass) cut into `slots` near-equal parts, one task each, so
    that the whole cluster trains it; each part is still one pass."""
    parts: list[Group] = []
    for group in groups:
        size = -(-len(group) // max(1, slots))
        parts.extend(group[at:at + size] for at in range(0, len(group), size))
    return parts


def _outcomes(ray, ref, group: Group, settings: ClusterSettings) -> tuple[list, dict[str, float]]:
    """A finished task's results; every run of the group failed with the reason when the task itself failed."""
    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as exc:  # the task's own code raised (outside any run)
        error = _portable(exc.cause if isinstance(exc.cause, BaseException) else exc)
    except ray.exceptions.RayError as exc:  # lost with its node or worker more often than it may be retried
        error = EngineError(f"The Ray task training this run was lost {settings.ray_retries + 1} time(s) "
                            f"({type(exc).__name__}: its node or worker process died): rerun the sweep, or raise "
                            "{ray_retries}.", mentions=["ray_retries"])
    return [(run_id, config, error) for run_id, config in group], {}


def train_on_ray(sweep: _Sweep, setup: WorkerSetup, settings: ClusterSettings) -> None:
    """Train every group of `sweep` as Ray tasks, recording each run here as its task returns."""
    if not sweep.queue and not sweep.deferred:
        return
    ray, connected = connect(settings)
    running: dict[Any, Group] = {}
    try:
        slots = task_slots(ray, settings)
        if slots == 0:
            raise EngineError(f"No node of the Ray cluster has {settings.ray_cpus:g} CPU(s)"
                              f"{f' and {settings.ray_gpus:g} GPU(s)' if settings.ray_gpus else ''} free for a task: "
                              "lower {ray_cpus} or {ray_gpus}, or add a node.", mentions=["ray_cpus", "ray_gpus"])
        sweep.queue = deque(cut(sweep.queue, slots))
        noise = calibrate_once(sweep.configs.values(), sweep.data, sweep.store)
        data = ray.put(sweep.data)  # once: every task reads it from the object store
        setup = dataclasses.replace(setup, device="cuda" if settings.ray_gpus else "cpu")
        environment = {name: value for name, value in os.environ.items() if name.startswith(FORWARDED_PREFIX)}
        remote = ray.remote(train_group_task).options(
            num_cpus=settings.ray_cpus, num_gpus=settings.ray_gpus, max_retries=settings.ray_retries,
            retry_exceptions=False)  # a run's own error is its result; only lost tasks are retried
        threads = max(1, int(settings.ray_cpus))
        recorded: set[str] = set()
        while True:
            slots = task_slots(ray, settings)
            while sweep.fault is None and len(running) < max(1, slots):
                group = sweep.next_group()
                if group is None:
                    break
                for run_id, config in group:
                    sweep.notify(ProgressEvent("started", run_id, config, sweep.done, sweep.total))
                running[remote.remote(group, data, setup, noise, environment, threads)] = group
            if not running:
                if sweep.fault is not None or not sweep.deferred:
                    return
                sweep.wait_for_others()
                continue
            finished, waiting = ray.wait(list(running), num_returns=1, timeout=POLL_SECONDS)
            if finished and waiting:  # and every other task that ended meanwhile, without waiting
                finished += ray.wait(waiting, num_returns=len(waiting), timeout=0)[0]
            for ref in finished:
                results, computed = _outcomes(ray, ref, running.pop(ref), settings)
                for key, value in computed.items():  # a question the driver did not foresee: kept for the rest
                    noise[key] = value
                    sweep.store.put_noise(key, value)
                for run_id, config, outcome in results:
                    if run_id not in recorded:
                        recorded.add(run_id)
                        sweep.record(run_id, config, outcome)
            sweep.poll_deferred()
    finally:
        for ref in running:  # interrupted (or the store failed): stop what the cluster trains for this sweep
            try:
                ray.cancel(ref, force=True)
            except Exception:  # noqa: BLE001 - the cluster is gone: so are its tasks
                pass
        if connected:
            ray.shutdown()
