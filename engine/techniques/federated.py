"""Federated techniques: `fedavg`, `fedprox`, `fed-dp-sgd` (record-level DP), `dp-fedavg` (client-level DP),
and `single-silo` (one client trained alone: what a hospital gets without joining).

Secure aggregation, dropout and compression are wrappers switched on by the run's config. Settings a
sweep leaves unset get the defaults below; for federated runs `epochs` is recorded as rounds x local
epochs (each client's passes over its own rows when picked every round). dp-fedavg's client clipping
norm S is the sweep's clipping axis (--clip), like DP-SGD's per-sample C.
"""

from __future__ import annotations

import copy
from dataclasses import replace
from typing import Any

import numpy as np
import torch

from engine.config import RunConfig
from engine.data import DatasetInfo, PreparedDataset
from engine.errors import ConfigError
from engine.federated.compression import Compression, parse_compression
from engine.federated.local import ClientData, LocalOptions, ParamLayout, make_trainer
from engine.federated.partitions import DEFAULT_ALPHA, Partition, label_skew, make_partition
from engine.federated.client_level_dp import ClientLevelDP, client_level_noise, client_level_warning
from engine.federated.record_level_dp import DPSGDTrainer, record_level_epsilon, record_level_plan
from engine.federated.secure_aggregation.strategy_wrapper import SecureAggregation, adam_update_bound
from engine.federated.strategies import FedAvg, FedProx, run_rounds
from engine.frontier import register_cost_metric
from engine.measure import PeakMemory, Stopwatch
from engine.privacy.calibration import calibrated_noise
from engine.techniques.base import RunContext, RunProgress, RunResult, Technique
from engine.techniques.registry import register_technique
from engine.techniques.training import evaluate, model_for, seed_everything, train_epochs, train_loader

DEFAULT_CLIENTS = 10
DEFAULT_LOCAL_EPOCHS = 1
DEFAULT_MU = 0.01
TRAINER = "auto"  # vectorised clients when their sizes are even, else a loop (local.AutoTrainer; benchmarks/)
# Torch threads for the round loop on CPU. Client steps are small matrices: on an idle 2-core machine two threads
# took 0.46 s for adult/10 clients/10 rounds and one thread 0.69 s, but with one core busy elsewhere two threads
# took 5-32 s (threads waiting on each other) and one thread still 0.69 s. None: leave torch's setting.
CPU_THREADS = 1

register_cost_metric("comm_bytes", "bytes on the wire", "B")
register_cost_metric("rounds", "communication rounds", "rounds")


def partition_fields(spec, info: DatasetInfo) -> dict[str, Any]:
    """n_clients, partition, alpha, partition_column resolved for `spec` (natural: from the catalogue entry `info`)."""
    kind = spec.partition or "iid"
    if kind == "natural":
        column = spec.partition_column or info.silo_column
        if not column:
            raise ConfigError(f"Dataset {spec.dataset!r} names no silo column: pass --partition-column COLUMN "
                              "(a categorical column), or use --partition iid|dirichlet|quantity.")
        silos = (info.categorical or {}).get(column)
        if not silos:
            raise ConfigError(f"{column!r} is not a categorical column of {spec.dataset!r}: a natural partition needs "
                              f"one, e.g. {', '.join(list(info.categorical or {})[:4]) or '(none declared)'}.")
        if spec.n_clients is not None and spec.n_clients != len(silos):
            raise ConfigError(f"{spec.dataset!r} has {len(silos)} silos in {column!r} ({', '.join(map(str, silos))}), "
                              f"not {spec.n_clients}: drop --clients or pass --clients {len(silos)}.")
        return dict(partition=kind, n_clients=len(silos), alpha=None, partition_column=column)
    skewed = kind in ("dirichlet", "quantity")
    return dict(partition=kind, n_clients=spec.n_clients or DEFAULT_CLIENTS,
                alpha=(spec.alpha if spec.alpha is not None else DEFAULT_ALPHA) if skewed else None,
                partition_column=None)


def client_names(info: DatasetInfo, fields: dict[str, Any]) -> list[str]:
    if fields["partition"] == "natural":
        return [str(s) for s in info.categorical[fields["partition_column"]]]
    return [str(i) for i in range(fields["n_clients"])]


def partition_for(config: RunConfig, data: PreparedDataset) -> Partition:
    return make_partition(data, kind=config.partition, n_clients=config.n_clients, alpha=config.alpha,
                          column=config.partition_column, seed=config.seed)


