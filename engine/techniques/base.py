"""The one contract every technique answers, the one result type it returns, and what it declares.

A technique declares, once, in its own file: its settings (a TechniqueSettings dataclass of `setting(...)`
fields, from which the CLI, YAML, the dashboard form and the store follow), the measurements it records
beyond the common metrics (Measurement: a store column, and a selectable cost where `cost=True`), and which
sweep axes it uses. The runner does the rest.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Hashable, Iterable, Iterator, Protocol

from engine.config import RunConfig, SweepSpec
from engine.data import DatasetInfo, PreparedDataset
from engine.privacy.randomness import PrivacyRandomness, SecretRandomness
from engine.settings import Setting, declared_settings

# Called with the fraction (0..1) of the current run that is done.
RunProgress = Callable[[float], None]

# The `accountant` recorded for pure epsilon-DP runs (delta = 0): their epsilon is the basic sequential
# composition of the pure-epsilon mechanisms inside the technique, as diffprivlib's BudgetAccountant sums it.
PURE_DP_ACCOUNTANT = "pure"
# Where the noise is added, recorded per run as `trust_model`: no DP, a trusted curator adds it to what it
# releases (central DP), or each record's owner randomises it before it leaves them (local DP).
TRUST_MODELS = ("none", "central", "local")


@dataclass(frozen=True)
class TechniqueSettings:
    """Base of a technique's own settings: subclasses add `setting(...)` fields (engine.settings)."""

    @classmethod
    def declared(cls) -> tuple[Setting, ...]:
        return declared_settings(cls)

    def check(self) -> None:
        """Checks across this technique's settings (one setting's own checks come from its declaration)."""

    @classmethod
    def from_values(cls, values: dict[str, Any]) -> "TechniqueSettings":
        """Declared values (already parsed), the rest at their defaults."""
        names = {declared.name for declared in cls.declared()}
        return cls(**{name: value for name, value in values.items() if name in names})


@dataclass(frozen=True)
class NoSettings(TechniqueSettings):
    """For techniques that have no settings of their own."""


@dataclass(frozen=True)
class Measurement:
    """A value a technique records beyond the common metrics: its own store column, maybe a selectable cost."""

    name: str
    kind: type  # int, float or str
    label: str = ""  # in words, for charts and tables
    unit: str = ""
    cost: bool = False  # offered as a cost on the Frontier and Decide pages


@dataclass
class RunResult:
    """What one run measured. Privacy fields stay None for techniques without them (baseline)."""

    accuracy: float
    balanced_accuracy: float
    roc_auc: float | None
    train_seconds: float
    peak_memory_mb: float | None
    device: str
    val_accuracy: float | None = None  # the same metrics on the validation rows (held out of training)
    val_balanced_accuracy: float | None = None
    val_roc_auc: float | None = None
    decision_threshold: float | None = None  # positive-class threshold chosen on the validation rows
    epsilon: float | None = None  # what the accountant reports for the training actually done
    noise_multiplier: float | None = None
    sample_rate: float | None = None
    steps: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # technique-specific measurements
    # Files the run releases beside its record, {kind: bytes} (dp-synthetic: its table): written by the runner to
    # the workspace folder (engine.runner.artefacts), never into the store.
    artefacts: dict[str, bytes] = field(default_factory=dict, repr=False)

    def __repr__(self) -> str:
        privacy = f", epsilon={self.epsilon:.4g}" if self.epsilon is not None else ""
        return (f"RunResult(accuracy={self.accuracy:.4f}, balanced_accuracy={self.balanced_accuracy:.4f}"
                f"{privacy}, train_seconds={self.train_seconds:.2f}, device={self.device!r})")


class NoiseCache(Protocol):
    """Where calibrated noise multipliers are kept between runs (the result store implements it)."""

    def get_noise(self, key: str) -> float | None: ...

    def put_noise(self, key: str, noise_multiplier: float) -> None: ...


@dataclass
class RunContext:
    """What the runner hands a technique besides the config and the data."""

    device: str  # "cpu" or "cuda", already resolved
    noise_cache: NoiseCache | None = None
    # Every privacy-relevant draw (noise, sampling, randomisation) comes from here: secret, never the seed.
    randomness: PrivacyRandomness = field(default_factory=SecretRandomness)
    # Called once with the Opacus DPOptimizer before DP-SGD trains: the white-box audit inserts its gradient
    # canaries there (engine.audit.gradient_canaries). None in every ordinary run.
    dp_optimizer_hook: Callable[[Any], None] | None = None


