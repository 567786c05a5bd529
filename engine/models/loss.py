"""The training loss of every torch technique: cross-entropy, optionally weighted by class.

With class weights w (one per class), each row's loss is w[label] x its cross-entropy and the batch loss is the
plain mean over the batch's rows (sum / rows), NOT torch's weighted mean (sum / sum of the batch's weights): a
row's gradient must not depend on which other rows share its batch, so that DP-SGD's per-sample clipping still
bounds what one record adds (Opacus undoes a mean by the batch size, never by a sum of weights). The weights are
at most 1 (engine.techniques.class_weights says why), so no row's loss grows.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import nn

Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def cross_entropy(class_weights: Sequence[float] | None = None, device: str | torch.device = "cpu") -> Loss:
    """loss(scores (B, classes), labels (B,)) -> the batch's mean (weighted) cross-entropy; unweighted when None."""
    if class_weights is None:
        return nn.CrossEntropyLoss()
    weights = torch.as_tensor(list(class_weights), dtype=torch.float32, device=device)  # (classes,)

    def loss(scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return per_row_cross_entropy(scores, labels, weights).mean()

    return loss


def per_row_cross_entropy(scores: torch.Tensor, labels: torch.Tensor,
                          weights: torch.Tensor | None = None) -> torch.Tensor:
    """Each row's cross-entropy (B,), times its class's weight when `weights` (classes,) is given."""
    losses = nn.functional.cross_entropy(scores, labels, reduction="none")  # (B,)
    return losses * weights[labels] if weights is not None else losses
