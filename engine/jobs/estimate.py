"""How long a planned sweep will roughly take, learned from the store's own timings where it can.

Per technique, a run's time is the mean train_seconds of stored successful runs with the same dataset, technique,
model and epochs. Without such runs it is measured on this machine (engine.jobs.probe, kept in the workspace by
engine.jobs.timings): steps x seconds a step + what a run spends outside its steps for torch techniques, one timed
run for the others. DEFAULT_ROW_EPOCH_SECONDS x rows x epochs is only the fallback where nothing could be measured
(a plan without its data, a technique the probe does not train, a probe that failed). Never creates the store.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from engine.config import RunConfig
from engine.jobs.probe import Measurement, probe, probe_kind
from engine.jobs.timings import recall, remember, timing_key
from engine.measure import resolve_device
from engine.privacy.accounting import steps_and_sample_rate
from engine.privacy.calibration import calibration_key
from engine.runner.plan import SweepPlan
from engine.runner.store import ResultStore
from engine.workspace import Workspace

STARTUP_SECONDS = 8.0  # a fresh process: import torch and Opacus, load and prepare the data
RUN_OVERHEAD_SECONDS = 1.0  # per run besides training: model set-up, evaluation, writing the record
CALIBRATION_SECONDS = {"prv": 5.0, "rdp": 0.5}  # noise calibration per new target epsilon (GUIDE section 4)
# Seconds per training row per epoch on 2 idle CPU cores, used only when the store holds no comparable run to
# learn from and measuring on this machine was not possible (it was 1.5-2.3x too low on small tables, where the
# size-aware batches make many short steps). Tables: adult MLP 64, batch 512 (GUIDE section 4: ~9 s for 10 DP-SGD
# epochs; the baseline measured 2.8x faster side by side here).
# Images: mnist CNN, scaled from adult by a side-by-side run on this machine (1 epoch each, same load: the CNN
# cost 15x the MLP per row without privacy, 7.6x with DP-SGD).
DEFAULT_ROW_EPOCH_SECONDS = {("baseline", "tabular"): 1.0e-5, ("dp-sgd", "tabular"): 3.0e-5,
                             ("baseline", "image"): 1.5e-4, ("dp-sgd", "image"): 2.3e-4}


@dataclass(frozen=True)
class SweepEstimate:
    total: int  # runs in the grid
    cached: int  # already in the store (successful)
    to_train: int
    seconds: float  # rough wall time for the runs to train
    basis: str  # what the estimate is based on, in words


def cpu_count() -> int:
    """Cores this process may use (a container's limit, not the host's)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _secs(seconds: float) -> str:
    return "under 0.1 s" if seconds < 0.1 else f"{seconds:.1f} s" if seconds < 10 else f"{seconds:.0f} s"


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.2g} ms" if seconds < 0.01 else f"{seconds * 1000:.0f} ms"


def measurement(plan: SweepPlan, config: RunConfig, workspace: Workspace, device: str) -> Measurement | None:
    """The workspace's measurement of `config`'s technique on this machine, measured now (and kept) when it has
    none. None when the plan has no data or the technique is not probed; a failed probe raises."""
    kind = probe_kind(config.technique)
    if plan.data is None or kind is None:
        return None
    key = timing_key(config, fingerprint=plan.fingerprint, device=device, cores=cpu_count(), whole_run=kind == "run")
    known = recall(workspace, key)
    if known is None:
        known = probe(config, plan.data, device)
        if known is not None:
            remember(workspace, key, known)
    return known


def run_seconds(measured: Measurement, config: RunConfig, n_train: int) -> float:
    """One run's seconds from a measurement: steps x seconds a step + the rest of a run, or the timed run."""
    if measured.kind == "run":
        return measured.seconds
    steps, _ = steps_and_sample_rate(n_train, config.batch_size, config.epochs)
    overhead = measured.overhead_seconds if measured.overhead_seconds is not None else RUN_OVERHEAD_SECONDS
    return steps * measured.seconds + overhead


