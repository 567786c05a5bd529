"""Many `dp-sgd` configurations of one sweep trained in one pass (issue 14): the K models stacked.

Off by default: set FRONTIER_BATCHED_DP_SGD=1 (read by `batching_enabled`) and the runner hands dp-sgd runs of one
table model (logreg, mlp) on one dataset to `train_batched` as one group. The mnist CNN always trains per run
through Opacus (its convolutions have no ghost-norm identity here).

What each configuration keeps as its own, exactly as the per-run path (engine.techniques.dp_sgd) does it:
- its noise multiplier, calibrated with engine.privacy.calibration (and the NoiseCache) for its own epsilon, delta,
  accountant, sample rate and steps; its epsilon from engine.privacy.accounting for the steps it took;
- its Poisson sample: every step, each configuration keeps each training row with its own rate q_k, drawn from a
  secret generator (context.randomness), independently of the other configurations; its rows are gathered into a
  (K, B_max, d) tensor, padded, with a mask; an empty sample still steps (noise only) and is counted;
- its clipping norm C_k: per-sample gradient norms by the ghost-norm identity for linear layers,
  ||dW_i||^2 + ||db_i||^2 = ||dL/dz_i||^2 (||a_i||^2 + 1), no per-sample gradient materialised; each row's clip
  factor is Opacus' min(1, C_k / (norm_i + 1e-6));
- its Gaussian noise, std sigma_k C_k, from a secret generator (never the recorded seed), and the sum divided by
  its expected batch size int(n q_k) as Opacus' DPOptimizer does;
- its Adam state and learning rate, its batch size and number of steps (a configuration that has taken its steps
  stops moving), its model initialisation (seeded from its own seed, as the per-run path), its class weights;
- its evaluation: the trained weights are loaded into the engine's own model and scored by training.evaluate.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Hashable, Iterator, Sequence

import torch
from torch import nn

from engine.config import RunConfig
from engine.data import PreparedDataset
from engine.measure import PeakMemory, Stopwatch
from engine.models import MLP, LogisticRegression
from engine.privacy.accounting import epsilon_for, steps_and_sample_rate
from engine.privacy.calibration import calibrated_noise
from engine.techniques.base import RunContext, RunResult
from engine.techniques.class_weights import class_weights
from engine.techniques.training import evaluate, model_for, seed_everything

ENVIRONMENT_VARIABLE = "FRONTIER_BATCHED_DP_SGD"  # "1": dp-sgd table runs of one sweep train together
BATCHED_MODELS = ("logreg", "mlp")  # stacks of linear layers with ReLU between them
MAX_CONFIGS_PER_PASS = 64  # a larger group trains in passes of at most this many configurations
# Torch threads on CPU during a pass. Its tensors are small (a few MB), so intra-op threads cost more than they
# give: measured on the shared 2-core machine (load ~4), K = 6 adult MLPs, one epoch: 0.43 s with 1 thread, 13.8 s
# with 2 (OpenMP threads spinning against the other work).
CPU_THREADS = 1
CLIP_STABILISER = 1e-6  # Opacus' clip factor: C / (norm + 1e-6), at most 1
ADAM_BETAS = (0.9, 0.999)  # torch.optim.Adam's defaults, as the per-run path uses them
ADAM_EPS = 1e-8

ConfigProgress = Callable[[RunConfig, float], None]


def batching_enabled() -> bool:
    """Whether the batched path is switched on (environment variable; off unless set to 1/true/yes/on)."""
    return os.environ.get(ENVIRONMENT_VARIABLE, "").strip().lower() in ("1", "true", "yes", "on")


def batch_key(config: RunConfig) -> Hashable | None:
    """Runs with equal keys train in one pass; None (per run) when switched off or for the CNN."""
    if not batching_enabled() or config.model not in BATCHED_MODELS:
        return None
    return ("batched-dp-sgd", config.dataset, config.train_subsample, config.model,
            config.hidden_units if config.model == "mlp" else None, config.params)


def batchable(configs: Sequence[RunConfig], data: PreparedDataset) -> bool:
    return (not data.is_image and len({(c.model, c.hidden_units if c.model == "mlp" else None) for c in configs}) == 1
            and all(c.model in BATCHED_MODELS for c in configs))


# --- the stacked models -----------------------------------------------------------------------------------------
def linear_layers(model: nn.Module) -> list[nn.Linear]:
    """The linear layers of a table model, input first (ReLU between consecutive ones)."""
    if isinstance(model, LogisticRegression):
        return [model.linear]
    if isinstance(model, MLP):
        return [model.hidden, model.output]
    raise TypeError(f"The batched DP-SGD path trains logreg and mlp models, not {type(model).__name__}.")


@dataclass
class StackedNet:
    """K models of one shape: layer l's weights (K, out_l, in_l) and biases (K, out_l); ReLU between layers."""

    weights: list[torch.Tensor]
    biases: list[torch.Tensor]

    @classmethod
    def from_models(cls, models: Sequence[nn.Module]) -> "StackedNet":
        layers = [linear_layers(model) for model in models]
        return cls(weights=[torch.stack([own[l].weight.detach() for own in layers]) for l in range(len(layers[0]))],
                   biases=[torch.stack([own[l].bias.detach() for own in layers]) for l in range(len(layers[0]))])

    def parameters(self) -> list[torch.Tensor]:
        """In the order of the per-run model's parameters (Opacus draws noise in this order)."""
        return [tensor for pair in zip(self.weights, self.biases) for tensor in pair]

    def set_parameters(self, tensors: Sequence[torch.Tensor]) -> None:
        self.weights, self.biases = list(tensors[0::2]), list(tensors[1::2])

    def load_into(self, k: int, model: nn.Module) -> nn.Module:
        """Configuration k's weights copied into `model` (a model_for model of the same shape)."""
        with torch.no_grad():
            for layer, weight, bias in zip(linear_layers(model), self.weights, self.biases):
                layer.weight.copy_(weight[k])  # (out, in)
                layer.bias.copy_(bias[k])  # (out,)
        return model


