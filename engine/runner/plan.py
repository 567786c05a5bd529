"""Planning a sweep, once: expand the spec into runs, check everything that can be checked before training,
and answer from the store what it already holds. The plan (with the prepared data) is then handed on: to
the estimate, to the in-process runner, or written to a background job's folder.
"""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass
from pathlib import Path

from engine import ENGINE_VERSION
from engine.config import ACCOUNTANTS, RunConfig, SweepSpec
from engine.data import DatasetInfo, PreparedDataset, get_dataset_info, load_dataset
from engine.errors import ConfigError
from engine.runner.search import SearchDraw, draw_search, search_id
from engine.runner.sizing import training_grid
from engine.runner.spec import technique_options
from engine.techniques.base import PURE_DP_ACCOUNTANT
from engine.techniques.class_weights import weighting_fields
from engine.techniques.registry import create_technique, get_technique_class


@dataclass(frozen=True)
class SweepPlan:
    spec: SweepSpec
    configs: tuple[RunConfig, ...]
    run_ids: tuple[str, ...]
    cached_ids: frozenset[str]
    n_train: int
    fingerprint: str  # of the prepared training data every run of the plan uses
    data: PreparedDataset | None = None  # kept for whoever trains in this process; not written to job files
    search: SearchDraw | None = None  # a random search's draw, kept in the store when the plan trains

    @property
    def pending(self) -> list[tuple[str, RunConfig]]:
        return [(run_id, config) for run_id, config in zip(self.run_ids, self.configs) if run_id not in self.cached_ids]


def default_model(info: DatasetInfo) -> str:
    return "cnn" if info.is_image else "mlp"


def expand(spec: SweepSpec, info: DatasetInfo, n_train: int | None = None) -> list[RunConfig]:
    """Every run of the grid, each technique over only the axes it has (the training axes -- learning rate, batch
    size, epochs -- every technique has). `n_train`: the rows the runs train on, which sizes an unset batch size and
    number of epochs, per run (engine.runner.sizing)."""
    spec.validate()
    training = training_grid(spec, n_train)  # (learning rate, batch size, epochs) of each run, sized where unset
    model = spec.model or default_model(info)
    shared = dict(dataset=spec.dataset, model=model, hidden_units=spec.hidden_units,
                  train_subsample=spec.train_subsample)
    shared_fields = set(shared) | {"seed", "target_epsilon", "max_grad_norm", "delta", "accountant", "epochs",
                                   "batch_size", "learning_rate"}
    weighting = weighting_fields(spec, info)  # {} when unweighted: the fields stay None, old cache keys kept
    if weighting and not any(get_technique_class(name).weighs_classes for name in spec.techniques):
        raise ConfigError(f"{{class_weighting}} applies to torch techniques only (baseline, dp-sgd, the federated "
                          f"ones, single-silo, he-inference), not {', '.join(spec.techniques)}: drop it or add one.",
                          setting="class_weighting")
    configs = []
    for name in dict.fromkeys(spec.techniques):  # de-duplicated, order kept
        technique = get_technique_class(name)
        technique_model = technique.fixed_model or model  # diffprivlib and local-dp train their own model family
        settings = technique_options(spec, name)
        uses_epsilon, uses_clipping = technique.axes(spec, settings)
        epsilons = spec.epsilons if uses_epsilon else (None,)
        norms = spec.clipping_norms if uses_clipping else (None,)
        pure = uses_epsilon and technique.pure_dp  # pure epsilon-DP: delta 0, no Opacus accountant
        for learning_rate, batch_size, epochs in training:
            # The technique resolves its settings against this one training combination (federated: rounds
            # default to its epochs).
            one = spec.replace(learning_rate=(learning_rate,), batch_size=(batch_size,), epochs=(epochs,))
            trained = dict(learning_rate=learning_rate, batch_size=batch_size, epochs=epochs)
            for resolved, epsilon, norm, seed in itertools.product(technique.resolve(one, settings, info), epsilons,
                                                                   norms, spec.seeds):
                overrides = {key: value for key, value in resolved.items() if key in shared_fields}
                params = tuple(sorted((key, value) for key, value in resolved.items()
                                      if key not in shared_fields and value is not None))
                configs.append(RunConfig(
                    technique=name, seed=seed, target_epsilon=epsilon, max_grad_norm=norm,
                    delta=(0.0 if pure else spec.delta) if uses_epsilon else None,
                    accountant=(technique.own_accountant or (PURE_DP_ACCOUNTANT if pure else spec.accountant))
                    if uses_epsilon else None,
                    **{**shared, **trained, "model": technique_model, **overrides}, params=params,
                    **(weighting if technique.weighs_classes else {}),  # class weighting: torch techniques only
                ))
    return configs


