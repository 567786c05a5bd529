"""Membership scores from a target model and reference models (pure numpy/scipy): RMIA and LiRA.

Both read, for every row, the probability each model gives to the row's label. Reference models are trained
like the target on random halves of the training rows, in a balanced design: every row is in exactly half of
them (the "online" setting of both papers), so for each row there are k/2 models with it and k/2 without.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

LOGIT_CLIP = 1e-12  # p is kept in [1e-12, 1 - 1e-12] before taking the logit


def balanced_reference_membership(n_rows: int, k: int, rng: np.random.Generator) -> np.ndarray:
    """(k, n_rows) bool: each row in exactly k/2 of the k reference models, the models chosen at random."""
    ranks = np.argsort(rng.random((n_rows, k)), axis=1)  # (n, k) a random order of the models per row
    return (ranks < k // 2).T


def rmia_scores(target_x: np.ndarray, reference_x: np.ndarray, target_z: np.ndarray, reference_z: np.ndarray,
                gamma: float = 1.0) -> np.ndarray:
    """RMIA (Zarifzadeh et al. 2024, Eq. 3-4): for each row x, the share of population rows z whose likelihood
    ratio is dominated, LR(x, z) = [Pr(x|target) / Pr(x)] / [Pr(z|target) / Pr(z)] > gamma.

    Pr(x) is the mean over reference models (online: half of them trained on x); the population z are rows no
    model trained on. Shapes: target_x (n,), reference_x (k, n), target_z (nz,), reference_z (k, nz).
    """
    ratio_x = target_x / reference_x.mean(axis=0)  # (n,)
    ratio_z = np.sort(target_z / reference_z.mean(axis=0))  # (nz,)
    # LR(x, z) > gamma  <=>  ratio_z < ratio_x / gamma: count such z by binary search.
    return np.searchsorted(ratio_z, ratio_x / gamma, side="left") / len(ratio_z)


def _logit(probability: np.ndarray) -> np.ndarray:
    p = np.clip(probability, LOGIT_CLIP, 1 - LOGIT_CLIP)
    return np.log(p) - np.log1p(-p)


def lira_scores(target_x: np.ndarray, reference_x: np.ndarray, reference_in: np.ndarray) -> np.ndarray:
    """Online LiRA (Carlini et al. 2022, Algorithm 1) with a global variance (their choice for few shadow models):
    the log-likelihood ratio of the target's logit-scaled confidence under the "in" and the "out" Gaussians.

    Shapes: target_x (n,), reference_x (k, n), reference_in (k, n) bool (k/2 true per row)."""
    observed = _logit(target_x)  # (n,)
    confidence = _logit(reference_x)  # (k, n)
    inside, outside = np.where(reference_in, confidence, np.nan), np.where(reference_in, np.nan, confidence)
    mean_in, mean_out = np.nanmean(inside, axis=0), np.nanmean(outside, axis=0)  # (n,)
    spread_in = np.nanstd(inside - mean_in) or 1.0  # one variance for all rows
    spread_out = np.nanstd(outside - mean_out) or 1.0
    return stats.norm.logpdf(observed, mean_in, spread_in) - stats.norm.logpdf(observed, mean_out, spread_out)
