"""The one contract every technique answers, and the one result type it returns."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Hashable, Iterable, Iterator, Protocol

from engine.config import RunConfig
from engine.data import DatasetInfo, PreparedDataset

# Called with the fraction (0..1) of the current run that is done.
RunProgress = Callable[[float], None]

# The `accountant` recorded for pure epsilon-DP runs (delta = 0): their epsilon is the basic sequential
# composition of the pure-epsilon mechanisms inside the technique, as diffprivlib's BudgetAccountant sums it.
PURE_DP_ACCOUNTANT = "pure"


@dataclass
class RunResult:
    """What one run measured. Privacy fields stay None for techniques without them (baseline)."""

    accuracy: float
    balanced_accuracy: float
    roc_auc: float | None
    train_seconds: float
    peak_memory_mb: float | None
    device: str
    epsilon: float | None = None  # what the accountant reports for the training actually done
    noise_multiplier: float | None = None
    sample_rate: float | None = None
    steps: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # technique-specific measurements

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


class Technique(ABC):
    """A privacy technique. Subclasses declare which sweep axes they use and implement `run`.

    `batch_key` lets a technique train several configurations of one sweep in a single pass: runs whose
    keys are equal (and not None) are handed to `run_batch` together. Each still gets its own result.
    """

    name: ClassVar[str]
    description: ClassVar[str] = ""
    uses_epsilon: ClassVar[bool] = False  # expands over the sweep's epsilon grid
    uses_clipping: ClassVar[bool] = False  # expands over the sweep's clipping-norm grid
    privacy_model: ClassVar[str] = "none"  # recorded per run: "none", "global" (central DP) or "local"
    pure_dp: ClassVar[bool] = False  # epsilon-DP with delta = 0: recorded with delta 0 and PURE_DP_ACCOUNTANT

    def batch_key(self, config: RunConfig) -> Hashable | None:
        return None

    @classmethod
    def axes(cls, spec) -> tuple[bool, bool]:
        """(uses_epsilon, uses_clipping) for the runs of `spec` (SweepSpec): the class attributes, unless a
        technique's axes follow a setting (he-inference expands over epsilon only when it trains with dp-sgd)."""
        return cls.uses_epsilon, cls.uses_clipping

    @classmethod
    def privacy_model_for(cls, config: RunConfig) -> str:
        """The privacy model recorded for this run; by default the class attribute."""
        return cls.privacy_model

    @classmethod
    def expand_fields(cls, spec, info: DatasetInfo) -> list[dict[str, Any]]:
        """Extra RunConfig fields of this technique's runs in `spec` (SweepSpec) on dataset `info`, one dict per run.

        Federated techniques resolve their settings here (engine/techniques/federated.py); others add none.
        """
        return [{}]

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