def check_delta(delta: float, n_train: int) -> None:
    if delta >= 1.0 / n_train:
        raise ConfigError(
            f"{{delta}} {delta:g} is not below 1/n = 1/{n_train} = {1.0 / n_train:.3g}: a delta that large allows "
            f"leaking whole records. Use {10 ** -len(str(n_train)):g} or smaller, or a larger dataset.",
            setting="delta")


def prepared_data(dataset: str, train_subsample: int | None, uploads_dir: Path | None) -> PreparedDataset:
    data = load_dataset(dataset, uploads_dir)
    if train_subsample is not None and train_subsample >= data.n_train:
        raise ConfigError(f"{{train_subsample}} {train_subsample} is not smaller than the {data.n_train} training "
                          f"rows of {dataset}: lower it, or leave it unset to train on every row.",
                          setting="train_subsample")
    return data.subsample(train_subsample).with_validation()


def plan_sweep(spec: SweepSpec, *, uploads_dir: Path | None, store=None) -> SweepPlan:
    """Validate everything that can be checked before training, then look up the cache in `store`."""
    info = get_dataset_info(spec.dataset, uploads_dir)
    data = prepared_data(spec.dataset, spec.train_subsample, uploads_dir)
    configs = expand(spec, info, data.n_train)
    stored = store.get_search(search_id(spec)) if (store is not None and spec.random_trials is not None) else None
    configs, search = draw_search(spec, configs, stored=stored)
    if any(config.delta for config in configs):  # only runs with a delta > 0 need delta < 1/n
        check_delta(spec.delta, data.n_train)
    from engine.techniques.training import model_for  # validates model vs data (cnn needs images)

    torch_runs = [config for config in configs or expand(spec, info, data.n_train)
                  if not get_technique_class(config.technique).fixed_model]
    if torch_runs:
        model_for(torch_runs[0], data)
    for config in configs:  # checks that need the data (a federated partition that cannot be made)
        create_technique(config.technique).check(config, data)
    run_ids = tuple(config.cache_key(data.fingerprint, ENGINE_VERSION) for config in configs)
    cached = frozenset(store.completed_ids(run_ids)) if store is not None else frozenset()
    return SweepPlan(spec=spec, configs=tuple(configs), run_ids=run_ids, cached_ids=cached, n_train=data.n_train,
                     fingerprint=data.fingerprint, data=data, search=search)


def spec_for_run(config: RunConfig, info: DatasetInfo) -> SweepSpec:
    """The one-run sweep spec whose expansion is exactly `config` (the inverse of `expand` for one point). A random
    search's trial comes back as its configuration alone: retraining it is a new run, outside the search."""
    config = dataclasses.replace(config, search=None, trial=None)
    fixed_model = get_technique_class(config.technique).fixed_model
    if fixed_model:  # records from before fixed_model carry the sweep's model; the run trained this one
        config = dataclasses.replace(config, model=fixed_model)
    declared = {setting.name: setting for setting in get_technique_class(config.technique).settings.declared()}
    axes = {setting.axis: setting.name for setting in declared.values() if setting.axis}
    options = {}
    for name, value in config.params:
        if name in declared:
            options[name] = value
        elif name in axes:  # a resolved value of an axis setting (single-silo's client) is a one-value axis
            options[axes[name]] = (value,)
    defaults = SweepSpec()
    spec = SweepSpec(
        dataset=config.dataset, techniques=(config.technique,), seeds=(config.seed,),
        model=None if fixed_model else config.model,
        epsilons=(config.target_epsilon,) if config.target_epsilon is not None else defaults.epsilons,
        clipping_norms=(config.max_grad_norm,) if config.max_grad_norm is not None else defaults.clipping_norms,
        epochs=config.epochs, batch_size=config.batch_size, learning_rate=config.learning_rate,
        hidden_units=config.hidden_units, train_subsample=config.train_subsample,
        class_weighting=config.class_weighting,
        positive_share=(float(config.class_shares.split(",")[1]) if config.class_shares_source == "setting" else None),
        delta=config.delta if config.delta else defaults.delta,
        accountant=config.accountant if config.accountant in ACCOUNTANTS else defaults.accountant,
        options=tuple(sorted(options.items())),
    )
    expanded = expand(spec, info)
    if expanded != [config]:
        raise ConfigError(f"Run configuration {config} cannot be expressed as a sweep spec: it expands to {expanded}.")
    return spec
