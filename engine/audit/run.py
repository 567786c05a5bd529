"""Running an audit: choose the secret memberships, train the models it needs, score, measure.

- one-run (black-box, any technique): m training rows become canaries with a label drawn at random among the
  other classes (hard to fit unless memorised); each is kept in the training set with probability 1/2, every
  other row always is; one training; each canary's score is the model's log-probability of its canary label.
- one-run white-box (dp-sgd): the run trains on all its rows, plus m Dirac gradient canaries (gradient_canaries).
- rmia / lira: the target is trained on a random half of the training rows (members), k reference models on
  random halves in a balanced design; every training row is then scored member or not, the test rows serving as
  RMIA's population.

Every coin (canaries, memberships) is drawn from secret randomness, never from the run's seed. The models are
trained by the technique's own `run` (engine.audit.models). An rmia/lira audit keeps its plan and each model's
scores as parts in the store as they finish, so an interrupted audit resumes where it stopped; the caller drops
the parts once the audit is recorded (they are scores of the private training rows).
"""

from __future__ import annotations

import io
import time
from dataclasses import dataclass, replace
from typing import Callable, Protocol

import numpy as np

from engine.audit.attacks import balanced_reference_membership, lira_scores, rmia_scores
from engine.audit.figures import AuditFigures, measure
from engine.audit.gradient_canaries import GradientCanaries
from engine.audit.models import train_and_score
from engine.audit.settings import AuditSettings
from engine.config import RunConfig
from engine.data import PreparedDataset
from engine.errors import UnsupportedError
from engine.privacy.accounting import steps_and_sample_rate
from engine.privacy.randomness import SecretRandomness
from engine.techniques.base import NoiseCache, RunContext


@dataclass(frozen=True)
class AuditProgress:
    models_done: int
    models_total: int
    fraction: float  # of the model being trained


AuditProgressCallback = Callable[[AuditProgress], None]


class AuditParts(Protocol):
    """Where an unfinished audit keeps its plan and finished models (the result store implements it)."""

    def audit_parts(self, audit_id: str) -> dict[int, bytes]: ...

    def put_audit_part(self, audit_id: str, index: int, payload: bytes) -> None: ...


def _pack(**arrays) -> bytes:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()


def _unpack(payload: bytes) -> dict[str, np.ndarray]:
    with np.load(io.BytesIO(payload)) as arrays:
        return {name: arrays[name] for name in arrays.files}