def _measured_words(technique: str, measured: Measurement, per_run: float, config: RunConfig, n_train: int) -> str:
    if measured.kind == "run":
        return f"{technique} {_secs(per_run)} a run (measured on this machine: one run timed)"
    steps, _ = steps_and_sample_rate(n_train, config.batch_size, config.epochs)
    return (f"{technique} {_secs(per_run)} a run (measured on this machine: {_ms(measured.seconds)} a step "
            f"({measured.steps_timed} steps timed) × {steps:,} steps, + {_secs(per_run - steps * measured.seconds)} "
            f"a run besides)")


def _default(technique: str, kind: str, runs: list[RunConfig], n_train: int, why: str) -> tuple[float, str]:
    rate = DEFAULT_ROW_EPOCH_SECONDS.get((technique, kind), DEFAULT_ROW_EPOCH_SECONDS[("dp-sgd", kind)])
    per_run = rate * n_train * runs[0].epochs
    return len(runs) * (per_run + RUN_OVERHEAD_SECONDS), (
        f"{technique} {_secs(per_run)} a run (a default for {n_train:,} rows × {runs[0].epochs} epochs on 2 CPU "
        f"cores: {why})")


def _technique_seconds(plan: SweepPlan, technique: str, runs: list[RunConfig], past: list[float],
                       workspace: Workspace, device: str) -> tuple[float, str]:
    """Seconds for `runs` (all of `technique`) and the words for how that was found."""
    if past:
        per_run = sum(past) / len(past)
        return len(runs) * (per_run + RUN_OVERHEAD_SECONDS), (
            f"{technique} {_secs(per_run)} a run (the mean of {len(past)} stored run(s) like it)")
    kind = "image" if plan.data is not None and plan.data.is_image else "tabular"
    try:
        measured = measurement(plan, runs[0], workspace, device)
    except Exception as exc:  # noqa: BLE001 - an estimate must not fail because its measurement did
        return _default(technique, kind, runs, plan.n_train, f"measuring it here failed ({type(exc).__name__})")
    if measured is None:
        return _default(technique, kind, runs, plan.n_train, "not measured before a sweep")
    seconds = sum(run_seconds(measured, config, plan.n_train) for config in runs)
    return seconds, _measured_words(technique, measured, run_seconds(measured, runs[0], plan.n_train), runs[0],
                                    plan.n_train)


def estimate_plan(plan: SweepPlan, workspace: Workspace, *, workers: int = 1, device: str = "auto") -> SweepEstimate:
    """How many runs `plan` is, how many the store already holds, and roughly how long the rest take on `device`."""
    path = workspace.store_path
    store = ResultStore(path, create=False) if path.exists() else None
    spec = plan.spec
    device = resolve_device(device)
    try:
        cached = store.completed_ids(plan.run_ids) if store else set()
        pending = [config for run_id, config in zip(plan.run_ids, plan.configs) if run_id not in cached]
        seconds, basis, calibrations = 0.0, [], set()
        for technique in dict.fromkeys(config.technique for config in pending):
            runs = [c for c in pending if c.technique == technique]
            model = runs[0].model
            past = [r["train_seconds"] for r in (store.records(dataset=spec.dataset, technique=technique, status="ok")
                                                 if store else [])
                    if r.get("model") == model and r.get("epochs") == runs[0].epochs and r["train_seconds"] is not None]
            technique_seconds, words = _technique_seconds(plan, technique, runs, past, workspace, device)
            seconds += technique_seconds
            basis.append(words)
            for config in runs:
                if config.target_epsilon is not None and config.accountant in CALIBRATION_SECONDS:
                    steps, sample_rate = steps_and_sample_rate(plan.n_train, config.batch_size, config.epochs)
                    key = calibration_key(target_epsilon=config.target_epsilon, delta=config.delta,
                                          sample_rate=sample_rate, steps=steps, accountant=config.accountant)
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
