"""Sweeps: expand a spec into runs, answer what the store already has, train the rest (cached at once).

Each technique expands only over the axes it uses (baseline ignores epsilon and clipping). Runs that a
technique can train together (equal `batch_key`) go to it as one group; every run is still recorded on
its own. Failed runs are stored with their error and the sweep goes on; a rerun retries only those and
whatever is missing.
"""

from __future__ import annotations

import itertools
import multiprocessing
import platform
import traceback
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable


from engine import ENGINE_VERSION
from engine.config import FEDERATED_FIELDS, RunConfig, SweepReport, SweepSpec
from engine.data import DatasetInfo, PreparedDataset, get_dataset_info, load_dataset
from engine.errors import ConfigError, EngineError
from engine.measure import resolve_device
from engine.store import COLUMN_NAMES, ResultStore
from engine.techniques import RunContext, RunResult, create_technique, get_technique_class
from engine.techniques.base import PURE_DP_ACCOUNTANT


@dataclass(frozen=True)
class ProgressEvent:
    """Sent to a sweep's progress callback. kind: cached | started | progress | finished | failed."""

    kind: str
    run_id: str
    config: RunConfig
    done: int  # runs finished (trained, failed or answered from cache) so far
    total: int
    fraction: float = 0.0  # of the current run, for kind == "progress"
    error: str | None = None
    result: RunResult | None = None


ProgressCallback = Callable[[ProgressEvent], None]


@dataclass(frozen=True)
class SweepPlan:
    spec: SweepSpec
    configs: tuple[RunConfig, ...]
    run_ids: tuple[str, ...]
    cached_ids: frozenset[str]
    n_train: int

    @property
    def pending(self) -> list[tuple[str, RunConfig]]:
        return [(run_id, config) for run_id, config in zip(self.run_ids, self.configs) if run_id not in self.cached_ids]


def default_model(info: DatasetInfo) -> str:
    return "cnn" if info.is_image else "mlp"


def expand(spec: SweepSpec, uploads_dir: Path | None = None) -> list[RunConfig]:
    """Every run of the grid, each technique over only the axes it has. `uploads_dir`: where uploaded datasets are."""
    spec.validate()
    info = get_dataset_info(spec.dataset, uploads_dir)  # unknown dataset -> ConfigError
    model = spec.model or default_model(info)
    common = dict(dataset=spec.dataset, model=model, epochs=spec.epochs, batch_size=spec.batch_size,
                  learning_rate=spec.learning_rate, hidden_units=spec.hidden_units,
                  train_subsample=spec.train_subsample)
    configs = []
    for name in dict.fromkeys(spec.techniques):  # de-duplicated, order kept
        technique = get_technique_class(name)
        uses_epsilon, uses_clipping = technique.axes(spec)  # may follow a setting (he-inference trained by dp-sgd)
        epsilons = spec.epsilons if uses_epsilon else (None,)
        norms = spec.clipping_norms if uses_clipping else (None,)
        extras = technique.expand_fields(spec, info)  # e.g. federated settings; [{}] for most techniques
        for extra, epsilon, norm, seed in itertools.product(extras, dict.fromkeys(epsilons), dict.fromkeys(norms),
                                                            dict.fromkeys(spec.seeds)):
            private = uses_epsilon
            pure = private and technique.pure_dp  # pure epsilon-DP: delta 0, no Opacus accountant
            configs.append(RunConfig(
                technique=name, seed=seed, target_epsilon=epsilon, max_grad_norm=norm,
                delta=(0.0 if pure else spec.delta) if private else None,
                accountant=(PURE_DP_ACCOUNTANT if pure else spec.accountant) if private else None,
                **{**common, **extra},
            ))
    return configs


def check_delta(delta: float, n_train: int) -> None:
    if delta >= 1.0 / n_train:
        raise ConfigError(
            f"delta {delta:g} is not below 1/n = 1/{n_train} = {1.0 / n_train:.3g}: a delta that large allows "
            f"leaking whole records. Use --delta {10 ** -len(str(n_train)):g} or smaller, or a larger dataset."
        )


def prepared_data(spec_or_config, uploads_dir: Path | None = None) -> PreparedDataset:
    return load_dataset(spec_or_config.dataset, uploads_dir).subsample(spec_or_config.train_subsample)


