"""Shared torch plumbing for techniques that train with SGD: seeding, loaders, the epoch loop, metrics."""

from __future__ import annotations

import random

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from engine.config import RunConfig
from engine.data import PreparedDataset
from engine.models import build_model
from engine.models.loss import cross_entropy
from engine.techniques.base import RunProgress
from engine.techniques.metrics import score_metrics


def seed_everything(seed: int) -> torch.Generator:
    """Seed the RNGs behind what is not privacy-relevant (model initialisation, non-private shuffling); returns a
    generator for a non-private data loader. Privacy-relevant draws never come from here (RunContext.randomness)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def model_for(config: RunConfig, data: PreparedDataset) -> nn.Module:
    return build_model(config.model, n_features=data.n_features, n_classes=data.n_classes,
                       hidden_units=config.hidden_units, is_image=data.is_image)


def train_loader(data: PreparedDataset, batch_size: int, generator: torch.Generator) -> DataLoader:
    dataset = TensorDataset(torch.from_numpy(data.x_train), torch.from_numpy(data.y_train))
    return DataLoader(dataset, batch_size=batch_size, shuffle=True, generator=generator)


def train_epochs(model: nn.Module, optimizer: torch.optim.Optimizer, loader: DataLoader, *, epochs: int,
                 device: str, on_progress: RunProgress | None = None,
                 class_weights: tuple[float, ...] | None = None) -> None:
    """`class_weights`: one per class (engine.techniques.class_weights), or None for the plain loss. Weighted, each
    row's loss is scaled before DP-SGD clips its gradient, and the batch loss is still a mean over its rows."""
    criterion = cross_entropy(class_weights, device)
    model.train()
    for epoch in range(epochs):
        for features, labels in loader:
            optimizer.zero_grad(set_to_none=True)
            scores = model(features.to(device))
            # Poisson sampling can draw an empty batch: it still steps (DP-SGD then adds noise only, and the
            # accountant counts it), since skipping it would reveal that the batch was empty. A mean over no rows
            # is NaN, so an empty batch's loss is a zero that keeps the graph.
            loss = criterion(scores, labels.to(device)) if len(labels) else scores.sum() * 0.0
            loss.backward()
            optimizer.step()
        if on_progress:
            on_progress((epoch + 1) / epochs)


@torch.no_grad()
def class_scores(model: nn.Module, x: np.ndarray, device: str, batch_size: int = 4096) -> np.ndarray:
    """Softmax class scores (n, classes) of `model` on rows `x`."""
    model.eval()
    probabilities = []
    for start in range(0, len(x), batch_size):
        features = torch.from_numpy(x[start:start + batch_size]).to(device)
        probabilities.append(torch.softmax(model(features), dim=1).cpu().numpy())  # (B, classes)
    return np.concatenate(probabilities) if probabilities else np.zeros((0, 2))


def evaluate(model: nn.Module, data: PreparedDataset, device: str) -> dict[str, float | None]:
    """Test and validation metrics at a threshold chosen on the validation rows (engine.techniques.metrics)."""
    validation = class_scores(model, data.x_val, device) if data.x_val is not None else None
    return score_metrics(class_scores(model, data.x_test, device), data, validation)