class Technique(ABC):
    """A privacy technique. Subclasses set the class attributes below and implement `run`.

    `batch_key` lets a technique train several configurations of one sweep in a single pass: runs whose
    keys are equal (and not None) are handed to `run_batch` together. Each still gets its own result.
    """

    name: ClassVar[str]
    description: ClassVar[str] = ""
    settings: ClassVar[type[TechniqueSettings]] = NoSettings
    measurements: ClassVar[tuple[Measurement, ...]] = ()
    uses_epsilon: ClassVar[bool] = False  # expands over the sweep's epsilon grid
    uses_clipping: ClassVar[bool] = False  # expands over the sweep's clipping-norm grid
    trust_model: ClassVar[str] = "none"  # one of TRUST_MODELS
    # A technique whose epsilon comes from an accountant of its own (not the sweep's Opacus one) names it: recorded as
    # every run's `accountant`, beside its epsilon.
    own_accountant: ClassVar[str | None] = None
    pure_dp: ClassVar[bool] = False  # epsilon-DP with delta = 0: recorded with delta 0 and PURE_DP_ACCOUNTANT
    # The model family a technique always trains whatever the sweep's `model` (dp-logreg: "logreg"): recorded as
    # the run's model, so no diffprivlib run is labelled with the sweep's MLP. None: the sweep's model.
    fixed_model: ClassVar[str | None] = None
    weighs_classes: ClassVar[bool] = False  # trains a torch model on the shared loss: takes class_weighting

    # --- planning (class-level: no instance is needed to expand a sweep) ---------------------------------
    @classmethod
    def axes(cls, spec: SweepSpec, settings: TechniqueSettings) -> tuple[bool, bool]:
        """(uses_epsilon, uses_clipping) for this technique's runs in `spec`: the class attributes, unless the
        axes follow a setting (he-inference expands over epsilon only when it trains with dp-sgd)."""
        return cls.uses_epsilon, cls.uses_clipping

    @classmethod
    def resolve(cls, spec: SweepSpec, settings: TechniqueSettings, info: DatasetInfo) -> list[dict[str, Any]]:
        """The technique's part of each run's config, one dict per run (usually one): its settings with the
        defaults filled in. Keys naming a shared RunConfig field override it (federated: epochs = rounds x
        local epochs); every other key becomes a param. None values are left out of the run's identity."""
        return [{name: value for name, value in dataclasses.asdict(settings).items() if value is not None}]

    @classmethod
    def trust_model_for(cls, config: RunConfig) -> str:
        """The trust model recorded for this run; by default the class attribute."""
        return cls.trust_model

    @classmethod
    def settings_of(cls, config: RunConfig) -> TechniqueSettings:
        """This technique's settings as a typed object, read back from a run's params."""
        return cls.settings.from_values(dict(config.params))

    # --- running --------------------------------------------------------------------------------------------
    def batch_key(self, config: RunConfig) -> Hashable | None:
        return None

    def check(self, config: RunConfig, data: PreparedDataset) -> None:
        """Checks that need the data, made before anything trains (e.g. a partition that cannot be made)."""

    @abstractmethod
    def run(self, config: RunConfig, data: PreparedDataset, *, context: RunContext,
            on_progress: RunProgress | None = None) -> RunResult:
        """Train and evaluate one configuration. Must not mutate `config` or `data`."""

    def run_batch(self, configs: Iterable[RunConfig], data: PreparedDataset, *, context: RunContext,
                  on_progress: Callable[[RunConfig, float], None] | None = None,
                  ) -> Iterator[tuple[RunConfig, RunResult | BaseException]]:
        """Yield each config's result (or the exception it raised) as soon as it is known."""
        for config in configs:
            progress = (lambda fraction, c=config: on_progress(c, fraction)) if on_progress else None
            try:
                yield config, self.run(config, data, context=context, on_progress=progress)
            except Exception as exc:  # one failed run must not stop the sweep
                yield config, exc
