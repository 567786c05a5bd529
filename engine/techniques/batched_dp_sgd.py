"""Many `dp-sgd` configurations of one sweep trained in one pass (issue 14): the K models stacked.

On by default: the runner hands dp-sgd runs of one table model (logreg, mlp) on one dataset to `train_batched` as
one group (FRONTIER_BATCHED_DP_SGD=0 switches it off: every run trains alone through Opacus, `batching_enabled`). The
mnist CNN always trains per run through Opacus (its convolutions have no ghost-norm identity here), and so does a
run whose optimizer a white-box audit hooks (RunContext.dp_optimizer_hook).

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
- its evaluation: the trained weights are loaded into the engine's own model and scored by training.evaluate the
  step it has taken its last step, and handed to the runner (which records it) while the others go on; its
  train_seconds is its share of the pass's step time (each step's time split among the configurations it trained),
  its peak_memory_mb the pass's peak so far.
A group larger than fits in memory (configs_per_pass: CUDA's free memory, else available RAM) trains in several passes.
"""

from __future__ import annotations

import os
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Hashable, Iterator, Sequence

import psutil
import torch
from torch import nn

from engine.config import RunConfig
from engine.data import PreparedDataset
from engine.measure import PeakMemory
from engine.models import MLP, LogisticRegression
from engine.privacy.accounting import epsilon_for, steps_and_sample_rate
from engine.privacy.calibration import calibrated_noises
from engine.techniques.base import RunContext, RunResult
from engine.techniques.class_weights import class_weights
from engine.techniques.step_threads import StepThreads, usable_cores
from engine.techniques.training import evaluate, model_for, seed_everything

ENVIRONMENT_VARIABLE = "FRONTIER_BATCHED_DP_SGD"  # "0": every dp-sgd run trains alone (the off switch)
BATCHED_MODELS = ("logreg", "mlp")  # stacks of linear layers with ReLU between them
MAX_CONFIGS_PER_PASS = 512  # a larger group trains in passes of at most this many configurations
MEMORY_SHARE = 0.5  # of the device's free memory, at most, for one pass's estimated tensors
# Torch threads on CPU for a pass's setup and scoring; its steps use what StepThreads measures to be faster.
CPU_THREADS = 1
CLIP_STABILISER = 1e-6  # Opacus' clip factor: C / (norm + 1e-6), at most 1
ADAM_BETAS = (0.9, 0.999)  # torch.optim.Adam's defaults, as the per-run path uses them
ADAM_EPS = 1e-8

ConfigProgress = Callable[[RunConfig, float], None]


def batching_enabled() -> bool:
    """Whether the batched path is on: unless the environment variable says 0/false/no/off."""
    return os.environ.get(ENVIRONMENT_VARIABLE, "").strip().lower() not in ("0", "false", "no", "off")


def batch_key(config: RunConfig, path: str = "batched-dp-sgd") -> Hashable | None:
    """Runs with equal keys train in one pass of `path`; None (per run) when switched off or for the CNN."""
    if not batching_enabled() or config.model not in BATCHED_MODELS:
        return None
    return (path, config.dataset, config.train_subsample, config.model,
            config.hidden_units if config.model == "mlp" else None, config.params)


def batchable(configs: Sequence[RunConfig], data: PreparedDataset) -> bool:
    return (not data.is_image and len({(c.model, c.hidden_units if c.model == "mlp" else None) for c in configs}) == 1
            and all(c.model in BATCHED_MODELS for c in configs))


def trains_together(configs: Sequence[RunConfig], data: PreparedDataset) -> bool:
    """Whether DPSGD.run_batch trains `configs` (a runner group, no audit hook) in this module's passes."""
    return batching_enabled() and batchable(configs, data)


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


