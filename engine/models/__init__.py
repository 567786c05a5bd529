"""Small torch models that Opacus accepts (no BatchNorm: per-sample gradients need sample independence)."""

from __future__ import annotations

import torch
from torch import nn

from engine.errors import UnsupportedError


class LogisticRegression(nn.Module):
    def __init__(self, n_features: int, n_classes: int):
        super().__init__()
        self.linear = nn.Linear(n_features, n_classes)

    def forward(self, features: torch.Tensor) -> torch.Tensor:  # (B, d) -> (B, classes)
        return self.linear(features)


class MLP(nn.Module):
    def __init__(self, n_features: int, n_classes: int, hidden_units: int):
        super().__init__()
        self.hidden = nn.Linear(n_features, hidden_units)
        self.output = nn.Linear(hidden_units, n_classes)

    def forward(self, features: torch.Tensor) -> torch.Tensor:  # (B, d) -> (B, H) -> (B, classes)
        return self.output(torch.relu(self.hidden(features)))


class SmallCNN(nn.Module):
    """The Opacus MNIST example's CNN with GroupNorm after each convolution (BatchNorm is not DP-compatible)."""

    def __init__(self, n_classes: int = 10):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 8, stride=2, padding=3),  # (B, 16, 14, 14)
            nn.GroupNorm(4, 16),
            nn.ReLU(),
            nn.MaxPool2d(2, 1),  # (B, 16, 13, 13)
            nn.Conv2d(16, 32, 4, stride=2),  # (B, 32, 5, 5)
            nn.GroupNorm(8, 32),
            nn.ReLU(),
            nn.MaxPool2d(2, 1),  # (B, 32, 4, 4)
        )
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(32 * 4 * 4, 32), nn.ReLU(), nn.Linear(32, n_classes))

    def forward(self, images: torch.Tensor) -> torch.Tensor:  # (B, 1, 28, 28) -> (B, classes)
        return self.classifier(self.features(images))


def build_model(name: str, *, n_features: int, n_classes: int, hidden_units: int, is_image: bool) -> nn.Module:
    if name == "cnn":
        if not is_image:
            raise UnsupportedError("The cnn {model} needs an image dataset (mnist): choose logreg or mlp for tables.",
                                   setting="model")
        return SmallCNN(n_classes)
    if name in ("logreg", "mlp"):
        if is_image:
            raise UnsupportedError(f"The {name!r} {{model}} is for tables: choose cnn for mnist.", setting="model")
        if name == "logreg":
            return LogisticRegression(n_features, n_classes)
        return MLP(n_features, n_classes, hidden_units)
    raise UnsupportedError(f"Unknown {{model}} {name!r}: choose logreg, mlp or cnn.", setting="model")
