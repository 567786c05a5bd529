"""How long a planned sweep will roughly take, learned from the store's own timings where it can.

Per technique, a run's time is the mean train_seconds of stored successful runs with the same dataset, technique,
model and epochs. Without such runs it is measured on this machine (engine.jobs.probe, kept in the workspace by
engine.jobs.timings): steps x seconds a step + what a run spends outside its steps for torch techniques, one timed
run for the others. DEFAULT_ROW_EPOCH_SECONDS x rows x epochs is only the fallback where nothing could be measured
(a plan without its data, a technique the probe does not train, a probe that failed). Never creates the store.

DP-SGD and baseline runs the runner trains together (batched_dp_sgd, batched_baseline: on unless
FRONTIER_BATCHED_DP_SGD=0) are grouped as the runner groups them (its batch_key groups, cut into one part per worker
process on CPU, each part into passes that fit in memory), and each pass costs its steps x a batched step of its K
models (measured on this machine: probe.probe_batched) + what each run spends besides. Stored batched runs record
their share of the pass's time, so the mean of stored runs stays the first answer for them too.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from engine.config import RunConfig
from engine.jobs.probe import PROBE_MAX_MODELS, Measurement, batched_paths, probe, probe_batched, probe_kind
from engine.jobs.timings import recall, remember, timing_key
from engine.measure import resolve_device
from engine.privacy.accounting import steps_and_sample_rate
from engine.privacy.calibration import calibration_key
from engine.runner.execute import _groups as runner_groups, _spread as spread_among_workers  # the runner's own cut
from engine.runner.plan import SweepPlan
from engine.runner.store import ResultStore
from engine.techniques.registry import create_technique
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


def trained_together(group: list[RunConfig], plan: SweepPlan) -> bool:
    """Whether the runner's `group` (one technique) trains as one batched pass, as the technique decides."""
    path = batched_paths().get(group[0].technique)
    return (plan.data is not None and path is not None
            and create_technique(group[0].technique).batch_key(group[0]) is not None
            and path.trains_together(group, plan.data))


def batched_passes(groups: list[list[RunConfig]], plan: SweepPlan, device: str) -> list[list[RunConfig]]:
    """Each group cut into the passes its technique's train_batched makes of it (as many models as memory holds)."""
    passes = []
    for group in groups:
        size = batched_paths()[group[0].technique].configs_per_pass(group, plan.data, device)
        passes.extend(group[at:at + size] for at in range(0, len(group), size))
    return passes


def batched_measurement(plan: SweepPlan, passes: list[list[RunConfig]], workspace: Workspace,
                        device: str) -> Measurement:
    """The workspace's measurement of a batched pass like the largest of `passes`, measured now (and kept) if none."""
    largest = max(passes, key=len)
    models = min(len(largest), PROBE_MAX_MODELS)
    key = timing_key(largest[0], fingerprint=plan.fingerprint, device=device, cores=cpu_count(), whole_run=False,
                     batched_models=models)
    known = recall(workspace, key)
    if known is None:
        known = probe_batched(largest, plan.data, device)
        remember(workspace, key, known)
    return known


def pass_seconds(measured: Measurement, members: list[RunConfig], n_train: int) -> float:
    """One pass: its longest member's steps x a step of all its models (a model that is done still rides along),
    + each run's rest."""
    steps = max(steps_and_sample_rate(n_train, config.batch_size, config.epochs)[0] for config in members)
    return steps * measured.step_seconds(len(members)) + len(members) * (measured.overhead_seconds or 0.0)


