"""Differentially private bounds and category lists for the upload columns the user did not declare.

Numeric columns (pure epsilon-DP).
No a-priori range is needed. Each column's values fall into a fixed, public ladder of buckets on the real line,
sign x power of two: ... [-4, -2), [-2, -1), ..., (-2^-8, 2^-8), ..., [1, 2), [2, 4), ... up to +-2^40 (values
beyond fall into the outermost bucket). Each row lies in exactly one bucket (a missing value in none), so adding
or removing a row changes one count by 1: the histogram with geometric noise (diffprivlib's `Geometric`,
two-sided, pure epsilon-DP for integer counts at sensitivity 1) is epsilon-DP. Everything after is
post-processing: the range runs from the lowest to the highest bucket whose noisy count clears a threshold set so
that an empty bucket clears it with probability at most FALSE_BUCKET over the whole ladder (the noisiest bucket is
always kept, so a range always exists), widened by one bucket on each side: clipping the few rows of a thin tail
costs a model more than a somewhat looser scale.

Noise: diffprivlib's mechanisms draw from `secrets.SystemRandom` when no random_state is given (never a seed, never
recorded), so two registrations of one file draw different ranges. The columns' histograms are separate releases on
the same rows: their epsilons add up (the caller splits its budget over them), and the total is recorded on the
catalogue entry (`preprocessing_privacy`), composed into every run on the table.

How sharp it is depends on rows x epsilon: a bucket needs about ln(97 / 0.001) / epsilon = 11.5 / epsilon rows to
be seen (345 rows at epsilon 0.033, the default 0.1 over three columns); with fewer, the range is the noisiest
bucket widened, a factor of 8 wide.

Text columns ((epsilon, delta)-DP): each value present in the rows gets its count plus geometric noise and is kept
only if that clears 1 + ln(1/delta) / epsilon, so a value held by one row is released with probability at most delta
(the stability-based histogram of Korolova et al. 2009); the kept values are released sorted, their counts never.
A value held by few rows is not kept: it encodes as none of the kept ones (the same as a missing value), and is
not stored. Type a column's public list of values to keep them all, at no privacy cost.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from diffprivlib.mechanisms import Geometric

SMALLEST_EXPONENT, LARGEST_EXPONENT = -8, 40  # magnitudes from 2^-8 (the zero bucket) to 2^40
FALSE_BUCKET = 1e-3  # chance that some empty bucket's noise clears the threshold (and stretches the range)
CATEGORY_DELTA = 1e-6  # in all, split over the undeclared text columns
CATEGORY_MECHANISM = "thresholded geometric counts (diffprivlib), per text column; only the kept values released"
MECHANISM = ("geometric noise (diffprivlib) on a sign x power-of-two histogram, per column; range from the buckets "
             "above a threshold, widened one bucket each side")


def bucket_edges() -> np.ndarray:
    """The public ladder's edges, ascending: -2^40 ... -2^-8, 2^-8 ... 2^40 (97 buckets)."""
    powers = 2.0 ** np.arange(SMALLEST_EXPONENT, LARGEST_EXPONENT + 1)
    return np.concatenate([-powers[::-1], powers])


def threshold(epsilon: float, n_buckets: int) -> float:
    """Noisy count an empty bucket exceeds with probability at most FALSE_BUCKET / n_buckets (geometric tail)."""
    return math.log(n_buckets / FALSE_BUCKET) / epsilon


def dp_range(values: np.ndarray, epsilon: float) -> tuple[float, float]:
    """(low, high) of `values` (NaN ignored) as an epsilon-DP release; secret noise, fresh on every call."""
    if not epsilon > 0:
        raise ValueError(f"epsilon must be positive, got {epsilon!r}")
    values = np.asarray(values, dtype=float)
    values = values[~np.isnan(values)]
    edges = bucket_edges()
    n_buckets = len(edges) - 1
    index = np.clip(np.searchsorted(edges, values, side="right") - 1, 0, n_buckets - 1)  # (rows,)
    counts = np.bincount(index, minlength=n_buckets)  # (buckets,)
    noise = Geometric(epsilon=epsilon, sensitivity=1, random_state=None)  # secrets.SystemRandom inside
    noisy = np.array([noise.randomise(int(count)) for count in counts])
    seen = np.flatnonzero(noisy >= threshold(epsilon, n_buckets))
    seen = np.union1d(seen, [int(np.argmax(noisy))])
    low, high = max(int(seen.min()) - 1, 0), min(int(seen.max()) + 1, n_buckets - 1)
    return float(edges[low]), float(edges[high + 1])


def category_threshold(epsilon: float, delta: float) -> int:
    """Noisy count a value needs to be kept: one held by a single row clears it with probability at most delta."""
    return 1 + math.ceil(math.log(1 / delta) / epsilon)


def dp_categories(values: pd.Series, epsilon: float, delta: float) -> list[str]:
    """The values of a text column whose noisy count clears category_threshold: an (epsilon, delta)-DP release."""
    if not (epsilon > 0 and 0 < delta < 1):
        raise ValueError(f"need epsilon > 0 and 0 < delta < 1, got {epsilon!r}, {delta!r}")
    counts = values.dropna().astype(str).value_counts()
    noise = Geometric(epsilon=epsilon, sensitivity=1, random_state=None)  # secrets.SystemRandom inside
    needed = category_threshold(epsilon, delta)
    return sorted(value for value, count in counts.items() if noise.randomise(int(count)) >= needed)


def dp_preprocess(numeric: dict[str, np.ndarray], text: dict[str, pd.Series], epsilon: float,
                  delta: float = CATEGORY_DELTA) -> tuple[dict[str, tuple[float, float]], dict[str, list[str]], dict]:
    """DP bounds of each numeric column and DP category lists of each text column, `epsilon` split evenly over all
    of them (and `delta` over the text columns): (bounds, categories, the release's preprocessing_privacy)."""
    columns = len(numeric) + len(text)
    if not columns:
        return {}, {}, {}
    share = epsilon / columns
    bounds = {name: dp_range(values, share) for name, values in numeric.items()}
    categories = {name: dp_categories(values, share, delta / len(text)) for name, values in text.items()}
    mechanisms = [MECHANISM] * bool(numeric) + [CATEGORY_MECHANISM] * bool(text)
    return bounds, categories, {
        "epsilon": float(epsilon), "delta": float(delta) if text else 0.0, "mechanism": "; ".join(mechanisms),
        "columns": [*numeric, *text], "epsilon_per_column": share,
        **({"category_threshold": category_threshold(share, delta / len(text))} if text else {})}
