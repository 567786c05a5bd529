"""`dp-sgd`: Opacus DP-SGD with Poisson sampling, per-sample clipping to C, and Gaussian noise calibrated
so that the named accountant (PRV by default, or RDP) reports at most the target epsilon."""

from __future__ import annotations

import warnings
from typing import Callable, Hashable, Iterable, Iterator

import torch
from opacus import PrivacyEngine
from torch import nn

from engine.config import RunConfig
from engine.data import PreparedDataset
from engine.measure import PeakMemory, Stopwatch
from engine.privacy.accounting import epsilon_for, steps_and_sample_rate
from engine.privacy.calibration import calibrated_noise
from engine.techniques import batched_dp_sgd
from engine.techniques.base import RunContext, RunProgress, RunResult, Technique
from engine.techniques.class_weights import class_weights
from engine.techniques.training import evaluate, model_for, seed_everything, train_epochs, train_loader


class DPSGD(Technique):
    name = "dp-sgd"
    description = "Opacus DP-SGD: per-sample clipping, Gaussian noise, Poisson sampling (record-level DP)."
    uses_epsilon = True
    uses_clipping = True
    trust_model = "central"
    weighs_classes = True

    def run(self, config: RunConfig, data: PreparedDataset, *, context: RunContext,
            on_progress: RunProgress | None = None) -> RunResult:
        return train_dp_sgd(config, data, context=context, on_progress=on_progress)[1]

    def batch_key(self, config: RunConfig) -> Hashable | None:
        """Table models train K configurations in one pass (unless FRONTIER_BATCHED_DP_SGD=0); the mnist CNN
        always trains per run (engine.techniques.batched_dp_sgd)."""
        return batched_dp_sgd.batch_key(config)

    def run_batch(self, configs: Iterable[RunConfig], data: PreparedDataset, *, context: RunContext,
                  on_progress: Callable[[RunConfig, float], None] | None = None,
                  ) -> Iterator[tuple[RunConfig, RunResult | BaseException]]:
        configs = list(configs)
        # A white-box audit's gradient canaries need Opacus' optimizer: such runs always train per run.
        if context.dp_optimizer_hook is None and batched_dp_sgd.batching_enabled() and \
                batched_dp_sgd.batchable(configs, data):
            yield from batched_dp_sgd.train_batched(configs, data, context=context, on_progress=on_progress)
        else:
            yield from super().run_batch(configs, data, context=context, on_progress=on_progress)


def train_dp_sgd(config: RunConfig, data: PreparedDataset, *, context: RunContext,
                 on_progress: RunProgress | None = None,
                 build: Callable[[RunConfig, PreparedDataset], nn.Module] = model_for,
                 trainings: int = 1) -> tuple[nn.Module, RunResult]:
    """Train with DP-SGD: the trained model (an Opacus GradSampleModule; `._module` is the plain one) and its
    result. `build` makes the model after seeding (he-inference passes its square-activation MLP). `trainings`:
    how many such trainings the run makes on the same rows; the noise is calibrated so that all of them together
    stay within the target (their steps compose as one longer run), and the result's epsilon is this one's."""
    planned_steps, sample_rate = steps_and_sample_rate(data.n_train, config.batch_size, config.epochs)
    noise_multiplier = calibrated_noise(
        target_epsilon=config.target_epsilon, delta=config.delta, sample_rate=sample_rate,
        steps=planned_steps * trainings, accountant=config.accountant, cache=context.noise_cache,
    )
    seed_everything(config.seed)  # the model's initialisation only: not privacy-relevant
    model = build(config, data).to(context.device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    with warnings.catch_warnings():
        # Opacus warns that secure_mode is off: its CSPRNG (torchcsprng) does not install with torch 2.13. The
        # Poisson sample and the noise come from secret generators instead (engine.privacy.randomness).
        warnings.filterwarnings("ignore", message="Secure RNG turned off")
        engine = PrivacyEngine(accountant=config.accountant)
        sampling = context.randomness.torch_generator("cpu")  # Opacus' Poisson sampler uses the loader's generator
        model, optimizer, loader = engine.make_private(
            module=model, optimizer=optimizer, data_loader=train_loader(data, config.batch_size, sampling),
            noise_multiplier=noise_multiplier, max_grad_norm=config.max_grad_norm, poisson_sampling=True,
            noise_generator=context.randomness.torch_generator(context.device),
        )
    if context.dp_optimizer_hook is not None:  # a white-box audit's gradient canaries (engine.audit)
        context.dp_optimizer_hook(optimizer)
    with PeakMemory(context.device) as memory, Stopwatch() as clock, warnings.catch_warnings():
        # Opacus' hooks fire on the first layer whose input needs no gradient: harmless, and noisy.
        warnings.filterwarnings("ignore", message="Full backward hook is firing")
        train_epochs(model, optimizer, loader, epochs=config.epochs, device=context.device,
                     on_progress=on_progress, class_weights=class_weights(config))
    # Epsilon for the steps the accountant actually recorded (not the plan).
    steps_done = sum(steps for _, _, steps in engine.accountant.history)
    epsilon = epsilon_for(noise_multiplier=noise_multiplier, sample_rate=sample_rate, steps=steps_done,
                          delta=config.delta, accountant=config.accountant, epsilon_scale=config.target_epsilon)
    metrics = evaluate(model, data, context.device)
    return model, RunResult(**metrics, train_seconds=clock.seconds, peak_memory_mb=memory.peak_mb,
                            device=context.device, epsilon=epsilon, noise_multiplier=noise_multiplier,
                            sample_rate=sample_rate, steps=steps_done)
