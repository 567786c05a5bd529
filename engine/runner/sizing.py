"""Training settings that follow the table's size, for the sweeps that leave them unset.

On a small table, a fixed batch of 512 for 10 epochs is a few dozen noisy steps: it measures a badly trained
model, not the cost of privacy. Following the published practice for DP training (Ponomareva et al. 2023, "How
to DP-fy ML", section 5: large batches and many steps; the noise on the averaged gradient falls as the batch
grows, so batches are a sizeable share of the data and the run is long enough to converge), an unset batch size
is about 1/16 of the training rows (between 32 and 512), and an unset number of epochs gives at least
MIN_STEPS steps (between 10 and 100 epochs). Only the number of rows is used, which DP-SGD's sampling rate
treats as public anyway. Adult keeps batch 512 and 10 epochs.
"""

from __future__ import annotations

import math

from engine.config import SweepSpec

BATCH_SHARE = 16  # an unset batch size is n_train / this
MIN_BATCH, MAX_BATCH = 32, 512
MIN_STEPS = 300
MIN_EPOCHS, MAX_EPOCHS = 10, 100


def default_batch_size(n_train: int) -> int:
    return int(min(MAX_BATCH, max(MIN_BATCH, round(n_train / BATCH_SHARE))))


def default_epochs(n_train: int, batch_size: int) -> int:
    steps_per_epoch = max(1, math.ceil(n_train / batch_size))
    return int(min(MAX_EPOCHS, max(MIN_EPOCHS, math.ceil(MIN_STEPS / steps_per_epoch))))


def training_grid(spec: SweepSpec, n_train: int | None) -> list[tuple[float, int, int]]:
    """(learning rate, batch size, epochs) of every run of `spec`'s training axes, in order, on a table of
    `n_train` training rows: an unset batch size is sized from the table, an unset number of epochs from the table
    and each batch size."""
    if (spec.batch_size is None or spec.epochs is None) and n_train is None:
        raise ValueError("The training grid needs n_train when the spec leaves batch size or epochs to the table's size.")
    batch_sizes = spec.batch_size if spec.batch_size is not None else (default_batch_size(n_train),)
    grid = []
    for learning_rate in spec.learning_rate:
        for batch_size in batch_sizes:
            epochs = spec.epochs if spec.epochs is not None else (default_epochs(n_train, batch_size),)
            grid.extend((learning_rate, batch_size, value) for value in epochs)
    return grid