def clipped_gradients(net: StackedNet, x: torch.Tensor, y: torch.Tensor, row_weights: torch.Tensor,
                      clip: torch.Tensor, x_squared: torch.Tensor | None = None,
                      ) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Each configuration's sum of per-sample clipped gradients, in net.parameters() order, and the per-sample
    gradient norms (K, B), from x (K, B, d), labels y (K, B), row_weights (K, B) (a row's class weight, 0 on
    padding) and clip (K,). A row's loss is its weighted cross-entropy (Opacus undoes the batch mean).
    `x_squared` (K, B): each row's ||x_i||^2 if known (computed once per table), else computed here."""
    inputs, pre_activations = [], []
    a = x  # (K, B, d)
    last = len(net.weights) - 1
    for l, (weight, bias) in enumerate(zip(net.weights, net.biases)):
        inputs.append(a)  # (K, B, in_l)
        z = torch.baddbmm(bias.unsqueeze(1), a, weight.transpose(1, 2))  # (K, B, out_l)
        pre_activations.append(z)
        a = torch.relu(z) if l < last else z
    probabilities = torch.softmax(a, dim=-1)  # (K, B, classes)
    one_hot = nn.functional.one_hot(y, probabilities.shape[-1]).to(probabilities.dtype)  # (K, B, classes)
    g = (probabilities - one_hot) * row_weights.unsqueeze(-1)  # (K, B, classes): d loss_i / d z_last
    backprops: list[torch.Tensor] = [g] * len(net.weights)
    for l in range(last, 0, -1):
        g = torch.bmm(g, net.weights[l]) * (pre_activations[l - 1] > 0)  # (K, B, in_l): d loss_i / d z_{l-1}
        backprops[l - 1] = g
    input_squared = [x_squared if x_squared is not None else x.square().sum(-1)]  # (K, B): ||a_i||^2, layer 0
    input_squared += [a_in.square().sum(-1) for a_in in inputs[1:]]  # (K, B) each
    squared = sum(b.square().sum(-1) * (a_sq + 1.0)  # (K, B): ||dW_i||^2 + ||db_i||^2 of each layer, summed
                  for b, a_sq in zip(backprops, input_squared))
    norms = squared.sqrt()  # (K, B)
    factor = (clip.unsqueeze(1) / (norms + CLIP_STABILISER)).clamp(max=1.0) * (row_weights != 0)  # (K, B)
    sums: list[torch.Tensor] = []
    for b, a_in in zip(backprops, inputs):
        scaled = b * factor.unsqueeze(-1)  # (K, B, out_l)
        sums.append(torch.bmm(scaled.transpose(1, 2), a_in))  # (K, out_l, in_l)
        sums.append(scaled.sum(1))  # (K, out_l)
    return sums, norms


def noised_gradients(sums: Sequence[torch.Tensor], noise_std: torch.Tensor, expected_batch: torch.Tensor,
                     generator: torch.Generator) -> list[torch.Tensor]:
    """(sum + N(0, noise_std_k^2)) / expected_batch_k per configuration, as Opacus' DPOptimizer (noise per
    parameter in parameter order; configuration k's noise is the k-th slice of each draw)."""
    noised = []
    for total in sums:  # (K, ...)
        shape = (-1,) + (1,) * (total.dim() - 1)
        noise = torch.normal(0.0, 1.0, size=tuple(total.shape), generator=generator, device=total.device,
                             dtype=total.dtype)  # (K, ...)
        noised.append((total + noise * noise_std.view(shape)) / expected_batch.view(shape))
    return noised


