"""A short measurement of how fast a technique trains on this machine, for the estimate of a sweep's time.

Torch techniques (baseline, dp-sgd) train a few real steps of one planned configuration through their own
training function (the real model, real batches of the planned batch size, Opacus for DP-SGD): the rows are cut to
a few batches so an epoch is a few steps, the first epoch is the warm-up, and the later epochs are timed. A run of
the sweep then costs about steps x seconds a step, plus what a run spends outside its step loop (model set-up,
Opacus' wrapping, evaluation, the epsilon), which the probe measures too. Techniques that fit a small model in one
go (diffprivlib, local-dp: `fixed_model`) are timed over one real run. Others are not probed (None).

DP-SGD and baseline runs that the runner trains K at a time in one pass (engine.techniques.batched_dp_sgd,
batched_baseline: `batched_paths`) are measured as such (`probe_batched`): a few real steps of that pass for a
representative group of the plan's own configurations (at most PROBE_MAX_MODELS of them) and of its first
configuration alone, so that a step of K' models costs the measured step + (K' - K) x the cost each model adds; then
one fresh one-epoch pass of the group for what a run spends besides the steps (the pass's set-up, each model's
scoring, the epsilon), shared among its models.

The probe never calibrates noise (its DP-SGD uses a fixed noise multiplier: the cost of a step does not depend on
it). It times steps for about PROBE_TIMED_SECONDS, then one fresh one-epoch training for what a run spends besides
its steps: about a second or two per technique in all.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from types import ModuleType

from engine.config import RunConfig
from engine.data import PreparedDataset
from engine.privacy.accounting import steps_and_sample_rate
from engine.techniques.base import RunContext
from engine.techniques.registry import create_technique, get_technique_class

PROBE_STEPS_PER_EPOCH = 5  # the probe's rows are cut to this many batches
PROBE_TIMED_SECONDS = 0.4  # steps are timed (after a first epoch of warm-up) until this much time has passed,
PROBE_MAX_EPOCHS = 100  # or this many epochs were trained,
PROBE_LIMIT_SECONDS = 1.5  # or the probe's training has taken this long: it stops at the next epoch's end
PROBE_NOISE = 1.0  # DP-SGD's noise multiplier in the probe: any value costs the same
PROBE_MAX_MODELS = 64  # a batched pass is timed with at most this many of the plan's configurations


@dataclass(frozen=True)
class Measurement:
    """What a probe measured. `kind` "step": `seconds` a training step, `overhead_seconds` a run besides its steps.
    `kind` "run": `seconds` a whole run (its `overhead_seconds` None). `kind` "batched": `seconds` a step of a pass
    of `models` configurations, `per_model_seconds` what each further model adds to a step, `overhead_seconds` a
    run besides the pass's steps."""

    kind: str
    seconds: float
    steps_timed: int = 0
    overhead_seconds: float | None = None
    models: int = 1
    per_model_seconds: float | None = None

    def step_seconds(self, models: int) -> float:
        """A batched step's seconds for `models` configurations (the measured step, moved along the per-model cost)."""
        if self.per_model_seconds is None:
            return self.seconds
        return max(self.seconds + (models - self.models) * self.per_model_seconds, self.per_model_seconds * models)

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, values: dict) -> "Measurement":
        return cls(**{field.name: values[field.name] for field in dataclasses.fields(cls) if field.name in values})


class _FixedNoise:
    """A NoiseCache that knows every noise level: the probe's DP-SGD never calibrates."""

    def get_noise(self, key: str) -> float:  # noqa: ARG002 - every key
        return PROBE_NOISE

    def put_noise(self, key: str, noise_multiplier: float) -> None:
        pass


class _Enough(Exception):
    """Raised from the progress callback to stop the probe's training once enough steps were timed."""


def _step_trainers() -> dict:
    from engine.techniques.baseline import train_baseline
    from engine.techniques.dp_sgd import train_dp_sgd

    return {"baseline": train_baseline, "dp-sgd": train_dp_sgd}


def batched_paths() -> dict[str, ModuleType]:
    """Techniques whose batch_key groups can train as one stacked pass, and the module that trains it: each has
    train_batched, trains_together(configs, data) and configs_per_pass(configs, data, device)."""
    from engine.techniques import batched_baseline, batched_dp_sgd

    return {"dp-sgd": batched_dp_sgd, "baseline": batched_baseline}


def probe_kind(technique: str) -> str | None:
    """"step", "run", or None when this technique is not measured before a sweep."""
    if technique in _step_trainers():
        return "step"
    return "run" if get_technique_class(technique).fixed_model else None


def probe(config: RunConfig, data: PreparedDataset, device: str) -> Measurement | None:
    """Measure `config`'s technique on this machine (see the module's doc). None when it is not probed."""
    kind = probe_kind(config.technique)
    if kind == "run":
        start = time.perf_counter()
        create_technique(config.technique).run(config, data, context=RunContext(device=device))
        return Measurement(kind="run", seconds=time.perf_counter() - start)
    if kind is None:
        return None
    return _probe_steps(config, data, device)


