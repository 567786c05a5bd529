"""Shared torch plumbing for techniques that train with SGD: seeding, loaders, the epoch loop, metrics."""

from __future__ import annotations

import random

import numpy as np
import torch
from sklearn.metrics import accuracy_score, balanced_accuracy_score, roc_auc_score
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from engine.config import RunConfig
from engine.data import PreparedDataset
from engine.models import build_model
from engine.techniques import scoring_tap
from engine.techniques.base import RunProgress


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
                 device: str, on_progress: RunProgress | None = None) -> None:
    criterion = nn.CrossEntropyLoss()
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
def evaluate(model: nn.Module, data: PreparedDataset, device: str, batch_size: int = 4096) -> dict[str, float | None]:
    """Accuracy, balanced accuracy and ROC AUC (one-vs-rest macro for several classes) on the test set."""
    model.eval()
    probabilities = []
    for start in range(0, len(data.y_test), batch_size):
        features = torch.from_numpy(data.x_test[start:start + batch_size]).to(device)
        probabilities.append(torch.softmax(model(features), dim=1).cpu().numpy())  # (B, classes)
    scores = np.concatenate(probabilities)  # (n_test, classes)
    return score_metrics(scores, data)


def score_metrics(scores: np.ndarray, data: PreparedDataset) -> dict[str, float | None]:
    """Accuracy, balanced accuracy and ROC AUC from class scores (n_test, classes) on the test set."""
    scoring_tap.report(scores)  # an audit reads the model's scores here (engine.techniques.scoring_tap)
    predictions = scores.argmax(axis=1)
    try:
        if data.n_classes == 2:
            roc_auc = float(roc_auc_score(data.y_test, scores[:, 1]))
        else:
            roc_auc = float(roc_auc_score(data.y_test, scores, multi_class="ovr", average="macro"))
    except ValueError:  # a test set with a single class has no ROC AUC
        roc_auc = None
    return {
        "accuracy": float(accuracy_score(data.y_test, predictions)),
        "balanced_accuracy": float(balanced_accuracy_score(data.y_test, predictions)),
        "roc_auc": roc_auc,
    }
