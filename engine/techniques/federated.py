"""Federated techniques: `fedavg`, `fedprox`, `fed-dp-sgd` (record-level DP) and `dp-fedavg` (client-level DP).

Their settings are declared in federated_settings.py. Secure aggregation, dropout and compression are
wrappers switched on by the run's settings. dp-fedavg's client clipping norm S is the sweep's clipping axis,
like DP-SGD's per-sample C. `single-silo` (one client alone) lives in single_silo.py.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch

from engine.config import RunConfig, SweepSpec
from engine.data import DatasetInfo, PreparedDataset
from engine.federated.batched_clients import BatchedClientsTrainer
from engine.federated.compression import Compression, parse_compression
from engine.federated.local import ClientData, LocalOptions, ParamLayout, make_trainer
from engine.federated.client_level_dp import ClientLevelDP, client_level_noise, client_level_warning
from engine.federated.partitions import Partition, label_skew, make_partition
from engine.federated.record_level_dp import DPSGDTrainer, record_level_epsilon, record_level_plan
from engine.federated.secure_aggregation.strategy_wrapper import SecureAggregation, adam_update_bound
from engine.federated.strategies import FedAvg, FedProx, run_rounds
from engine.measure import PeakMemory, Stopwatch
from engine.privacy.calibration import calibrated_noise
from engine.techniques.base import Measurement, RunContext, RunProgress, RunResult, Technique
from engine.techniques.batched_dp_sgd import BATCHED_MODELS, batching_enabled
from engine.techniques.class_weights import class_weights
from engine.techniques.federated_settings import FederatedSettings, FedProxSettings, PartitionSettings, resolve_rounds
from engine.techniques.training import evaluate, model_for, seed_everything

TRAINER = "auto"  # vectorised clients when their sizes are even, else a loop (local.AutoTrainer; benchmarks/)
# Torch threads for the round loop on CPU. Client steps are small matrices: on an idle 2-core machine two threads
# took 0.46 s for adult/10 clients/10 rounds and one thread 0.69 s, but with one core busy elsewhere two threads
# took 5-32 s (threads waiting on each other) and one thread still 0.69 s. None: leave torch's setting.
CPU_THREADS = 1
FEDERATED_MEASUREMENTS = (
    Measurement("privacy_unit", str, "unit of privacy"),  # "record", "client" or "none"
    Measurement("comm_bytes", int, "bytes on the wire", "B", cost=True),  # every byte up and down over the run
    Measurement("rounds", int, "communication rounds", "rounds", cost=True),
)


def partition_for(config: RunConfig, data: PreparedDataset) -> Partition:
    settings: PartitionSettings = PartitionSettings.from_values(dict(config.params))
    return make_partition(data, kind=settings.partition, n_clients=settings.n_clients, alpha=settings.alpha,
                          column=settings.partition_column, seed=config.seed)


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
    """Each client's size and label mix, for the dashboard's partition view. The label counts are exact counts of
    the private rows, released without noise: diagnostics that no epsilon covers, and named so."""
    return {
        "client_names": list(partition.client_names), "client_sizes": partition.sizes,
        "client_label_mix_not_private": [np.bincount(data.y_train[rows], minlength=data.n_classes).tolist()
                             for rows in partition.train_indices],
        "label_skew_not_private": label_skew(partition, data),
    }


class FederatedTechnique(Technique):
    """The shared run: partition, strategy (+ wrappers), the round loop, evaluation and costs."""

    settings = FederatedSettings
    measurements = FEDERATED_MEASUREMENTS
    privacy_unit = "none"  # "record" or "client" for the private ones
    weighs_classes = True

    @classmethod
    def resolve(cls, spec: SweepSpec, settings: FederatedSettings, info: DatasetInfo) -> list[dict[str, Any]]:
        return [resolve_rounds(spec, settings, info)]

    def check(self, config: RunConfig, data: PreparedDataset) -> None:
        partition_for(config, data)

    # --- what differs between the techniques -------------------------------------------------------------
    def strategy(self, config, fed, partition, local):
        return FedAvg(n_clients=partition.n_clients, clients_per_round=fed.clients_per_round, local=local,
                      sizes=partition.sizes)

    def privacy(self, config, fed, partition, strategy, model, layout, context) -> tuple[Any, Any, dict]:
        """(strategy, trainer, privacy fields) -- the non-private default."""
        return strategy, make_trainer(TRAINER, model, layout), {"trainer": TRAINER}

    def finish_privacy(self, config, fed, history, fields, layout) -> dict:
        return fields

    # --- the run -------------------------------------------------------------------------------------------
    def run(self, config: RunConfig, data: PreparedDataset, *, context: RunContext,
            on_progress: RunProgress | None = None) -> RunResult:
        fed: FederatedSettings = self.settings_of(config)
        partition = partition_for(config, data)
        seed_everything(config.seed)
        model = model_for(config, data).to(context.device)
        layout = ParamLayout(model)
        local = LocalOptions(epochs=fed.local_epochs, batch_size=config.batch_size,
                             learning_rate=config.learning_rate, class_weights=class_weights(config))
        strategy = self.strategy(config, fed, partition, local)
        with np.errstate(divide="ignore", invalid="ignore"):  # Opacus' PRV takes log(1 - q): -inf, harmless, at q = 1
            strategy, trainer, fields = self.privacy(config, fed, partition, strategy, model, layout, context)
        method, fraction = parse_compression(fed.compression)
        if method != "none":
            strategy = Compression(strategy, method=method, fraction=fraction, seed=config.seed)
        if fed.secure_aggregation:
            # Clients train with Adam: no coordinate moves more than adam_update_bound (and dp-fedavg clips to S).
            steps = fed.local_epochs * -(-max(partition.sizes) // config.batch_size)
            bound = adam_update_bound(config.learning_rate, fields.get("max_local_steps", steps))
            strategy = SecureAggregation(strategy, value_bound=min(bound, fields.get("update_clip", bound)))
        clients = ClientData(data.x_train, data.y_train, partition.train_indices, context.device)
        scorer = copy.deepcopy(model)

        def on_round(round_index, params):
            if on_progress:
                on_progress((round_index + 1) / fed.rounds)
            return evaluate(layout.load(scorer, params), data, context.device)["accuracy"]

        threads = torch.get_num_threads()
        if context.device == "cpu" and CPU_THREADS:
            torch.set_num_threads(CPU_THREADS)
        try:
            with PeakMemory(context.device) as memory, Stopwatch() as clock:
                history = run_rounds(strategy, trainer, clients, params=layout.model_vector(model),
                                     rounds=fed.rounds, seed=config.seed, dropout=fed.dropout, on_round=on_round)
        finally:
            torch.set_num_threads(threads)
        layout.load(model, history.params)
        with np.errstate(divide="ignore", invalid="ignore"):
            fields = self.finish_privacy(config, fed, history, fields, layout)
        described = strategy.describe()
        extra = {
            "privacy_unit": self.privacy_unit, **history.traffic.summary(fed.rounds), **partition_extra(partition, data),
            "round_accuracy": history.round_metrics, "selected_per_round": history.selected_per_round,
            "survivors_per_round": history.survivors_per_round, "participation": history.participation.tolist(),
            "n_parameters": layout.dim, **described,
            **({"trainer_rounds": dict(trainer.rounds)} if hasattr(trainer, "rounds") else {}),
            **{k: v for k, v in fields.items() if k not in ("epsilon", "noise_multiplier", "sample_rate", "steps")},
        }
        if fed.secure_aggregation:
            extra.update(secagg_aborted_rounds=strategy.aborted_rounds, secagg_clamped_values=strategy.clamped_values)
        silos = silo_accuracy(model, data, partition, context.device)
        if silos is not None:
            extra["silo_accuracy"] = silos
        return RunResult(**evaluate(model, data, context.device), train_seconds=clock.seconds,
                         peak_memory_mb=memory.peak_mb, device=context.device, epsilon=fields.get("epsilon"),
                         noise_multiplier=fields.get("noise_multiplier"), sample_rate=fields.get("sample_rate"),
                         steps=fields.get("steps"), extra=extra)


class FedAvgTechnique(FederatedTechnique):
    name = "fedavg"
    description = "Federated averaging (McMahan et al. 2017): clients train locally, the server averages by examples."


class FedProxTechnique(FederatedTechnique):
    name = "fedprox"
    description = "FedProx (Li et al. 2020): FedAvg with a proximal term mu for heterogeneous silos."

    settings = FedProxSettings

    def strategy(self, config, fed, partition, local):
        return FedProx(mu=fed.mu, n_clients=partition.n_clients, clients_per_round=fed.clients_per_round,
                       local=local, sizes=partition.sizes)


class FedDPSGD(FederatedTechnique):
    name = "fed-dp-sgd"
    description = ("FedAvg whose clients train with DP-SGD (Opacus' mechanism) on their own records: record-level DP, "
                   "the worst client's epsilon (clients hold disjoint records).")
    uses_epsilon = True
    uses_clipping = True
    trust_model = "central"
    privacy_unit = "record"

    def privacy(self, config, fed, partition, strategy, model, layout, context):
        sample_rate, steps_per_epoch, planned = record_level_plan(partition.sizes, config.batch_size,
                                                                  fed.local_epochs, fed.rounds)
        noise = calibrated_noise(target_epsilon=config.target_epsilon, delta=config.delta, sample_rate=sample_rate,
                                 steps=planned, accountant=config.accountant, cache=context.noise_cache)
        # Table models: the round's clients stacked in one pass (issue 14); the CNN, or batching off: Opacus per client
        batched = batching_enabled() and config.model in BATCHED_MODELS
        trainer = (BatchedClientsTrainer if batched else DPSGDTrainer)(
            model, layout, noise_multiplier=noise, max_grad_norm=config.max_grad_norm, sample_rate=sample_rate,
            steps_per_epoch=steps_per_epoch, randomness=context.randomness)
        return strategy, trainer, {"trainer": "batched-clients" if batched else "opacus", "noise_multiplier": noise,
                                   "sample_rate": sample_rate, "steps_per_epoch": steps_per_epoch,
                                   "max_local_steps": fed.local_epochs * steps_per_epoch}

    def finish_privacy(self, config, fed, history, fields, layout):
        steps = [int(p) * fed.local_epochs * fields["steps_per_epoch"] for p in history.participation]
        epsilon, per_client = record_level_epsilon(
            noise_multiplier=fields["noise_multiplier"], sample_rate=fields["sample_rate"], steps_per_client=steps,
            delta=config.delta, accountant=config.accountant, epsilon_scale=config.target_epsilon)
        return {**fields, "epsilon": epsilon, "steps": max(steps), "client_epsilon": per_client,
                "delta_scope": "per record; delta < 1/n_train, hence below 1/n for every client"}


class DPFedAvg(FederatedTechnique):
    name = "dp-fedavg"
    description = ("DP-FedAvg (McMahan et al. 2018): Poisson client sampling, client updates clipped to S (the "
                   "clipping norm), Gaussian noise on the sum: client-level DP.")
    uses_epsilon = True
    uses_clipping = True
    trust_model = "central"
    privacy_unit = "client"

    def privacy(self, config, fed, partition, strategy, model, layout, context):
        noise, rate = client_level_noise(target_epsilon=config.target_epsilon, delta=config.delta,
                                         clients_per_round=fed.clients_per_round, n_clients=partition.n_clients,
                                         rounds=fed.rounds, accountant=config.accountant, cache=context.noise_cache)
        wrapped = ClientLevelDP(strategy, clip=config.max_grad_norm, noise_multiplier=noise, sample_rate=rate,
                                n_clients=partition.n_clients, secret_rng=context.randomness.numpy_generator())
        return wrapped, make_trainer(TRAINER, model, layout), {"trainer": TRAINER, "noise_multiplier": noise,
                                                               "sample_rate": rate, "steps": fed.rounds,
                                                               "update_clip": config.max_grad_norm}

    def finish_privacy(self, config, fed, history, fields, layout):
        from engine.privacy.accounting import epsilon_for

        # Every round releases a noisy sum (noise is added even when nobody was sampled): `rounds` steps.
        epsilon = epsilon_for(noise_multiplier=fields["noise_multiplier"], sample_rate=fields["sample_rate"],
                              steps=fed.rounds, delta=config.delta, accountant=config.accountant,
                              epsilon_scale=config.target_epsilon)
        warning = client_level_warning(n_clients=fed.n_clients, noise_multiplier=fields["noise_multiplier"],
                                       sample_rate=fields["sample_rate"], dim=layout.dim, epsilon=epsilon)
        return {**fields, "epsilon": epsilon, "delta_scope": "per client; delta < 1/n_clients",
                **({"warning": warning} if warning else {})}
