"""`baseline`: the same model trained without privacy, the reference every frontier is drawn against."""

from __future__ import annotations

from typing import Callable, Hashable, Iterable, Iterator

import torch
from torch import nn

from engine.config import RunConfig
from engine.data import PreparedDataset
from engine.measure import PeakMemory, Stopwatch
from engine.techniques import batched_baseline
from engine.techniques.base import RunContext, RunProgress, RunResult, Technique
from engine.techniques.class_weights import class_weights
from engine.techniques.training import evaluate, model_for, seed_everything, train_epochs, train_loader


def train_baseline(config: RunConfig, data: PreparedDataset, *, context: RunContext,
                   on_progress: RunProgress | None = None,
                   build: Callable[[RunConfig, PreparedDataset], nn.Module] = model_for,
                   trainings: int = 1) -> tuple[nn.Module, RunResult]:  # noqa: ARG001 - no privacy to split
    """Train without privacy: the trained model and its result. `build` makes the model after seeding
    (he-inference passes its square-activation MLP and then serves the trained model encrypted)."""
    generator = seed_everything(config.seed)
    model = build(config, data).to(context.device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    loader = train_loader(data, config.batch_size, generator)
    with PeakMemory(context.device) as memory, Stopwatch() as clock:
        train_epochs(model, optimizer, loader, epochs=config.epochs, device=context.device,
                     on_progress=on_progress, class_weights=class_weights(config))
    metrics = evaluate(model, data, context.device)
    return model, RunResult(**metrics, train_seconds=clock.seconds, peak_memory_mb=memory.peak_mb,
                            device=context.device, steps=config.epochs * len(loader))


class Baseline(Technique):
    name = "baseline"
    description = "Same model and optimiser, no privacy: the non-private reference."
    weighs_classes = True

    def run(self, config: RunConfig, data: PreparedDataset, *, context: RunContext,
            on_progress: RunProgress | None = None) -> RunResult:
        return train_baseline(config, data, context=context, on_progress=on_progress)[1]

    def batch_key(self, config: RunConfig) -> Hashable | None:
        """Table models train K configurations in one pass (unless FRONTIER_BATCHED_DP_SGD=0); the mnist CNN always
        trains per run (engine.techniques.batched_baseline)."""
        return batched_baseline.batch_key(config)

    def run_batch(self, configs: Iterable[RunConfig], data: PreparedDataset, *, context: RunContext,
                  on_progress: Callable[[RunConfig, float], None] | None = None,
                  ) -> Iterator[tuple[RunConfig, RunResult | BaseException]]:
        configs = list(configs)
        if batched_baseline.trains_together(configs, data):
            yield from batched_baseline.train_batched(configs, data, context=context, on_progress=on_progress)
        else:
            yield from super().run_batch(configs, data, context=context, on_progress=on_progress)
