"""How faithful a synthetic table is: mean total variation distance over its 1-way and 2-way marginals.

This is an evaluation on the private training rows (like a test metric, it is measured, not released by the
synthesizer, and it is not covered by the run's epsilon): it says how well the released table reproduces them.
TVD of two distributions is half their L1 distance: 0 identical, 1 disjoint.
"""

from __future__ import annotations

import itertools

import numpy as np


def _distribution(codes: dict[str, np.ndarray], columns: tuple[str, ...], shape: dict[str, int]) -> np.ndarray:
    sizes = tuple(shape[column] for column in columns)
    flat = np.ravel_multi_index(tuple(codes[column] for column in columns), sizes)
    counts = np.bincount(flat, minlength=int(np.prod(sizes))).astype(np.float64)
    return counts / max(counts.sum(), 1.0)


def mean_tvd(real: dict[str, np.ndarray], synthetic: dict[str, np.ndarray], shape: dict[str, int],
             way: int) -> float:
    """Mean TVD over every `way`-attribute marginal (1 or 2) of the two tables' codes."""
    distances = [0.5 * float(np.abs(_distribution(real, columns, shape) - _distribution(synthetic, columns, shape)).sum())
                 for columns in itertools.combinations(shape, way)]
    return float(np.mean(distances))


def exact_copies(real: dict[str, np.ndarray], synthetic: dict[str, np.ndarray], shape: dict[str, int]) -> int:
    """Synthetic rows whose codes equal some real row's codes: a memorisation check on the binned domain."""
    columns = tuple(shape)

    def rows(codes) -> np.ndarray:  # each row as one opaque value (a product of sizes can overflow int64)
        table = np.ascontiguousarray(np.stack([np.asarray(codes[c], dtype=np.int64) for c in columns], axis=1))
        return table.view(np.dtype((np.void, table.dtype.itemsize * len(columns)))).ravel()

    return int(np.isin(rows(synthetic), rows(real)).sum())
