"""A tap on the class scores a technique computes for its test rows: how the audit reads any model's scores.

Every technique scores its test set through `training.score_metrics` (torch and scikit-learn models alike). An
audit (engine.audit) appends the rows it wants scored to the test set, trains the technique unchanged, and
listens here: the last scores reported are the trained model's. Nothing listens in an ordinary run, and the
listeners live in a context variable, so concurrent runs in other threads or processes are never seen.
"""

from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from typing import Callable, Iterator

import numpy as np

ScoreListener = Callable[[np.ndarray], None]  # called with (n_test, classes) scores
_LISTENERS: ContextVar[tuple[ScoreListener, ...]] = ContextVar("test_score_listeners", default=())


@contextmanager
def listening(listener: ScoreListener) -> Iterator[None]:
    """Call `listener` with every test-set score matrix computed inside the block."""
    token = _LISTENERS.set((*_LISTENERS.get(), listener))
    try:
        yield
    finally:
        _LISTENERS.reset(token)


def report(scores: np.ndarray) -> None:
    for listener in _LISTENERS.get():
        listener(scores)
