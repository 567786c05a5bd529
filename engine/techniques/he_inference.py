"""`he-inference`: score test records under CKKS homomorphic encryption (TenSEAL), client/server split.

What it protects: the record being scored. The client encrypts it under a secret key that never leaves the
client; the server holds the plaintext model and a public context (no secret key) and returns encrypted
scores; the client decrypts and decides by the sign (or arg-max) of the scores. It does not protect the
training data: for that, train the served model with DP-SGD (train_technique dp-sgd), the
hybrid whose record carries both the training epsilon and the cost of encrypted scoring.

Models: `logreg` (one plaintext matrix product, depth 1) and `mlp`, served as its HE-friendly twin with a
square activation (engine.he.model.SquareMLP, depth 2 for two classes); the ReLU MLP is trained too, with
the same technique and settings, so the record shows what the HE-friendly architecture costs in accuracy.

Both modes are measured in every run: batched (every test record, feature-major packing, no rotation keys)
and interactive (one record per ciphertext, on the first INTERACTIVE_SAMPLE test records: it is 100x
slower). `accuracy`, `balanced_accuracy` and `roc_auc` are those of the decisions taken under encryption.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
from sklearn.metrics import accuracy_score, balanced_accuracy_score, roc_auc_score

from engine.config import RunConfig, SweepSpec
from engine.data import PreparedDataset
from engine.errors import ConfigError
from engine.he import HE_MODELS, SquareMLP, plain_model, score_encrypted
from engine.measure import PeakMemory, Stopwatch
from engine.privacy.accounting import epsilon_for
from engine.settings import setting
from engine.techniques.base import Measurement, RunContext, RunProgress, RunResult, Technique, TechniqueSettings
from engine.techniques.baseline import train_baseline
from engine.techniques.dp_sgd import train_dp_sgd

TRAINERS = {"baseline": train_baseline, "dp-sgd": train_dp_sgd}  # same code paths as those techniques
# Records scored one ciphertext at a time (the first test records): ~30 ms each for logreg, ~1 s for the MLP.
INTERACTIVE_SAMPLE = {"logreg": 64, "mlp": 8}

HE_MEASUREMENTS = (
    Measurement("protects", str),  # plain words: what the technique protects (the record scored; + training data if DP)
    Measurement("privacy_unit", str),  # "record" for DP-SGD-trained hybrids, "none" otherwise
    Measurement("he_accuracy", float),  # accuracy of the decisions taken under encryption (every test record)
    Measurement("he_plaintext_accuracy", float),  # the same served model scored in plaintext
    Measurement("he_relu_mlp_accuracy", float),  # mlp only: the ReLU MLP, same training, plaintext
    Measurement("he_agreement", float),  # share of encrypted decisions equal to plaintext decisions (batched, every record)
    Measurement("he_agreement_interactive", float),
    Measurement("he_max_abs_error", float),  # largest |decrypted score - plaintext score| over both modes
    Measurement("he_ms_per_record_batched", float, "encrypted scoring latency (batched)", "ms/record", cost=True),  # end to end: encrypt + evaluate + decrypt
    Measurement("he_ms_encrypt_batched", float),
    Measurement("he_ms_evaluate_batched", float),
    Measurement("he_ms_decrypt_batched", float),
    Measurement("he_records_per_second_batched", float),
    Measurement("he_ms_per_record_interactive", float, "encrypted scoring latency (one record at a time)", "ms/record", cost=True),
    Measurement("he_ms_encrypt_interactive", float),
    Measurement("he_ms_evaluate_interactive", float),
    Measurement("he_ms_decrypt_interactive", float),
    Measurement("he_interactive_sample", int),  # records scored one at a time
    Measurement("he_plaintext_ms_per_record", float),
    Measurement("he_bytes_per_record", float, "bytes per record (encrypted, batched)", "B", cost=True),  # batched, uploaded + returned
    Measurement("he_upload_bytes_per_record_batched", float),
    Measurement("he_download_bytes_per_record_batched", float),
    Measurement("he_upload_bytes_per_record_interactive", float),
    Measurement("he_download_bytes_per_record_interactive", float),
    Measurement("he_context_bytes", int),  # public context sent for batched scoring (no Galois keys)
    Measurement("he_context_galois_bytes", int, "public context with rotation keys", "B", cost=True),  # public context sent for interactive scoring (with Galois keys)
    Measurement("he_galois_keys_bytes", int),
    Measurement("he_relin_keys_bytes", int),
    Measurement("he_poly_modulus_degree", int),
    Measurement("he_coeff_modulus_bits", str),  # e.g. "60,40,60"
    Measurement("he_coeff_modulus_total_bits", int),
    Measurement("he_scale_bits", int),
    Measurement("he_depth", int),
    Measurement("he_security_bits", int),  # HE Standard level met: 128, 192 or 256
    Measurement("he_peak_memory_mb", float),
)


def square_mlp_for(config: RunConfig, data: PreparedDataset) -> SquareMLP:
    return SquareMLP(data.n_features, data.n_classes, config.hidden_units)


def _stage(on_progress: RunProgress | None, start: float, stop: float) -> RunProgress | None:
    return (lambda fraction: on_progress(start + (stop - start) * fraction)) if on_progress else None


def _roc_auc(y: np.ndarray, scores: np.ndarray, n_classes: int) -> float | None:
    try:
        if n_classes == 2:
            return float(roc_auc_score(y, scores[:, 0]))
        shifted = np.exp(scores - scores.max(axis=1, keepdims=True))
        return float(roc_auc_score(y, shifted / shifted.sum(axis=1, keepdims=True), multi_class="ovr", average="macro"))
    except ValueError:  # one class in the test set
        return None


@dataclass(frozen=True)
class HEInferenceSettings(TechniqueSettings):
    train_technique: str = setting("baseline", choices=tuple(TRAINERS), group="encrypted inference",
                                   label="Train the served model with",
                                   help="he-inference: train the served model with baseline, or dp-sgd (the hybrid: "
                                        "the epsilon and clipping grid then apply to it).")


class HEInference(Technique):
    name = "he-inference"
    description = ("Encrypted inference (CKKS, TenSEAL): the server scores records it cannot read. Protects the "
                   "record being scored; trained with dp-sgd, also the training data.")
    settings = HEInferenceSettings
    measurements = HE_MEASUREMENTS
    weighs_classes = True  # trains with baseline's or dp-sgd's loop, on the same config

    @classmethod
    def axes(cls, spec: SweepSpec, settings: HEInferenceSettings) -> tuple[bool, bool]:
        private = settings.train_technique == "dp-sgd"  # the hybrid sweeps DP-SGD's epsilon and clipping grid
        return private, private

    @classmethod
    def trust_model_for(cls, config: RunConfig) -> str:
        return "central" if config.param("train_technique") == "dp-sgd" else "none"

    def check(self, config: RunConfig, data: PreparedDataset) -> None:
        if config.model not in HE_MODELS or data.is_image:
            raise ConfigError(f"he-inference serves the logreg or mlp {{model}} (the MLP as its square-activation twin) "
                              f"on tables, not {config.model!r} on {data.name}: choose logreg or mlp.", setting="model")

    def run(self, config: RunConfig, data: PreparedDataset, *, context: RunContext,
            on_progress: RunProgress | None = None) -> RunResult:
        self.check(config, data)
        train_technique = config.param("train_technique")
        trainer: Callable = TRAINERS[train_technique]
        relu_accuracy = None
        epsilon = steps = None
        if config.model == "mlp":
            # The ReLU MLP for comparison, then the square MLP that is served: two trainings on the same rows, whose
            # noise is calibrated so that both together stay within the target, and both are counted.
            _, relu = trainer(config, data, context=context, on_progress=_stage(on_progress, 0.0, 0.3), trainings=2)
            relu_accuracy = relu.accuracy
            model, trained = trainer(config, data, context=context, on_progress=_stage(on_progress, 0.3, 0.6),
                                     build=square_mlp_for, trainings=2)
            if trained.epsilon is not None:
                steps = relu.steps + trained.steps
                epsilon = epsilon_for(noise_multiplier=trained.noise_multiplier, sample_rate=trained.sample_rate,
                                      steps=steps, delta=config.delta, accountant=config.accountant,
                                      epsilon_scale=config.target_epsilon)
        else:
            model, trained = trainer(config, data, context=context, on_progress=_stage(on_progress, 0.0, 0.6))
        if epsilon is None:
            epsilon, steps = trained.epsilon, trained.steps
        served = plain_model(model)
        with PeakMemory("cpu") as memory, Stopwatch() as clock:
            scoring = score_encrypted(served, data.x_test, interactive_sample=INTERACTIVE_SAMPLE[config.model],
                                      on_progress=_stage(on_progress, 0.6, 1.0))
        y = data.y_test
        he_accuracy = float(accuracy_score(y, scoring.decisions))
        private = train_technique == "dp-sgd"
        extra = {
            **scoring.metrics,
            "he_accuracy": he_accuracy,
            "he_plaintext_accuracy": float(accuracy_score(y, scoring.plain_decisions)),
            "he_relu_mlp_accuracy": relu_accuracy,
            "he_served_model": "logreg" if served.kind == "linear" else f"mlp-square (hidden {config.hidden_units})",
            "he_seconds": clock.seconds,
            "he_peak_memory_mb": memory.peak_mb,
            "privacy_unit": "record" if private else "none",
            "protects": ("the record being scored (CKKS: the server computes without the secret key) and the "
                         "training data (DP-SGD, record-level epsilon)" if private else
                         "the record being scored (CKKS: the server computes without the secret key); "
                         "not the training data"),
        }
        peak = memory.peak_mb if context.device == "cpu" else trained.peak_memory_mb
        if context.device == "cpu" and trained.peak_memory_mb is not None:
            peak = max(peak, trained.peak_memory_mb)
        if on_progress:
            on_progress(1.0)
        return RunResult(
            accuracy=he_accuracy, balanced_accuracy=float(balanced_accuracy_score(y, scoring.decisions)),
            roc_auc=_roc_auc(y, scoring.scores, data.n_classes), train_seconds=trained.train_seconds,
            # Validation figures of the served model in plaintext (the encrypted decisions are made on the test rows).
            val_accuracy=trained.val_accuracy, val_balanced_accuracy=trained.val_balanced_accuracy,
            val_roc_auc=trained.val_roc_auc,
            peak_memory_mb=peak, device=context.device, epsilon=epsilon,
            noise_multiplier=trained.noise_multiplier, sample_rate=trained.sample_rate, steps=steps,
            extra=extra,
        )