class StackedAdam:
    """torch.optim.Adam (no weight decay) on stacked parameters: each configuration its own learning rate, moments
    and step count; configurations not `active` this step are left exactly as they are."""

    def __init__(self, parameters: Sequence[torch.Tensor], learning_rates: torch.Tensor):
        self.learning_rates = learning_rates.double()  # (K,)
        self.exp_avg = [torch.zeros_like(p) for p in parameters]
        self.exp_avg_sq = [torch.zeros_like(p) for p in parameters]
        self.steps = torch.zeros_like(self.learning_rates)  # (K,)

    def step(self, parameters: Sequence[torch.Tensor], grads: Sequence[torch.Tensor],
             active: torch.Tensor) -> list[torch.Tensor]:
        beta1, beta2 = ADAM_BETAS
        self.steps += active.double()
        steps = self.steps.clamp(min=1.0)  # (K,)
        step_size = self.learning_rates / (1 - beta1 ** steps)  # (K,)
        correction2_sqrt = (1 - beta2 ** steps).sqrt()  # (K,)
        updated = []
        for i, (p, grad) in enumerate(zip(parameters, grads)):
            shape = (-1,) + (1,) * (p.dim() - 1)
            keep = active.view(shape)
            exp_avg = torch.where(keep, self.exp_avg[i].lerp(grad, 1 - beta1), self.exp_avg[i])
            exp_avg_sq = torch.where(keep, self.exp_avg_sq[i] * beta2 + (1 - beta2) * grad * grad, self.exp_avg_sq[i])
            denom = exp_avg_sq.sqrt() / correction2_sqrt.to(p.dtype).view(shape) + ADAM_EPS
            moved = p - step_size.to(p.dtype).view(shape) * exp_avg / denom
            self.exp_avg[i], self.exp_avg_sq[i] = exp_avg, exp_avg_sq
            updated.append(torch.where(keep, moved, p))
        return updated


