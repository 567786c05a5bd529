"""How long a planned sweep will roughly take, learned from the store's own timings where it can.

Per technique, training time is the mean train_seconds of stored successful runs with the same dataset,
technique, model and epochs; without such runs, DEFAULT_ROW_EPOCH_SECONDS x rows x epochs. Never creates
the store.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from engine.privacy.accounting import steps_and_sample_rate
from engine.privacy.calibration import calibration_key
from engine.runner.plan import SweepPlan
from engine.runner.store import ResultStore
from engine.workspace import Workspace

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


def estimate_plan(plan: SweepPlan, workspace: Workspace, *, workers: int = 1) -> SweepEstimate:
    """How many runs `plan` is, how many the store already holds, and roughly how long the rest take."""
    path = workspace.store_path
    store = ResultStore(path, create=False) if path.exists() else None
    spec = plan.spec
    try:
        cached = store.completed_ids(plan.run_ids) if store else set()
        pending = [config for run_id, config in zip(plan.run_ids, plan.configs) if run_id not in cached]
        kind = "image" if plan.data is not None and plan.data.is_image else "tabular"
        seconds, basis, calibrations = 0.0, [], set()
        for technique in dict.fromkeys(config.technique for config in pending):
            runs = [c for c in pending if c.technique == technique]
            model = runs[0].model
            past = [r["train_seconds"] for r in (store.records(dataset=spec.dataset, technique=technique, status="ok")
                                                 if store else [])
                    if r.get("model") == model and r.get("epochs") == runs[0].epochs and r["train_seconds"] is not None]
            if past:
                per_run = sum(past) / len(past)
                basis.append(f"{technique} {_secs(per_run)} a run (the mean of {len(past)} stored run(s) like it)")
            else:
                rate = DEFAULT_ROW_EPOCH_SECONDS.get((technique, kind), DEFAULT_ROW_EPOCH_SECONDS[("dp-sgd", kind)])
                per_run = rate * plan.n_train * runs[0].epochs
                basis.append(f"{technique} {_secs(per_run)} a run (a default for {plan.n_train:,} rows × "
                             f"{runs[0].epochs} epochs on 2 CPU cores)")
            seconds += len(runs) * (per_run + RUN_OVERHEAD_SECONDS)
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