def row_backprops(net: StackedNet, x: torch.Tensor, y: torch.Tensor,
                  row_weights: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Each layer's inputs a_l (K, B, in_l) and each row's d loss_i / d z_l (K, B, out_l), from x (K, B, d), labels
    y (K, B) and row_weights (K, B) (row i's loss is row_weights_i x its cross-entropy; 0 on padding)."""
    inputs = []
    a = x  # (K, B, d)
    last = len(net.weights) - 1
    for l, (weight, bias) in enumerate(zip(net.weights, net.biases)):
        inputs.append(a)  # (K, B, in_l)
        z = torch.baddbmm(bias.unsqueeze(1), a, weight.transpose(1, 2))  # (K, B, out_l)
        a = z.clamp_(min=0.0) if l < last else z  # ReLU in place: relu(z) > 0 exactly where z > 0
    # softmax by hand: torch.softmax over a last dimension of 2 classes costs 5x this on CPU
    g = a.sub(a.amax(-1, keepdim=True)).exp_()  # (K, B, classes)
    g.div_(g.sum(-1, keepdim=True))
    g.scatter_add_(-1, y.unsqueeze(-1), torch.full(y.unsqueeze(-1).shape, -1.0, dtype=g.dtype, device=g.device))
    g.mul_(row_weights.unsqueeze(-1))  # (K, B, classes): d loss_i / d z_last = w_i (softmax - one-hot)
    backprops: list[torch.Tensor] = [g] * len(net.weights)
    for l in range(last, 0, -1):
        # d loss_i / d z_{l-1} (K, B, in_l): through ReLU, kept where its output inputs[l] is positive (one kernel)
        g = torch.ops.aten.threshold_backward(torch.bmm(g, net.weights[l]), inputs[l], 0.0)
        backprops[l - 1] = g
    return inputs, backprops


def clipped_gradients(net: StackedNet, x: torch.Tensor, y: torch.Tensor, row_weights: torch.Tensor,
                      clip: torch.Tensor, x_squared: torch.Tensor | None = None,
                      ) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Each configuration's sum of per-sample clipped gradients, in net.parameters() order, and the per-sample
    gradient norms (K, B), from x (K, B, d), labels y (K, B), row_weights (K, B) (a row's class weight, 0 on
    padding) and clip (K,). A row's loss is its weighted cross-entropy (Opacus undoes the batch mean).
    `x_squared` (K, B): each row's ||x_i||^2 if known (computed once per table), else computed here."""
    inputs, backprops = row_backprops(net, x, y, row_weights)

    def squared_norms(t: torch.Tensor) -> torch.Tensor:  # (K, B, m) -> (K, B), one pass, no temporary
        return torch.linalg.vector_norm(t, dim=-1).square_()

    input_squared = [x_squared if x_squared is not None else squared_norms(x)]  # (K, B): ||a_i||^2, layer 0
    input_squared += [squared_norms(a_in) for a_in in inputs[1:]]  # (K, B) each
    squared = sum(squared_norms(b) * (a_sq + 1.0)  # (K, B): ||dW_i||^2 + ||db_i||^2 of each layer, summed
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
        everyone = bool(active.all())  # the common case: no configuration has finished yet
        for i, (p, grad) in enumerate(zip(parameters, grads)):
            shape = (-1,) + (1,) * (p.dim() - 1)
            if everyone:  # in place: the moments are this optimiser's own
                exp_avg = self.exp_avg[i].lerp_(grad, 1 - beta1)
                exp_avg_sq = self.exp_avg_sq[i].mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
            else:
                keep = active.view(shape)
                exp_avg = torch.where(keep, self.exp_avg[i].lerp(grad, 1 - beta1), self.exp_avg[i])
                exp_avg_sq = torch.where(keep, self.exp_avg_sq[i] * beta2 + (1 - beta2) * grad * grad,
                                         self.exp_avg_sq[i])
            denom = (exp_avg_sq.sqrt() / correction2_sqrt.to(p.dtype).view(shape)).add_(ADAM_EPS)
            moved = torch.addcdiv(p, exp_avg * step_size.to(p.dtype).view(shape), denom, value=-1.0)
            self.exp_avg[i], self.exp_avg_sq[i] = exp_avg, exp_avg_sq
            updated.append(moved if everyone else torch.where(active.view(shape), moved, p))
        return updated


# --- Poisson samples --------------------------------------------------------------------------------------------
def poisson_batches(n_rows: int, sample_rates: torch.Tensor, active: torch.Tensor,
                    generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Each active configuration's own Poisson sample of the rows (each row kept independently with rate q_k): row
    indices (K, B_max) in increasing order and a mask (K, B_max) of the real rows (padding points at row 0).

    Drawn as the gaps between kept rows, which are geometric (failures before a success: floor(log U / log(1-q))),
    so a step costs O(K n q) draws instead of K x n uniforms; the kept set has exactly the distribution of n
    independent Bernoulli(q) draws. Blocks of gaps are drawn until every configuration has run past the last row."""
    device = sample_rates.device
    rates = sample_rates.double().clamp(0.0, 1.0)  # (K,)
    log_miss = torch.log1p(-rates).unsqueeze(1)  # (K, 1): log(1 - q); 0 when q = 0, -inf when q = 1
    expected = float((rates * n_rows).max()) if len(rates) else 0.0
    block = int(expected + 6 * expected ** 0.5 + 16)  # gaps per draw: rarely needs a second block
    positions = torch.full((len(rates), 1), -1.0, dtype=torch.float64, device=device)  # (K, 1): before row 0
    blocks = []
    while True:
        uniform = 1.0 - torch.rand((len(rates), block), generator=generator, device=device, dtype=torch.float64)
        failures = torch.floor(torch.log(uniform) / log_miss)  # (K, block): rows skipped before the next kept one
        failures = torch.where(rates.unsqueeze(1) > 0, failures, torch.full_like(failures, float(n_rows)))
        blocks.append(positions[:, -1:] + torch.cumsum(failures + 1, dim=1))  # (K, block): kept rows' positions
        positions = blocks[-1]
        if len(rates) == 0 or bool((positions[:, -1] >= n_rows).all()):
            break
    kept = torch.cat(blocks, dim=1)  # (K, M), increasing in each configuration
    present = (kept < n_rows) & active.unsqueeze(1)  # (K, M): a configuration that has taken its steps draws nothing
    width = int(present.sum(1).max()) if len(rates) else 0
    present = present[:, :width]  # (K, B_max): each configuration's kept rows are a prefix
    index = torch.where(present, kept[:, :width], torch.zeros_like(kept[:, :width])).long()  # (K, B_max)
    return index, present


@contextmanager
def pass_threads(device: str) -> Iterator[None]:
    """A pass's torch settings: CPU_THREADS intra-op threads on CPU, no autograd (gradients are closed-form)."""
    previous = torch.get_num_threads()
    if device == "cpu":
        torch.set_num_threads(CPU_THREADS)
    try:
        with torch.no_grad():
            yield
    finally:
        torch.set_num_threads(previous)


# --- passes that fit in memory ----------------------------------------------------------------------------------
def _bytes_per_config(config: RunConfig, data: PreparedDataset) -> int:
    """A generous estimate of what one configuration adds to a pass (float32): its gathered rows and their
    activations and backprops at a batch well above the expected one, its parameters, gradients, noise and Adam
    moments, and the temporaries of one step (a factor of 2)."""
    _, sample_rate = steps_and_sample_rate(data.n_train, config.batch_size, config.epochs)
    rows = data.n_train * sample_rate
    rows += 6 * rows ** 0.5 + 16  # (B_max): a Poisson batch rarely exceeds this
    width = config.hidden_units if config.model == "mlp" else 0
    params = (data.n_features + 1) * (width or data.n_classes) + ((width + 1) * data.n_classes if width else 0)
    per_row = data.n_features + 1 + 4 * width + 4 * data.n_classes
    return int(2 * 4 * (rows * per_row + 7 * params))


def free_bytes(device: str) -> int:
    """Memory a pass may use now: free CUDA memory (torch.cuda.mem_get_info), else available system memory."""
    if device == "cuda":
        return int(torch.cuda.mem_get_info()[0])
    return int(psutil.virtual_memory().available)


def configs_per_pass(configs: Sequence[RunConfig], data: PreparedDataset, device: str,
                     bytes_per_config: Callable[[RunConfig, PreparedDataset], int] | None = None) -> int:
    """How many configurations train together: at most MAX_CONFIGS_PER_PASS, and as many as MEMORY_SHARE of the
    device's free memory holds at the largest configuration's estimate (at least one). `bytes_per_config`: another
    path's estimate (batched_baseline's), else this one's."""
    largest = max((bytes_per_config or _bytes_per_config)(config, data) for config in configs)
    return max(1, min(MAX_CONFIGS_PER_PASS, int(MEMORY_SHARE * free_bytes(device) // largest)))


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


def _member(config: RunConfig, data: PreparedDataset, noise_multiplier: float) -> _Member:
    steps, sample_rate = steps_and_sample_rate(data.n_train, config.batch_size, config.epochs)
    return _Member(config=config, steps=steps, sample_rate=sample_rate, steps_per_epoch=steps // config.epochs,
                   expected_batch=int(data.n_train * sample_rate), noise_multiplier=noise_multiplier)


def _calibrate(configs: Sequence[RunConfig], data: PreparedDataset, context: RunContext) -> list[float | Exception]:
    """Each config's noise multiplier for its own epsilon, delta, accountant, sample rate and steps (or the error
    calibrating it raised): each distinct question asked once, those the NoiseCache does not know computed together."""
    questions = []
    for config in configs:
        steps, sample_rate = steps_and_sample_rate(data.n_train, config.batch_size, config.epochs)
        questions.append(dict(target_epsilon=config.target_epsilon, delta=config.delta, sample_rate=sample_rate,
                              steps=steps, accountant=config.accountant))
    return calibrated_noises(questions, context.noise_cache)


class _Pass:
    """The members' stacked models, trained step by step; `advance` stops whenever configurations finish, so that
    each is scored and recorded when it ends rather than when the pass ends."""

    def __init__(self, members: list[_Member], data: PreparedDataset, context: RunContext, most_threads: int = 1):
        """`most_threads`: the torch threads its steps may use on CPU (StepThreads measures whether more help)."""
        self.members, device = members, context.device
        self.step_threads = StepThreads(device, most_threads)
        models = []
        for member in members:
            seed_everything(member.config.seed)  # each model's initialisation as the per-run path makes it
            models.append(model_for(member.config, data))
        self.net = StackedNet.from_models(models)
        self.net.set_parameters([p.to(device) for p in self.net.parameters()])
        self.features = torch.from_numpy(data.x_train).to(device)  # (n, d)
        self.labels = torch.from_numpy(data.y_train).to(device)  # (n,)
        self.features_squared = self.features.square().sum(1)  # (n,): ||x_i||^2 of every training row, once
        self.class_weights = torch.ones((len(members), data.n_classes), device=device)  # (K, classes)
        for k, member in enumerate(members):
            if (own := class_weights(member.config)) is not None:
                self.class_weights[k] = torch.as_tensor(own, dtype=torch.float32, device=device)

        def per_config(values) -> torch.Tensor:
            return torch.as_tensor(values, dtype=torch.float32, device=device)  # (K,)

        self.clip = per_config([m.config.max_grad_norm for m in members])
        self.noise_std = per_config([m.noise_multiplier * m.config.max_grad_norm for m in members])
        self.expected_batch = per_config([m.expected_batch for m in members])
        self.sample_rates = per_config([m.sample_rate for m in members])
        self.steps = torch.as_tensor([m.steps for m in members], device=device)  # (K,)
        self.adam = StackedAdam(self.net.parameters(),
                                torch.as_tensor([m.config.learning_rate for m in members], device=device))
        self.sampling = context.randomness.torch_generator(device)  # secret: each configuration's Poisson samples
        self.noise = context.randomness.torch_generator(device)  # secret: each configuration's Gaussian noise
        self.t = 0  # steps taken by the pass
        self.seconds = [0.0] * len(members)  # each member's share of the pass's training time so far

    def advance(self, on_progress: ConfigProgress | None) -> list[int]:
        """Step until at least one member has taken all its steps; those members' indices (empty: all done)."""
        last = max(m.steps for m in self.members)
        while self.t < last:
            self.step_threads.threads()
            start = time.perf_counter()
            t, active = self.t, self.steps > self.t  # (K,)
            index, present = poisson_batches(len(self.labels), self.sample_rates, active, self.sampling)  # (K, B_max)
            rows = index.flatten()  # (K B_max,)
            x = self.features.index_select(0, rows).view(*index.shape, self.features.shape[1])  # (K, B_max, d)
            y = self.labels.index_select(0, rows).view(index.shape)  # (K, B_max)
            row_weights = self.class_weights.gather(1, y) * present  # (K, B_max): class weight, 0 on padding
            sums, _ = clipped_gradients(self.net, x, y, row_weights, self.clip,
                                       self.features_squared.index_select(0, rows).view(index.shape))
            grads = noised_gradients(sums, self.noise_std, self.expected_batch, self.noise)
            self.net.set_parameters(self.adam.step(self.net.parameters(), grads, active))
            self.step_threads.took(time.perf_counter() - start)
            self.t += 1
            running = [k for k, member in enumerate(self.members) if t < member.steps]
            for k in running:  # the step's time, shared by the configurations it trained
                self.seconds[k] += (time.perf_counter() - start) / len(running)
            if on_progress is not None:
                for k in running:
                    member = self.members[k]
                    if (t + 1) % member.steps_per_epoch == 0:
                        on_progress(member.config, (t + 1) / member.steps)
            finished = [k for k in running if self.members[k].steps == t + 1]
            if finished:
                return finished
        return []


def train_batched(configs: Sequence[RunConfig], data: PreparedDataset, *, context: RunContext,
                  on_progress: ConfigProgress | None = None) -> Iterator[tuple[RunConfig, RunResult | BaseException]]:
    """Train `configs` (dp-sgd, one table model) in passes that fit in memory (configs_per_pass); yield each
    config's result (or the exception it raised) as soon as it has taken its steps and been scored."""
    configs = list(configs)
    if not configs:
        return
    size = configs_per_pass(configs, data, context.device)
    noise_multipliers = _calibrate(configs, data, context)
    epsilons: dict[tuple, float] = {}  # equal accounting inputs give equal epsilons: computed once
    for start in range(0, len(configs), size):
        members: list[_Member] = []
        for config, noise in zip(configs[start:start + size], noise_multipliers[start:start + size]):
            if isinstance(noise, Exception):  # e.g. no noise reaches this epsilon: this run fails, the others train
                yield config, noise
            else:
                members.append(_member(config, data, noise))
        if members:
            yield from _train_pass(members, data, context, on_progress, epsilons)


def _train_pass(members: list[_Member], data: PreparedDataset, context: RunContext,
                on_progress: ConfigProgress | None, epsilons: dict) -> Iterator[tuple[RunConfig, RunResult | BaseException]]:
    pending = set(range(len(members)))
    most_threads = min(torch.get_num_threads(), usable_cores())  # before pass_threads sets one
    with PeakMemory(context.device) as memory:  # the pass's peak, read as each member ends
        try:
            with pass_threads(context.device):
                training = _Pass(members, data, context, most_threads)
            while pending:
                with pass_threads(context.device):
                    finished = training.advance(on_progress)
                if not finished:
                    break
                for k in finished:  # scored and handed on one at a time: the runner checks each run's own scores
                    with pass_threads(context.device):
                        outcome = _outcome(k, training, data, context, memory, epsilons)
                    pending.discard(k)
                    yield members[k].config, outcome
        except Exception as exc:  # the pass failed: every member not yet recorded fails with it
            for k in sorted(pending):
                yield members[k].config, exc


def pass_peak_mb(memory: PeakMemory, device: str) -> float | None:
    """The pass's peak memory so far (PeakMemory's CPU sampler, or CUDA's allocator peak since the pass began)."""
    if device == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    return max(memory.peak_mb or 0.0, psutil.Process().memory_info().rss / 2**20)


def _outcome(k: int, training: _Pass, data: PreparedDataset, context: RunContext, memory: PeakMemory,
             epsilons: dict) -> RunResult | BaseException:
    member, config = training.members[k], training.members[k].config
    try:
        key = (member.noise_multiplier, member.sample_rate, member.steps, config.delta, config.accountant,
               config.target_epsilon)
        if key not in epsilons:
            epsilons[key] = epsilon_for(noise_multiplier=member.noise_multiplier, sample_rate=member.sample_rate,
                                        steps=member.steps, delta=config.delta, accountant=config.accountant,
                                        epsilon_scale=config.target_epsilon)
        model = training.net.load_into(k, model_for(config, data)).to(context.device)
        metrics = evaluate(model, data, context.device)  # the per-run path's scoring (and the runner's score tap)
        return RunResult(**metrics, train_seconds=training.seconds[k],
                         peak_memory_mb=pass_peak_mb(memory, context.device), device=context.device,
                         epsilon=epsilons[key], noise_multiplier=member.noise_multiplier,
                         sample_rate=member.sample_rate, steps=member.steps,
                         extra={"batched_configs": len(training.members)})
    except Exception as exc:
        return exc
