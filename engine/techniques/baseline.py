"""`baseline`: the same model trained without privacy, the reference every frontier is drawn against."""

from __future__ import annotations

import torch

from engine.config import RunConfig
from engine.data import PreparedDataset
from engine.measure import PeakMemory, Stopwatch
from engine.techniques.base import RunContext, RunProgress, RunResult, Technique
from engine.techniques.registry import register_technique
from engine.techniques.training import evaluate, model_for, seed_everything, train_epochs, train_loader


@register_technique("baseline")
class Baseline(Technique):
    description = "Same model and optimiser, no privacy: the non-private reference."

    def run(self, config: RunConfig, data: PreparedDataset, *, context: RunContext,
            on_progress: RunProgress | None = None) -> RunResult:
        generator = seed_everything(config.seed)
        model = model_for(config, data).to(context.device)
        optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
        loader = train_loader(data, config.batch_size, generator)
        with PeakMemory(context.device) as memory, Stopwatch() as clock:
            train_epochs(model, optimizer, loader, epochs=config.epochs, device=context.device,
                         on_progress=on_progress)
        metrics = evaluate(model, data, context.device)
        return RunResult(**metrics, train_seconds=clock.seconds, peak_memory_mb=memory.peak_mb,
                         device=context.device, steps=config.epochs * len(loader))
