"""`single-silo`: one client's rows alone, trained like `baseline`: what a hospital gets without joining."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import torch

from engine.config import RunConfig, SweepSpec
from engine.data import DatasetInfo, PreparedDataset
from engine.errors import ConfigError
from engine.measure import PeakMemory, Stopwatch
from engine.techniques.base import Measurement, RunContext, RunProgress, RunResult, Technique
from engine.techniques.class_weights import class_weights
from engine.techniques.federated import partition_extra, partition_for, silo_accuracy
from engine.techniques.federated_settings import SingleSiloSettings, client_names, resolve_partition
from engine.techniques.training import evaluate, model_for, seed_everything, train_epochs, train_loader


class SingleSilo(Technique):
    """The reference a silo compares federation against: one run per client unless only_clients says."""

    name = "single-silo"
    description = "One client (e.g. one hospital) trains alone on its own rows, no federation, no privacy."
    weighs_classes = True
    settings = SingleSiloSettings
    measurements = (Measurement("privacy_unit", str, "unit of privacy"),)

    @classmethod
    def resolve(cls, spec: SweepSpec, settings: SingleSiloSettings, info: DatasetInfo) -> list[dict[str, Any]]:
        partition = resolve_partition(spec, settings, info)
        names = client_names(info, partition)
        chosen = list(settings.only_clients) if settings.only_clients else names
        unknown = [name for name in chosen if name not in names]
        if unknown:
            raise ConfigError(f"No client {', '.join(unknown)} in this partition: choose {{only_clients}} from "
                              f"{', '.join(names)}.", setting="only_clients")
        return [dict(partition, client=name) for name in chosen]

    def check(self, config: RunConfig, data: PreparedDataset) -> None:
        partition_for(config, data).client_index(config.param("client"))

    def run(self, config: RunConfig, data: PreparedDataset, *, context: RunContext,
            on_progress: RunProgress | None = None) -> RunResult:
        client = config.param("client")
        partition = partition_for(config, data)
        rows = partition.train_indices[partition.client_index(client)]
        own = replace(data, x_train=data.x_train[rows], y_train=data.y_train[rows])
        generator = seed_everything(config.seed)
        model = model_for(config, data).to(context.device)
        optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
        loader = train_loader(own, config.batch_size, generator)
        with PeakMemory(context.device) as memory, Stopwatch() as clock:
            train_epochs(model, optimizer, loader, epochs=config.epochs, device=context.device, on_progress=on_progress,
                         class_weights=class_weights(config))
        extra = {"privacy_unit": "none", "client_rows": int(len(rows)), **partition_extra(partition, data)}
        silos = silo_accuracy(model, data, partition, context.device)
        if silos is not None:
            extra.update(silo_accuracy=silos, own_silo_accuracy=silos[client])
        return RunResult(**evaluate(model, data, context.device), train_seconds=clock.seconds,
                         peak_memory_mb=memory.peak_mb, device=context.device,
                         steps=config.epochs * len(loader), extra=extra)