# --- Poisson samples --------------------------------------------------------------------------------------------
def poisson_batches(n_rows: int, sample_rates: torch.Tensor, active: torch.Tensor,
                    generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Each active configuration's own Poisson sample of the rows (rate q_k, independent draws): row indices
    (K, B_max) and a mask (K, B_max) of the real rows (padding rows point at row 0 and are masked out)."""
    device = sample_rates.device
    chosen = torch.rand((len(sample_rates), n_rows), generator=generator, device=device) < sample_rates.unsqueeze(1)
    chosen &= active.unsqueeze(1)  # (K, n): a configuration that has taken its steps draws nothing
    counts = chosen.sum(1)  # (K,)
    width = int(counts.max()) if len(counts) else 0
    configs, rows = chosen.nonzero(as_tuple=True)  # (M,), (M,) in row order within each configuration
    slots = chosen.cumsum(1)[configs, rows] - 1  # (M,): position of each drawn row in its configuration's batch
    index = torch.zeros((len(sample_rates), width), dtype=torch.long, device=device)  # (K, B_max)
    present = torch.zeros((len(sample_rates), width), dtype=torch.bool, device=device)  # (K, B_max)
    index[configs, slots] = rows
    present[configs, slots] = True
    return index, present


@contextmanager
def _threads(device: str) -> Iterator[None]:
    previous = torch.get_num_threads()
    if device == "cpu":
        torch.set_num_threads(CPU_THREADS)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


# --- one pass ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Member:
    """One configuration of a pass and what its accounting says (as the per-run path computes it)."""

    config: RunConfig
    steps: int
    sample_rate: float
    steps_per_epoch: int
    expected_batch: int
    noise_multiplier: float


def _member(config: RunConfig, data: PreparedDataset, context: RunContext) -> _Member:
    steps, sample_rate = steps_and_sample_rate(data.n_train, config.batch_size, config.epochs)
    noise_multiplier = calibrated_noise(
        target_epsilon=config.target_epsilon, delta=config.delta, sample_rate=sample_rate, steps=steps,
        accountant=config.accountant, cache=context.noise_cache,
    )
    return _Member(config=config, steps=steps, sample_rate=sample_rate, steps_per_epoch=steps // config.epochs,
                   expected_batch=int(data.n_train * sample_rate), noise_multiplier=noise_multiplier)


def _train(members: list[_Member], data: PreparedDataset, context: RunContext,
           on_progress: ConfigProgress | None) -> StackedNet:
    """Train the members' stacked models for their own number of steps; returns the trained stack."""
    device = context.device
    models = []
    for member in members:
        seed_everything(member.config.seed)  # each model's initialisation as the per-run path makes it
        models.append(model_for(member.config, data))
    net = StackedNet.from_models(models)
    net.set_parameters([p.to(device) for p in net.parameters()])
    features = torch.from_numpy(data.x_train).to(device)  # (n, d)
    labels = torch.from_numpy(data.y_train).to(device)  # (n,)
    features_squared = features.square().sum(1)  # (n,): ||x_i||^2 of every training row, once
    weights = torch.ones((len(members), data.n_classes), device=device)  # (K, classes)
    for k, member in enumerate(members):
        if (own := class_weights(member.config)) is not None:
            weights[k] = torch.as_tensor(own, dtype=torch.float32, device=device)

    def per_config(values) -> torch.Tensor:
        return torch.as_tensor(values, dtype=torch.float32, device=device)  # (K,)

    clip = per_config([m.config.max_grad_norm for m in members])
    noise_std = per_config([m.noise_multiplier * m.config.max_grad_norm for m in members])
    expected_batch = per_config([m.expected_batch for m in members])
    sample_rates = per_config([m.sample_rate for m in members])
    steps = torch.as_tensor([m.steps for m in members], device=device)  # (K,)
    adam = StackedAdam(net.parameters(), torch.as_tensor([m.config.learning_rate for m in members], device=device))
    sampling = context.randomness.torch_generator(device)  # secret: each configuration's Poisson samples
    noise = context.randomness.torch_generator(device)  # secret: each configuration's Gaussian noise
    for t in range(max(m.steps for m in members)):
        active = steps > t  # (K,)
        index, present = poisson_batches(len(labels), sample_rates, active, sampling)  # (K, B_max) each
        x = features[index]  # (K, B_max, d)
        y = labels[index]  # (K, B_max)
        row_weights = weights.gather(1, y) * present  # (K, B_max): class weight, 0 on padding
        sums, _ = clipped_gradients(net, x, y, row_weights, clip, features_squared[index])
        grads = noised_gradients(sums, noise_std, expected_batch, noise)
        net.set_parameters(adam.step(net.parameters(), grads, active))
        if on_progress is not None:
            for member in members:
                if t < member.steps and (t + 1) % member.steps_per_epoch == 0:
                    on_progress(member.config, (t + 1) / member.steps)
    return net


def train_batched(configs: Sequence[RunConfig], data: PreparedDataset, *, context: RunContext,
                  on_progress: ConfigProgress | None = None) -> Iterator[tuple[RunConfig, RunResult | BaseException]]:
    """Train `configs` (dp-sgd, one table model) in passes of at most MAX_CONFIGS_PER_PASS; yield each config's
    result (or the exception it raised) as soon as it is scored."""
    configs = list(configs)
    for start in range(0, len(configs), MAX_CONFIGS_PER_PASS):
        members: list[_Member] = []
        for config in configs[start:start + MAX_CONFIGS_PER_PASS]:
            try:
                members.append(_member(config, data, context))
            except Exception as exc:  # e.g. no noise reaches this epsilon: this run fails, the others train
                yield config, exc
        if not members:
            continue
        try:
            with _threads(context.device), torch.no_grad(), PeakMemory(context.device) as memory, Stopwatch() as clock:
                net = _train(members, data, context, on_progress)
        except Exception as exc:
            for member in members:
                yield member.config, exc
            continue
        epsilons: dict[tuple, float] = {}  # equal accounting inputs give equal epsilons: computed once
        for k, member in enumerate(members):
            try:
                outcome = _result(k, member, net, data, context, clock.seconds, memory.peak_mb, len(members), epsilons)
            except Exception as exc:
                outcome = exc
            yield member.config, outcome


def _result(k: int, member: _Member, net: StackedNet, data: PreparedDataset, context: RunContext,
            pass_seconds: float, peak_mb: float | None, size: int, epsilons: dict[tuple, float]) -> RunResult:
    config = member.config
    key = (member.noise_multiplier, member.sample_rate, member.steps, config.delta, config.accountant,
           config.target_epsilon)
    if key not in epsilons:
        epsilons[key] = epsilon_for(noise_multiplier=member.noise_multiplier, sample_rate=member.sample_rate,
                                    steps=member.steps, delta=config.delta, accountant=config.accountant,
                                    epsilon_scale=config.target_epsilon)
    model = net.load_into(k, model_for(config, data)).to(context.device)
    metrics = evaluate(model, data, context.device)  # the per-run path's scoring (and the runner's score tap)
    return RunResult(**metrics, train_seconds=pass_seconds / size, peak_memory_mb=peak_mb, device=context.device,
                     epsilon=epsilons[key], noise_multiplier=member.noise_multiplier, sample_rate=member.sample_rate,
                     steps=member.steps, extra={"batched_configs": size, "pass_seconds": round(pass_seconds, 3)})