def silo_accuracy(model, data: PreparedDataset, partition: Partition, device: str) -> dict[str, float] | None:
    """Accuracy on each silo's own test rows (natural partitions only)."""
    if partition.test_indices is None:
        return None
    model.eval()
    with torch.no_grad():
        predictions = model(torch.from_numpy(data.x_test).to(device)).argmax(dim=1).cpu().numpy()
    return {name: float(np.mean(predictions[rows] == data.y_test[rows])) if len(rows) else None
            for name, rows in zip(partition.client_names, partition.test_indices)}


def partition_extra(partition: Partition, data: PreparedDataset) -> dict[str, Any]:
    """Each client's size and label mix, for the dashboard's partition view."""
    return {
        "client_names": list(partition.client_names), "client_sizes": partition.sizes,
        "client_label_mix": [np.bincount(data.y_train[rows], minlength=data.n_classes).tolist()
                             for rows in partition.train_indices],
        "label_skew": label_skew(partition, data),
    }


class FederatedTechnique(Technique):
    """The shared run: partition, strategy (+ wrappers), the round loop, evaluation and costs."""

    privacy_unit = "none"  # "record" or "client" for the private ones

    @classmethod
    def expand_fields(cls, spec, info: DatasetInfo) -> list[dict[str, Any]]:
        fields = partition_fields(spec, info)
        rounds = spec.rounds or spec.epochs  # default: as many rounds as the sweep's epochs
        local_epochs = spec.local_epochs or DEFAULT_LOCAL_EPOCHS
        per_round = spec.clients_per_round or fields["n_clients"]
        if per_round > fields["n_clients"]:
            raise ConfigError(f"--clients-per-round {per_round} exceeds the {fields['n_clients']} clients: lower it.")
        secure = bool(spec.secure_aggregation)
        if secure and per_round < 2:
            raise ConfigError("Secure aggregation needs at least 2 clients per round: raise --clients-per-round.")
        return [dict(fields, rounds=rounds, local_epochs=local_epochs, epochs=rounds * local_epochs,
                     clients_per_round=per_round, secure_aggregation=secure, dropout=float(spec.dropout or 0.0),
                     mu=cls.resolve_mu(spec), compression=spec.compression or "none")]

    @classmethod
    def resolve_mu(cls, spec) -> float | None:
        return None

    def check(self, config: RunConfig, data: PreparedDataset) -> None:
        partition_for(config, data)

    # --- what differs between the techniques -------------------------------------------------------------
    def strategy(self, config, partition, local):
        return FedAvg(n_clients=partition.n_clients, clients_per_round=config.clients_per_round, local=local,
                      sizes=partition.sizes)

    def privacy(self, config, partition, strategy, model, layout, context) -> tuple[Any, Any, dict]:
        """(strategy, trainer, privacy fields) -- the non-private default."""
        return strategy, make_trainer(TRAINER, model, layout), {"trainer": TRAINER}

    def finish_privacy(self, config, history, fields, layout) -> dict:
        return fields

    # --- the run -------------------------------------------------------------------------------------------
    def run(self, config: RunConfig, data: PreparedDataset, *, context: RunContext,
            on_progress: RunProgress | None = None) -> RunResult:
        partition = partition_for(config, data)
        seed_everything(config.seed)
        model = model_for(config, data).to(context.device)
        layout = ParamLayout(model)
        local = LocalOptions(epochs=config.local_epochs, batch_size=config.batch_size,
                             learning_rate=config.learning_rate)
        strategy = self.strategy(config, partition, local)
        with np.errstate(divide="ignore", invalid="ignore"):  # Opacus' PRV takes log(1 - q): -inf, harmless, at q = 1
            strategy, trainer, fields = self.privacy(config, partition, strategy, model, layout, context)
        method, fraction = parse_compression(config.compression)
        if method != "none":
            strategy = Compression(strategy, method=method, fraction=fraction, seed=config.seed)
        if config.secure_aggregation:
            # Clients train with Adam: no coordinate moves more than adam_update_bound (and dp-fedavg clips to S).
            steps = config.local_epochs * -(-max(partition.sizes) // config.batch_size)
            bound = adam_update_bound(config.learning_rate, fields.get("max_local_steps", steps))
            strategy = SecureAggregation(strategy, value_bound=min(bound, fields.get("update_clip", bound)))
        clients = ClientData(data.x_train, data.y_train, partition.train_indices, context.device)
        scorer = copy.deepcopy(model)

        def on_round(round_index, params):
            if on_progress:
                on_progress((round_index + 1) / config.rounds)
            return evaluate(layout.load(scorer, params), data, context.device)["accuracy"]

        threads = torch.get_num_threads()
        if context.device == "cpu" and CPU_THREADS:
            torch.set_num_threads(CPU_THREADS)
        try:
            with PeakMemory(context.device) as memory, Stopwatch() as clock:
                history = run_rounds(strategy, trainer, clients, params=layout.model_vector(model),
                                     rounds=config.rounds, seed=config.seed, dropout=config.dropout, on_round=on_round)
        finally:
            torch.set_num_threads(threads)
        layout.load(model, history.params)
        with np.errstate(divide="ignore", invalid="ignore"):
            fields = self.finish_privacy(config, history, fields, layout)
        described = strategy.describe()
        extra = {
            "privacy_unit": self.privacy_unit, **history.traffic.summary(config.rounds), **partition_extra(partition, data),
            "round_accuracy": history.round_metrics, "selected_per_round": history.selected_per_round,
            "survivors_per_round": history.survivors_per_round, "participation": history.participation.tolist(),
            "n_parameters": layout.dim, **described,
            **({"trainer_rounds": dict(trainer.rounds)} if hasattr(trainer, "rounds") else {}),
            **{k: v for k, v in fields.items() if k not in ("epsilon", "noise_multiplier", "sample_rate", "steps")},
        }
        if config.secure_aggregation:
            extra.update(secagg_aborted_rounds=strategy.aborted_rounds, secagg_clamped_values=strategy.clamped_values)
        silos = silo_accuracy(model, data, partition, context.device)
        if silos is not None:
            extra["silo_accuracy"] = silos
        return RunResult(**evaluate(model, data, context.device), train_seconds=clock.seconds,
                         peak_memory_mb=memory.peak_mb, device=context.device, epsilon=fields.get("epsilon"),
                         noise_multiplier=fields.get("noise_multiplier"), sample_rate=fields.get("sample_rate"),
                         steps=fields.get("steps"), extra=extra)


@register_technique("fedavg")
class FedAvgTechnique(FederatedTechnique):
    description = "Federated averaging (McMahan et al. 2017): clients train locally, the server averages by examples."


@register_technique("fedprox")
class FedProxTechnique(FederatedTechnique):
    description = "FedProx (Li et al. 2020): FedAvg with a proximal term mu for heterogeneous silos."

    @classmethod
    def resolve_mu(cls, spec) -> float | None:
        return float(spec.mu) if spec.mu is not None else DEFAULT_MU

    def strategy(self, config, partition, local):
        return FedProx(mu=config.mu, n_clients=partition.n_clients, clients_per_round=config.clients_per_round,
                       local=local, sizes=partition.sizes)


@register_technique("fed-dp-sgd")
class FedDPSGD(FederatedTechnique):
    description = ("FedAvg whose clients train with Opacus DP-SGD on their own records: record-level DP, "
                   "the worst client's epsilon (clients hold disjoint records).")
    uses_epsilon = True
    uses_clipping = True
    privacy_model = "global"
    privacy_unit = "record"

    def privacy(self, config, partition, strategy, model, layout, context):
        sample_rate, steps_per_epoch, planned = record_level_plan(partition.sizes, config.batch_size,
                                                                  config.local_epochs, config.rounds)
        noise = calibrated_noise(target_epsilon=config.target_epsilon, delta=config.delta, sample_rate=sample_rate,
                                 steps=planned, accountant=config.accountant, cache=context.noise_cache)
        trainer = DPSGDTrainer(model, layout, noise_multiplier=noise, max_grad_norm=config.max_grad_norm,
                               sample_rate=sample_rate, steps_per_epoch=steps_per_epoch)
        return strategy, trainer, {"trainer": "opacus", "noise_multiplier": noise, "sample_rate": sample_rate,
                                   "steps_per_epoch": steps_per_epoch,
                                   "max_local_steps": config.local_epochs * steps_per_epoch}

    def finish_privacy(self, config, history, fields, layout):
        steps = [int(p) * config.local_epochs * fields["steps_per_epoch"] for p in history.participation]
        epsilon, per_client = record_level_epsilon(
            noise_multiplier=fields["noise_multiplier"], sample_rate=fields["sample_rate"], steps_per_client=steps,
            delta=config.delta, accountant=config.accountant, epsilon_scale=config.target_epsilon)
        return {**fields, "epsilon": epsilon, "steps": max(steps), "client_epsilon": per_client,
                "delta_scope": "per record; delta < 1/n_train, hence below 1/n for every client"}


@register_technique("dp-fedavg")
class DPFedAvg(FederatedTechnique):
    description = ("DP-FedAvg (McMahan et al. 2018): Poisson client sampling, client updates clipped to S (--clip), "
                   "Gaussian noise on the sum: client-level DP.")
    uses_epsilon = True
    uses_clipping = True
    privacy_model = "global"
    privacy_unit = "client"

    def privacy(self, config, partition, strategy, model, layout, context):
        noise, rate = client_level_noise(target_epsilon=config.target_epsilon, delta=config.delta,
                                         clients_per_round=config.clients_per_round, n_clients=partition.n_clients,
                                         rounds=config.rounds, accountant=config.accountant, cache=context.noise_cache)
        wrapped = ClientLevelDP(strategy, clip=config.max_grad_norm, noise_multiplier=noise, sample_rate=rate,
                                n_clients=partition.n_clients)
        return wrapped, make_trainer(TRAINER, model, layout), {"trainer": TRAINER, "noise_multiplier": noise,
                                                               "sample_rate": rate, "steps": config.rounds,
                                                               "update_clip": config.max_grad_norm}

    def finish_privacy(self, config, history, fields, layout):
        from engine.privacy.accounting import epsilon_for

        # Every round releases a noisy sum (noise is added even when nobody was sampled): `rounds` steps.
        epsilon = epsilon_for(noise_multiplier=fields["noise_multiplier"], sample_rate=fields["sample_rate"],
                              steps=config.rounds, delta=config.delta, accountant=config.accountant,
                              epsilon_scale=config.target_epsilon)
        warning = client_level_warning(n_clients=config.n_clients, noise_multiplier=fields["noise_multiplier"],
                                       sample_rate=fields["sample_rate"], dim=layout.dim, epsilon=epsilon)
        return {**fields, "epsilon": epsilon, "delta_scope": "per client; delta < 1/n_clients",
                **({"warning": warning} if warning else {})}


@register_technique("single-silo")
class SingleSilo(Technique):
    """One client's rows alone, trained like `baseline`: the reference a silo compares federation against."""

    description = "One client (e.g. one hospital) trains alone on its own rows, no federation, no privacy."

    @classmethod
    def expand_fields(cls, spec, info: DatasetInfo) -> list[dict[str, Any]]:
        fields = partition_fields(spec, info)
        names = client_names(info, fields)
        chosen = list(spec.only_clients) if spec.only_clients else names
        unknown = [name for name in chosen if name not in names]
        if unknown:
            raise ConfigError(f"No client {', '.join(unknown)} in this partition: choose from {', '.join(names)}.")
        return [dict(fields, client=name) for name in chosen]

    def check(self, config: RunConfig, data: PreparedDataset) -> None:
        partition_for(config, data).client_index(config.client)

    def run(self, config: RunConfig, data: PreparedDataset, *, context: RunContext,
            on_progress: RunProgress | None = None) -> RunResult:
        partition = partition_for(config, data)
        index = partition.client_index(config.client)
        rows = partition.train_indices[index]
        own = replace(data, x_train=data.x_train[rows], y_train=data.y_train[rows])
        generator = seed_everything(config.seed)
        model = model_for(config, data).to(context.device)
        optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
        loader = train_loader(own, config.batch_size, generator)
        with PeakMemory(context.device) as memory, Stopwatch() as clock:
            train_epochs(model, optimizer, loader, epochs=config.epochs, device=context.device, on_progress=on_progress)
        extra = {"privacy_unit": "none", "client_rows": int(len(rows)), **partition_extra(partition, data)}
        silos = silo_accuracy(model, data, partition, context.device)
        if silos is not None:
            extra.update(silo_accuracy=silos, own_silo_accuracy=silos[config.client])
        return RunResult(**evaluate(model, data, context.device), train_seconds=clock.seconds,
                         peak_memory_mb=memory.peak_mb, device=context.device,
                         steps=config.epochs * len(loader), extra=extra)
