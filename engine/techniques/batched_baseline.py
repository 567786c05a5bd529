"""Many `baseline` configurations of one sweep trained in one pass (issue 14): the K models stacked, no privacy.

The non-private twin of engine.techniques.batched_dp_sgd (its StackedNet, StackedAdam, pass sizing and on/off switch,
FRONTIER_BATCHED_DP_SGD): baseline runs of one table model (logreg, mlp) on one dataset train together when there are
several of them; a lone run, the mnist CNN and a switched-off sweep train per run (engine.techniques.baseline).

What each configuration keeps as its own, exactly as the per-run path (train_baseline) does it:
- its initialisation: seed_everything(seed) then model_for, as train_baseline makes it;
- its shuffled batches: each epoch, the row order that train_baseline's DataLoader draws from the generator
  seed_everything returned (`epoch_order`), cut into consecutive batches of its batch size, the last one short;
  its rows are gathered into a (K, B_max, d) tensor whose padding rows weigh 0;
- its loss: each row's class-weighted cross-entropy, the PLAIN mean over its batch's real rows
  (engine.models.loss), differentiated in closed form (`mean_loss_gradients`);
- its Adam state and learning rate, its batch size and epochs (a configuration that has taken its steps stops
  moving), its scoring by training.evaluate the step it ends, handed to the runner (which records it) while the
  others go on; its train_seconds is its share of the pass's step time.
Randomness here is the seed's, as in the per-run path: a baseline releases nothing private, so nothing is secret.
"""

from __future__ import annotations

import time
from typing import Callable, Hashable, Iterator, Sequence

import torch

from engine.config import RunConfig
from engine.data import PreparedDataset
from engine.measure import PeakMemory
from engine.techniques.base import RunContext, RunResult
from engine.techniques import batched_dp_sgd
from engine.techniques.batched_dp_sgd import (StackedAdam, StackedNet, batchable, batching_enabled,
                                              pass_peak_mb, pass_threads, row_backprops)
from engine.techniques.class_weights import class_weights
from engine.techniques.step_threads import StepThreads, usable_cores
from engine.techniques.training import evaluate, model_for, seed_everything

ConfigProgress = Callable[[RunConfig, float], None]


def batch_key(config: RunConfig) -> Hashable | None:
    """Runs with equal keys train in one pass; None (per run) when switched off or for the CNN."""
    return batched_dp_sgd.batch_key(config, path="batched-baseline")


def trains_together(configs: Sequence[RunConfig], data: PreparedDataset) -> bool:
    """Whether Baseline.run_batch stacks `configs`: switched on, one table model, and more than one run (a lone
    run gains nothing from stacking and keeps the per-run path)."""
    return batching_enabled() and len(configs) > 1 and batchable(configs, data)


def epoch_order(n_rows: int, generator: torch.Generator) -> torch.Tensor:
    """The row order (n,) of one epoch of train_baseline's shuffled DataLoader, drawn from its generator as torch
    draws it (torch.utils.data: each iteration of the loader first draws its base seed, then RandomSampler draws
    randperm(n) and, as the epoch ends, one more randperm(n) for the num_samples % n = 0 rows left)."""
    torch.empty((), dtype=torch.int64).random_(generator=generator)  # _BaseDataLoaderIter's base seed
    order = torch.randperm(n_rows, generator=generator)
    torch.randperm(n_rows, generator=generator)  # the sampler's trailing (empty) slice
    return order


def mean_loss_gradients(net: StackedNet, x: torch.Tensor, y: torch.Tensor, row_weights: torch.Tensor,
                        rows: torch.Tensor) -> list[torch.Tensor]:
    """Each configuration's gradient of its batch loss, in net.parameters() order, from x (K, B, d), labels y (K, B),
    row_weights (K, B) (a row's class weight, 0 on padding) and rows (K,) (real rows, at least 1). The batch loss
    is sum_i w_i CE_i / rows (engine.models.loss: a plain mean, whatever the weights)."""
    inputs, backprops = row_backprops(net, x, y, row_weights / rows.unsqueeze(1))  # d loss / d z_l: (K, B, out_l)
    grads: list[torch.Tensor] = []
    for b, a_in in zip(backprops, inputs):
        grads += [torch.bmm(b.transpose(1, 2), a_in), b.sum(1)]  # (K, out_l, in_l), (K, out_l)
    return grads