def _probe_steps(config: RunConfig, data: PreparedDataset, device: str) -> Measurement:
    rows = min(data.n_train, PROBE_STEPS_PER_EPOCH * config.batch_size)
    few = data.subsample(rows)
    steps_per_epoch, _ = steps_and_sample_rate(few.n_train, config.batch_size, 1)
    trainer = _step_trainers()[config.technique]

    def train(epochs: int, on_progress=None) -> float:
        """Wall seconds of one whole training call (set-up, steps, evaluation, epsilon) of `epochs` on the rows."""
        start = time.perf_counter()
        trainer(dataclasses.replace(config, epochs=epochs), few, context=RunContext(device=device,
                noise_cache=_FixedNoise()), on_progress=on_progress)
        return time.perf_counter() - start

    # The steps: epochs until PROBE_TIMED_SECONDS have been timed after the first (the warm-up), or the limit.
    ends: list[float] = []  # perf_counter at the end of each epoch

    def on_progress(_fraction: float) -> None:
        ends.append(time.perf_counter())
        if len(ends) >= 2 and (ends[-1] - ends[0] >= PROBE_TIMED_SECONDS or ends[-1] - begun > PROBE_LIMIT_SECONDS):
            raise _Enough

    begun = time.perf_counter()
    try:
        train(PROBE_MAX_EPOCHS, on_progress)
    except _Enough:
        pass
    if len(ends) < 2:
        raise RuntimeError(f"the {config.technique} probe trained fewer than two epochs")
    steps_timed = (len(ends) - 1) * steps_per_epoch
    per_step = (ends[-1] - ends[0]) / steps_timed
    # A run besides its steps at the steady rate: a fresh one-epoch training (model set-up, Opacus' wrapping, the
    # first steps' warm-up, evaluation, the epsilon) less its steps.
    overhead = max(0.0, train(1) - steps_per_epoch * per_step)
    return Measurement(kind="step", seconds=per_step, steps_timed=steps_timed, overhead_seconds=overhead)


def probe_batched(configs: list[RunConfig], data: PreparedDataset, device: str) -> Measurement:
    """Measure a batched pass of `configs` (one group as the runner makes it, dp-sgd or baseline) here: see the
    module's doc. The pass is the real one (the technique's train_batched, its CPU thread setting included)."""
    train_batched = batched_paths()[configs[0].technique].train_batched
    group = [dataclasses.replace(config, epochs=PROBE_MAX_EPOCHS) for config in configs[:PROBE_MAX_MODELS]]
    rows = min(data.n_train, PROBE_STEPS_PER_EPOCH * max(config.batch_size for config in group))
    few = data.subsample(rows)
    steps_per_epoch, _ = steps_and_sample_rate(few.n_train, group[0].batch_size, 1)

    def train(members: list[RunConfig], on_progress=None) -> None:
        context = RunContext(device=device, noise_cache=_FixedNoise())
        for _config, outcome in train_batched(members, few, context=context, on_progress=on_progress):
            if isinstance(outcome, _Enough):
                return  # the pass was stopped on purpose: every member reports it
            if isinstance(outcome, BaseException):
                raise outcome

    def seconds_a_step(members: list[RunConfig]) -> tuple[float, int]:
        ends: list[float] = []  # perf_counter at the end of each of the first member's epochs
        begun = time.perf_counter()

        def on_progress(config: RunConfig, fraction: float) -> None:
            # Stop before any member takes its last step: a finished member's epsilon (at the probe's noise and
            # sample rate, PRV) can take far longer than the probe.
            if fraction >= 1 - 1.5 / PROBE_MAX_EPOCHS:
                raise _Enough
            if config is not members[0]:
                return
            ends.append(time.perf_counter())
            if len(ends) >= 2 and (ends[-1] - ends[0] >= PROBE_TIMED_SECONDS or ends[-1] - begun > PROBE_LIMIT_SECONDS):
                raise _Enough

        train(members, on_progress)
        if len(ends) < 2:
            raise RuntimeError(f"the batched {members[0].technique} probe trained fewer than two epochs")
        steps = (len(ends) - 1) * steps_per_epoch
        return (ends[-1] - ends[0]) / steps, steps

    per_step, steps_timed = seconds_a_step(group)
    per_model = per_step
    if len(group) > 1:  # a step's fixed part and what each model adds, from one model alone
        alone, more = seconds_a_step(group[:1])
        per_model = max(0.0, (per_step - alone) / (len(group) - 1))
        steps_timed += more
    start = time.perf_counter()
    train([dataclasses.replace(config, epochs=1) for config in group])
    besides = max(0.0, time.perf_counter() - start - steps_per_epoch * per_step) / len(group)
    return Measurement(kind="batched", seconds=per_step, steps_timed=steps_timed, overhead_seconds=besides,
                       models=len(group), per_model_seconds=per_model)