def plan_sweep(spec: SweepSpec, store: ResultStore | None, *, uploads_dir: Path | None = None) -> SweepPlan:
    """Validate everything that can be checked before training, then look up the cache."""
    configs = expand(spec, uploads_dir)
    data = prepared_data(spec, uploads_dir)
    if any(config.delta for config in configs):  # only runs with a delta > 0 need delta < 1/n
        check_delta(spec.delta, data.n_train)
    from engine.techniques.training import model_for  # validates model vs data (cnn needs images)

    model_for(configs[0], data)
    for config in configs:  # checks that need the data (a federated partition that cannot be made)
        create_technique(config.technique).check(config, data)
    run_ids = tuple(config.cache_key(data.fingerprint, ENGINE_VERSION) for config in configs)
    cached = frozenset(store.completed_ids(run_ids)) if store is not None else frozenset()
    return SweepPlan(spec=spec, configs=tuple(configs), run_ids=run_ids, cached_ids=cached, n_train=data.n_train)


def _versions() -> dict[str, str]:
    import numpy
    import opacus
    import sklearn
    import torch

    return {"engine": ENGINE_VERSION, "python": platform.python_version(), "torch": torch.__version__,
            "opacus": opacus.__version__, "numpy": numpy.__version__, "scikit-learn": sklearn.__version__,
            "platform": platform.platform()}


def make_record(run_id: str, config: RunConfig, data: PreparedDataset, outcome: RunResult | BaseException,
                device: str) -> dict:
    record = {
        "run_id": run_id, **{k: v for k, v in config.to_dict().items() if k not in ("hidden_units", "train_subsample")},
        "n_train": data.n_train, "dataset_fingerprint": data.fingerprint,
        "privacy_model": get_technique_class(config.technique).privacy_model_for(config),
        "data_derived_bounds": list(data.data_derived_bounds), "versions": _versions(),
        "created_at": datetime.now(timezone.utc).isoformat(timespec="milliseconds"), "config": config.to_dict(),
        "device": device,
    }
    if isinstance(outcome, BaseException):
        detail = str(outcome) if isinstance(outcome, EngineError) else f"{type(outcome).__name__}: {outcome}"
        record.update(status="failed", error=detail,
                      extra={"traceback": "".join(traceback.format_exception(outcome))[-4000:]})
    else:
        record.update(status="ok", error=None, accuracy=outcome.accuracy, balanced_accuracy=outcome.balanced_accuracy,
                      roc_auc=outcome.roc_auc, train_seconds=outcome.train_seconds,
                      peak_memory_mb=outcome.peak_memory_mb, device=outcome.device, epsilon=outcome.epsilon,
                      noise_multiplier=outcome.noise_multiplier, sample_rate=outcome.sample_rate,
                      steps=outcome.steps)
        # Measurements a technique registered as columns (store.register_columns) get their own column.
        promoted = {key: value for key, value in outcome.extra.items() if key in COLUMN_NAMES and key not in record}
        record.update(promoted, extra={key: value for key, value in outcome.extra.items() if key not in promoted})
    return record


def _groups(pending: list[tuple[str, RunConfig]]) -> list[list[tuple[str, RunConfig]]]:
    """Runs with equal (technique, batch_key) form one group; a None key means a group of one."""
    groups: dict[object, list[tuple[str, RunConfig]]] = {}
    for run_id, config in pending:
        key = create_technique(config.technique).batch_key(config)
        groups.setdefault((config.technique, key) if key is not None else run_id, []).append((run_id, config))
    return list(groups.values())


def _run_group(group, device: str, store_path: str | None, uploads_dir: Path | None, on_progress=None):
    """Train one group in this process; yields (run_id, config, outcome). Used in-process and by workers."""
    data = prepared_data(group[0][1], uploads_dir)
    store = ResultStore(store_path) if store_path else None
    ids = {config: run_id for run_id, config in group}
    technique = create_technique(group[0][1].technique)
    context = RunContext(device=device, noise_cache=store)
    try:
        for config, outcome in technique.run_batch([c for _, c in group], data, context=context, on_progress=on_progress):
            yield ids[config], config, outcome
    finally:
        if store is not None:
            store.close()


