"""Training the models an audit needs, exactly as the audited configuration trains them.

Each model is the technique's own `run` on the audited run's config, with a chosen set of training rows (a
random half, or the rows with canaries): the same code, settings, accountant and noise calibration, so the
audited model is a genuine instance of the configuration on that training set. The rows the attack must score
are appended to the test set and read back through the scoring tap (engine.techniques.scoring_tap); the model's
own test accuracy is computed on the real test rows alone.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from engine.config import RunConfig
from engine.data import PreparedDataset
from engine.errors import UnsupportedError
from engine.techniques import scoring_tap
from engine.techniques.base import RunContext, RunProgress, RunResult
from engine.techniques.registry import create_technique

# Scores an encrypted-inference run computes under CKKS, not through the tap; its training is what leaks, so
# audit the run of the technique it trains with.
UNAUDITABLE = {"he-inference": "audit a baseline or dp-sgd run of the same model: encrypted scoring does not change "
                               "what the trained model reveals about its training rows"}
PROBABILITY_FLOOR = 1e-12  # log-probabilities of a model certain of the other class stay finite


@dataclass(frozen=True)
class TrainedScores:
    result: RunResult  # what the technique reported (its epsilon is the audited model's guarantee)
    probe_probabilities: np.ndarray  # (n_probe,) the model's probability of each probe row's label
    test_accuracy: float  # on the real test rows


def train_and_score(config: RunConfig, data: PreparedDataset, *, x_train: np.ndarray, y_train: np.ndarray,
                    x_probe: np.ndarray, y_probe: np.ndarray, context: RunContext,
                    on_progress: RunProgress | None = None) -> TrainedScores:
    """Train `config` on (x_train, y_train) and return its probability of y_probe on each row of x_probe."""
    if config.technique in UNAUDITABLE:
        raise UnsupportedError(f"{config.technique} cannot be audited directly: {UNAUDITABLE[config.technique]}.")
    n_test = len(data.y_test)
    audited = replace(data, x_train=x_train, y_train=y_train, x_test=np.concatenate([data.x_test, x_probe]),
                      y_test=np.concatenate([data.y_test, y_probe]))
    technique = create_technique(config.technique)
    technique.check(config, audited)
    seen: list[np.ndarray] = []
    with scoring_tap.listening(lambda scores: seen.append(np.asarray(scores)) if len(scores) == len(audited.y_test)
                               else None):
        result = technique.run(config, audited, context=context, on_progress=on_progress)
    if not seen:
        raise UnsupportedError(f"{config.technique} does not score its test rows through "
                               "engine.techniques.training.score_metrics, so the audit cannot read its model's scores.")
    scores = seen[-1]  # (n_test + n_probe, classes): the last scores reported are the final model's
    probe = scores[n_test:]
    totals = probe.sum(axis=1)  # (n_probe,)
    probabilities = probe[np.arange(len(y_probe)), y_probe] / np.where(totals > 0, totals, 1.0)
    accuracy = float(np.mean(scores[:n_test].argmax(axis=1) == data.y_test))
    return TrainedScores(result=result, probe_probabilities=np.clip(probabilities, PROBABILITY_FLOOR, 1.0),
                         test_accuracy=accuracy)