def _batched_seconds(plan: SweepPlan, technique: str, groups: list[list[RunConfig]], workspace: Workspace,
                     device: str) -> tuple[float, str] | None:
    """Seconds for `groups` (the runner's batched groups of `technique`) and the words; None when measuring failed
    (the caller falls back to the per-run path)."""
    passes = batched_passes(groups, plan, device)
    shapes: dict[tuple, list[list[RunConfig]]] = {}  # passes of one model shape share a measurement
    for members in passes:
        shapes.setdefault((members[0].model, members[0].hidden_units, members[0].params), []).append(members)
    try:
        measured_by_shape = {shape: batched_measurement(plan, alike, workspace, device)
                             for shape, alike in shapes.items()}
    except Exception:  # noqa: BLE001 - an estimate must not fail because its measurement did
        return None
    seconds = sum(pass_seconds(measured_by_shape[shape], members, plan.n_train)
                  for shape, alike in shapes.items() for members in alike)
    largest = max(passes, key=len)  # described in words
    measured = measured_by_shape[(largest[0].model, largest[0].hidden_units, largest[0].params)]
    steps = max(steps_and_sample_rate(plan.n_train, c.batch_size, c.epochs)[0] for c in largest)
    runs = sum(len(members) for members in passes)
    plural = "es" if len(passes) > 1 else ""
    return seconds, (
        f"{technique} {runs} run{'s' if runs != 1 else ''} in {len(passes)} batched pass{plural} "
        f"({_ms(measured.step_seconds(len(largest)))} a step for {len(largest)} model{'s' if len(largest) != 1 else ''}"
        f" measured on this machine, {measured.steps_timed} steps timed; × {steps:,} steps, "
        f"+ {_secs(measured.overhead_seconds or 0.0)} a run besides)")


def _technique_seconds(plan: SweepPlan, technique: str, runs: list[RunConfig], past: list[float],
                       workspace: Workspace, device: str, groups: list[list[RunConfig]]) -> tuple[float, str]:
    """Seconds for `runs` (all of `technique`; `groups`, the runner's groups of them) and the words for how that
    was found."""
    if past:
        per_run = sum(past) / len(past)
        return len(runs) * (per_run + RUN_OVERHEAD_SECONDS), (
            f"{technique} {_secs(per_run)} a run (the mean of {len(past)} stored run(s) like it)")
    together = [group for group in groups if trained_together(group, plan)]
    batched = _batched_seconds(plan, technique, together, workspace, device) if together else None
    if batched is not None:
        alone = [config for group in groups if group not in together for config in group]
        if not alone:
            return batched
        seconds, words = _per_run_seconds(plan, technique, alone, workspace, device)
        return batched[0] + seconds, f"{batched[1]}; {words}"
    return _per_run_seconds(plan, technique, runs, workspace, device)


def _per_run_seconds(plan: SweepPlan, technique: str, runs: list[RunConfig], workspace: Workspace,
                     device: str) -> tuple[float, str]:
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
        # The runner's groups: runs it trains together, each cut into one part per worker process on CPU.
        in_workers = workers > 1 and device != "cuda" and len(pending) > 1
        groups = runner_groups([(str(at), config) for at, config in enumerate(pending)])
        groups = [[config for _, config in group]
                  for group in (spread_among_workers(groups, workers) if in_workers else groups)]
        seconds, basis, calibrations = 0.0, [], set()
        for technique in dict.fromkeys(config.technique for config in pending):
            runs = [c for c in pending if c.technique == technique]
            model = runs[0].model
            past = [r["train_seconds"] for r in (store.records(dataset=spec.dataset, technique=technique, status="ok")
                                                 if store else [])
                    if r.get("model") == model and r.get("epochs") == runs[0].epochs and r["train_seconds"] is not None]
            technique_seconds, words = _technique_seconds(plan, technique, runs, past, workspace, device,
                                                          [g for g in groups if g[0].technique == technique])
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
        at_once = min(workers, cpu_count(), len(groups)) if in_workers else 1  # as the runner's worker processes
        seconds = STARTUP_SECONDS + seconds / at_once
        if calibrations:
            basis.append(f"{len(calibrations)} noise calibration(s)")
        basis.append(f"{STARTUP_SECONDS:.0f} s to start" + (f"; {at_once} worker processes at once" if at_once > 1 else ""))
    return SweepEstimate(total=len(plan.run_ids), cached=len(cached), to_train=len(pending), seconds=seconds,
                         basis="; ".join(basis) if basis else "nothing to train: every run is in the store")