class _Auditor:
    def __init__(self, audit_id, config, data, settings, *, device, noise_cache, parts, on_progress):
        self.audit_id, self.config, self.data, self.settings = audit_id, config, data, settings
        self.device, self.noise_cache, self.parts = device, noise_cache, parts
        self.on_progress = on_progress or (lambda progress: None)
        self.rng = SecretRandomness().numpy_generator()  # the audit's own coins: secret, never recorded
        self.started = time.perf_counter()

    def context(self, **changes) -> RunContext:
        return replace(RunContext(device=self.device, noise_cache=self.noise_cache), **changes)

    def progress(self, done: int, total: int):
        self.on_progress(AuditProgress(done, total, 0.0))
        return lambda fraction: self.on_progress(AuditProgress(done, total, fraction))

    def figures(self, in_scores, out_scores, target, **extra) -> AuditFigures:
        return measure(in_scores, out_scores, epsilon=target.result.epsilon, delta=self.config.delta,
                       confidence=self.settings.confidence,
                       extra={"test_accuracy": target.test_accuracy, "run_accuracy": target.result.accuracy,
                              "seconds": time.perf_counter() - self.started, **extra})

    # --- one-run ------------------------------------------------------------------------------------------
    def one_run(self) -> AuditFigures:
        data, m = self.data, self.settings.canaries
        if self.settings.white_box:
            return self.white_box(m)
        rows = self.rng.choice(data.n_train, m, replace=False)  # (m,) the canaries
        labels = (data.y_train[rows] + self.rng.integers(1, data.n_classes, m)) % data.n_classes  # another class
        included = self.rng.random(m) < 0.5
        keep = np.ones(data.n_train, dtype=bool)
        keep[rows[~included]] = False
        y_train = data.y_train.copy()
        y_train[rows] = labels
        target = train_and_score(self.config, data, x_train=data.x_train[keep], y_train=y_train[keep],
                                 x_probe=data.x_train[rows], y_probe=labels, context=self.context(),
                                 on_progress=self.progress(0, 1))
        scores = np.log(target.probe_probabilities)
        return self.figures(scores[included], scores[~included], target, models_trained=1,
                            canary_kind="rows with a wrong label (black-box)")

    def white_box(self, m: int) -> AuditFigures:
        data = self.data
        _, sample_rate = steps_and_sample_rate(data.n_train, self.config.batch_size, self.config.epochs)
        canaries = GradientCanaries(m, sample_rate=sample_rate, rng=self.rng)
        target = train_and_score(self.config, data, x_train=data.x_train, y_train=data.y_train,
                                 x_probe=data.x_train[:0], y_probe=data.y_train[:0],
                                 context=self.context(dp_optimizer_hook=canaries), on_progress=self.progress(0, 1))
        if not canaries.attached:
            raise UnsupportedError(f"A white-box audit inserts gradient canaries into DP-SGD's optimizer; "
                                   f"{self.config.technique} does not train through it: audit it black-box.")
        return self.figures(canaries.scores[canaries.included], canaries.scores[~canaries.included], target,
                            models_trained=1, canary_kind="Dirac gradient canaries (white-box)",
                            steps_observed=canaries.steps)

    # --- rmia / lira -------------------------------------------------------------------------------------
    def reference_attack(self) -> AuditFigures:
        data, k = self.data, self.settings.reference_models
        stored = self.parts.audit_parts(self.audit_id)
        if 0 in stored:
            plan = _unpack(stored[0])
        else:
            plan = {"target_in": self.rng.random(data.n_train) < 0.5,
                    "reference_in": balanced_reference_membership(data.n_train, k, self.rng)}
            self.parts.put_audit_part(self.audit_id, 0, _pack(**plan))
        memberships = [plan["target_in"], *plan["reference_in"]]  # model 0 is the target
        x_probe = np.concatenate([data.x_train, data.x_test])  # every training row, then the population
        y_probe = np.concatenate([data.y_train, data.y_test])
        probabilities, target = [], None
        for index, members in enumerate(memberships):
            if index + 1 in stored:
                probabilities.append(_unpack(stored[index + 1])["p"])
                continue
            trained = train_and_score(self.config, data, x_train=data.x_train[members], y_train=data.y_train[members],
                                      x_probe=x_probe, y_probe=y_probe, context=self.context(),
                                      on_progress=self.progress(index, len(memberships)))
            probabilities.append(trained.probe_probabilities)
            if index == 0:
                target = trained
                self.parts.put_audit_part(self.audit_id, 1, _pack(
                    p=trained.probe_probabilities, epsilon=np.float64(np.nan if trained.result.epsilon is None
                                                                      else trained.result.epsilon),
                    accuracy=np.float64(trained.result.accuracy), test_accuracy=np.float64(trained.test_accuracy)))
            else:
                self.parts.put_audit_part(self.audit_id, index + 1, _pack(p=trained.probe_probabilities))
        if target is None:
            target = _stored_target(_unpack(stored[1]))
        n = data.n_train
        p = np.stack(probabilities)  # (1 + k, n + n_test)
        if self.settings.attack == "rmia":
            scores = rmia_scores(p[0, :n], p[1:, :n], p[0, n:], p[1:, n:])
        else:
            scores = lira_scores(p[0, :n], p[1:, :n], plan["reference_in"])
        members = plan["target_in"]
        return self.figures(scores[members], scores[~members], target, models_trained=len(memberships),
                            reference_models=k, population=int(len(data.y_test)))


@dataclass(frozen=True)
class _StoredResult:
    epsilon: float | None
    accuracy: float


@dataclass(frozen=True)
class _StoredTarget:
    result: _StoredResult
    test_accuracy: float


def _stored_target(part: dict[str, np.ndarray]) -> _StoredTarget:
    epsilon = float(part["epsilon"])
    return _StoredTarget(_StoredResult(None if np.isnan(epsilon) else epsilon, float(part["accuracy"])),
                         float(part["test_accuracy"]))


def run_audit(audit_id: str, config: RunConfig, data: PreparedDataset, settings: AuditSettings, *, device: str,
              noise_cache: NoiseCache | None, parts: AuditParts,
              on_progress: AuditProgressCallback | None = None) -> AuditFigures:
    """Audit `config` on `data` (the audited run's prepared data) with resolved `settings`."""
    auditor = _Auditor(audit_id, config, data, settings, device=device, noise_cache=noise_cache, parts=parts,
                       on_progress=on_progress)
    figures = auditor.one_run() if settings.attack == "one-run" else auditor.reference_attack()
    total = figures.extra.get("models_trained", 1)
    auditor.on_progress(AuditProgress(total, total, 1.0))
    return figures