def bytes_per_config(config: RunConfig, data: PreparedDataset) -> int:
    """A generous estimate of what one configuration adds to a pass: its gathered rows (float32) with their
    activations and backprops at its batch size, its parameters, gradients and Adam moments, its epoch's row order
    and batch index (int64), and the temporaries of one step (a factor of 2)."""
    rows = min(config.batch_size, data.n_train)
    width = config.hidden_units if config.model == "mlp" else 0
    params = (data.n_features + 1) * (width or data.n_classes) + ((width + 1) * data.n_classes if width else 0)
    per_row = data.n_features + 1 + 4 * width + 4 * data.n_classes
    return int(2 * (4 * (rows * per_row + 5 * params) + 8 * (data.n_train + rows)))


def configs_per_pass(configs: Sequence[RunConfig], data: PreparedDataset, device: str) -> int:
    """How many configurations train together (batched_dp_sgd.configs_per_pass at this path's estimate)."""
    return batched_dp_sgd.configs_per_pass(configs, data, device, bytes_per_config)


class _Pass:
    """The configurations' stacked models, trained step by step; `advance` stops whenever configurations finish."""

    def __init__(self, configs: list[RunConfig], data: PreparedDataset, device: str, most_threads: int = 1):
        """`most_threads`: the torch threads its steps may use on CPU (StepThreads measures whether more help)."""
        self.configs, self.device = configs, device
        self.step_threads = StepThreads(device, most_threads)
        models, self.generators = [], []
        for config in configs:
            self.generators.append(seed_everything(config.seed))  # as train_baseline: its loader's generator
            models.append(model_for(config, data))  # and its initialisation, from the same seed
        self.net = StackedNet.from_models(models)
        self.net.set_parameters([p.to(device) for p in self.net.parameters()])
        self.features = torch.from_numpy(data.x_train).to(device)  # (n, d)
        self.labels = torch.from_numpy(data.y_train).to(device)  # (n,)
        n = len(self.labels)
        self.class_weights = torch.ones((len(configs), data.n_classes), device=device)  # (K, classes)
        for k, config in enumerate(configs):
            if (own := class_weights(config)) is not None:
                self.class_weights[k] = torch.as_tensor(own, dtype=torch.float32, device=device)
        self.batch_sizes = [min(config.batch_size, n) for config in configs]
        self.steps_per_epoch = [-(-n // size) for size in self.batch_sizes]  # len(DataLoader), last batch short
        self.steps = [config.epochs * per_epoch for config, per_epoch in zip(configs, self.steps_per_epoch)]
        self.sizes = torch.as_tensor(self.batch_sizes, device=device)  # (K,)
        self.per_epoch = torch.as_tensor(self.steps_per_epoch, device=device)  # (K,)
        self.orders = torch.zeros((len(configs), n), dtype=torch.long, device=device)  # (K, n): this epoch's rows
        self.adam = StackedAdam(self.net.parameters(),
                                torch.as_tensor([config.learning_rate for config in configs], device=device))
        self.t = 0  # steps taken by the pass
        self.seconds = [0.0] * len(configs)  # each configuration's share of the pass's training time so far

    def _batch(self, running: list[int]) -> tuple[torch.Tensor, ...]:
        """Step t's rows of each configuration: x (K, B_max, d), y (K, B_max), row weights (K, B_max) (0 on padding),
        real rows (K,) and which configurations step (K,)."""
        n, t = len(self.labels), self.t
        for k in running:
            if t % self.steps_per_epoch[k] == 0:  # its loader starts an epoch
                self.orders[k] = epoch_order(n, self.generators[k]).to(self.device)
        active = torch.zeros(len(self.configs), dtype=torch.bool, device=self.device)  # (K,)
        active[running] = True
        first = (t % self.per_epoch) * self.sizes  # (K,): where this step's batch starts in the epoch's order
        rows = ((n - first).clamp(max=self.sizes) * active).clamp(min=1)  # (K,): real rows (>= 1: no 0 / 0)
        width = max(self.batch_sizes[k] for k in running)
        offsets = torch.arange(width, device=self.device)  # (B_max,)
        present = (offsets < rows.unsqueeze(1)) & active.unsqueeze(1)  # (K, B_max)
        positions = (first.unsqueeze(1) + offsets).clamp(max=n - 1)  # (K, B_max)
        index = self.orders.gather(1, positions)  # (K, B_max)
        x = self.features.index_select(0, index.flatten()).view(*index.shape, -1)  # (K, B_max, d)
        y = self.labels.index_select(0, index.flatten()).view(index.shape)  # (K, B_max)
        return x, y, self.class_weights.gather(1, y) * present, rows, active

    def advance(self, on_progress: ConfigProgress | None) -> list[int]:
        """Step until at least one configuration has taken all its steps; their indices (empty: all done)."""
        while self.t < max(self.steps):
            self.step_threads.threads()
            start = time.perf_counter()
            t = self.t
            running = [k for k, steps in enumerate(self.steps) if t < steps]
            x, y, row_weights, rows, active = self._batch(running)
            grads = mean_loss_gradients(self.net, x, y, row_weights, rows)
            self.net.set_parameters(self.adam.step(self.net.parameters(), grads, active))
            self.step_threads.took(time.perf_counter() - start)
            self.t += 1
            for k in running:  # the step's time, shared by the configurations it trained
                self.seconds[k] += (time.perf_counter() - start) / len(running)
            if on_progress is not None:
                for k in running:
                    if (t + 1) % self.steps_per_epoch[k] == 0:
                        on_progress(self.configs[k], (t + 1) / self.steps[k])
            finished = [k for k in running if self.steps[k] == t + 1]
            if finished:
                return finished
        return []


def train_batched(configs: Sequence[RunConfig], data: PreparedDataset, *, context: RunContext,
                  on_progress: ConfigProgress | None = None) -> Iterator[tuple[RunConfig, RunResult | BaseException]]:
    """Train `configs` (baseline, one table model) in passes that fit in memory; yield each config's result (or the
    exception it raised) as soon as it has taken its steps and been scored."""
    configs = list(configs)
    if not configs:
        return
    size = configs_per_pass(configs, data, context.device)
    for start in range(0, len(configs), size):
        yield from _train_pass(configs[start:start + size], data, context, on_progress)


def _train_pass(configs: list[RunConfig], data: PreparedDataset, context: RunContext,
                on_progress: ConfigProgress | None) -> Iterator[tuple[RunConfig, RunResult | BaseException]]:
    pending = set(range(len(configs)))
    most_threads = min(torch.get_num_threads(), usable_cores())  # before pass_threads sets one
    with PeakMemory(context.device) as memory:  # the pass's peak, read as each configuration ends
        try:
            with pass_threads(context.device):
                training = _Pass(configs, data, context.device, most_threads)
            while pending:
                with pass_threads(context.device):
                    finished = training.advance(on_progress)
                if not finished:
                    break
                for k in finished:  # scored and handed on one by one: the runner reads each one's test scores
                    with pass_threads(context.device):
                        outcome = _outcome(k, training, data, context, memory)
                    pending.discard(k)
                    yield configs[k], outcome
        except Exception as exc:  # the pass failed: every configuration not yet recorded fails with it
            for k in sorted(pending):
                yield configs[k], exc


def _outcome(k: int, training: _Pass, data: PreparedDataset, context: RunContext,
             memory: PeakMemory) -> RunResult | BaseException:
    config = training.configs[k]
    try:
        model = training.net.load_into(k, model_for(config, data)).to(context.device)
        metrics = evaluate(model, data, context.device)  # the per-run path's scoring (and the runner's score tap)
        return RunResult(**metrics, train_seconds=training.seconds[k],
                         peak_memory_mb=pass_peak_mb(memory, context.device), device=context.device,
                         steps=training.steps[k], extra={"batched_configs": len(training.configs)})
    except Exception as exc:
        return exc