def _worker_group(group, device: str, store_path: str | None, uploads_dir: Path | None):
    import torch

    torch.set_num_threads(1)  # one thread per worker process: workers x threads = cores
    return [(run_id, config, _portable(outcome) if isinstance(outcome, BaseException) else outcome)
            for run_id, config, outcome in _run_group(group, device, store_path, uploads_dir)]


def _portable(exc: BaseException) -> BaseException:
    """Exceptions cross the process boundary as EngineError/RuntimeError carrying their text."""
    return exc if isinstance(exc, EngineError) else RuntimeError(f"{type(exc).__name__}: {exc}")


def run_sweep(spec: SweepSpec, *, store: ResultStore, uploads_dir: Path | None = None, workers: int = 1,
              device: str = "auto", on_progress: ProgressCallback | None = None) -> SweepReport:
    """Run every missing run of `spec`, writing each to `store` as soon as it ends (uploads: in `uploads_dir`)."""
    if workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {workers}.")
    resolved_device = resolve_device(device)
    plan = plan_sweep(spec, store, uploads_dir=uploads_dir)
    total, done = len(plan.configs), 0
    notify = on_progress or (lambda event: None)
    for run_id, config in zip(plan.run_ids, plan.configs):
        if run_id in plan.cached_ids:
            done += 1
            notify(ProgressEvent("cached", run_id, config, done, total))
    data = prepared_data(spec, uploads_dir)
    trained = failed = 0
    interrupted = False

    def record(run_id, config, outcome):
        nonlocal done, trained, failed
        store.write(make_record(run_id, config, data, outcome, resolved_device))
        done += 1
        if isinstance(outcome, BaseException):
            failed += 1
            notify(ProgressEvent("failed", run_id, config, done, total, error=str(outcome)))
        else:
            trained += 1
            notify(ProgressEvent("finished", run_id, config, done, total, fraction=1.0, result=outcome))

    groups = _groups(plan.pending)
    try:
        if workers == 1 or resolved_device == "cuda" or len(plan.pending) <= 1:
            ids = {config: run_id for run_id, config in plan.pending}
            for group in groups:
                for run_id, config in group:
                    notify(ProgressEvent("started", run_id, config, done, total))
                progress = lambda config, fraction: notify(ProgressEvent("progress", ids[config], config, done, total, fraction))  # noqa: E731
                for run_id, config, outcome in _run_group(group, resolved_device, str(store.path), uploads_dir, progress):
                    record(run_id, config, outcome)
        else:
            # spawn, not fork: forking a process that already ran torch threads can deadlock.
            context = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(max_workers=min(workers, len(groups)), mp_context=context) as pool:
                futures = {pool.submit(_worker_group, group, resolved_device, str(store.path), uploads_dir): group for group in groups}
                try:
                    for future in as_completed(futures):
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
    return SweepReport(total=total, cached=len(plan.cached_ids), trained=trained, failed=failed,
                       run_ids=plan.run_ids, interrupted=interrupted)


def spec_for_run(config: RunConfig, uploads_dir: Path | None = None) -> SweepSpec:
    """The one-run sweep spec whose expansion is exactly `config` (the inverse of `expand` for one point)."""
    technique = get_technique_class(config.technique)
    defaults = SweepSpec()
    uses_epsilon, uses_clipping = technique.axes(SweepSpec(dataset=config.dataset, techniques=(config.technique,),
                                                           train_technique=config.train_technique))
    spec = SweepSpec(
        dataset=config.dataset, techniques=(config.technique,), model=config.model, seeds=(config.seed,),
        epsilons=(config.target_epsilon,) if uses_epsilon else defaults.epsilons,
        clipping_norms=(config.max_grad_norm,) if uses_clipping else defaults.clipping_norms,
        train_technique=config.train_technique,
        epochs=config.epochs, batch_size=config.batch_size, learning_rate=config.learning_rate,
        hidden_units=config.hidden_units, train_subsample=config.train_subsample,
        delta=config.delta if config.delta else defaults.delta,
        accountant=config.accountant if config.accountant in ("prv", "rdp") else defaults.accountant,
        **{name: getattr(config, name) for name in FEDERATED_FIELDS if getattr(config, name) is not None},
        only_clients=(config.client,) if config.client is not None else None,
    )
    expanded = expand(spec, uploads_dir)
    if expanded != [config]:
        raise ConfigError(f"Run configuration {config} cannot be expressed as a sweep spec: it expands to {expanded}.")
    return spec
