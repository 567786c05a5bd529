"""Models a server can evaluate on CKKS ciphertexts, and their plaintext twins.

CKKS evaluates additions and multiplications only, so the HE-friendly MLP replaces ReLU by the square:
Linear(d, H) -> x^2 -> Linear(H, K) (CryptoNets, Gilad-Bachrach et al., 2016). `PlainModel` is what the
server holds: the trained weights as float64 numpy arrays, plus the plaintext scoring the encrypted result is
compared against. For two classes the server returns one score, logit(1) - logit(0), and the client decides
by its sign; the square MLP then folds its output weights into the hidden layer,
v_k * h_k^2 = sign(v_k) * (sqrt|v_k| * h_k)^2, which saves one multiplicative level.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from engine.errors import UnsupportedError

HE_MODELS = ("logreg", "mlp")  # what `he-inference` serves; "mlp" is served as its square-activation twin


class SquareMLP(nn.Module):
    """The HE-friendly twin of engine.models.MLP: same layers, square activation instead of ReLU."""

    def __init__(self, n_features: int, n_classes: int, hidden_units: int):
        super().__init__()
        self.hidden = nn.Linear(n_features, hidden_units)
        self.output = nn.Linear(hidden_units, n_classes)

    def forward(self, features: torch.Tensor) -> torch.Tensor:  # (B, d) -> (B, H) -> (B, classes)
        hidden = self.hidden(features)
        return self.output(hidden * hidden)


def _numpy(parameter: torch.Tensor) -> np.ndarray:
    return parameter.detach().cpu().double().numpy()


@dataclass(frozen=True)
class PlainModel:
    """Plaintext weights the server evaluates with. kind: "linear" or "square-mlp".

    linear:     logits = x W^T + b                       W (K, d), b (K,)
    square-mlp: logits = (x W1^T + b1)^2 W2^T + b2       W1 (H, d), b1 (H,), W2 (K, H), b2 (K,)
    """

    kind: str
    weights: tuple[np.ndarray, ...]

    @property
    def n_features(self) -> int:
        return int(self.weights[0].shape[1])

    @property
    def n_classes(self) -> int:
        return int(self.weights[-2].shape[0])

    @property
    def n_scores(self) -> int:
        """Scores the server returns per record: one (logit difference) for two classes, else K logits."""
        return 1 if self.n_classes == 2 else self.n_classes

    @property
    def depth(self) -> int:
        """Multiplicative depth of the encrypted evaluation (each plaintext or ciphertext product is one level)."""
        if self.kind == "linear":
            return 1
        return 2 if self.n_classes == 2 else 3  # two classes: output weights folded into the hidden layer

    # --- what the server computes, in the form it computes it ------------------------------------------------
    def linear_scores(self) -> tuple[np.ndarray, np.ndarray]:
        """(A, c) with scores = x A^T + c: A (n_scores, d). Linear models only."""
        weight, bias = self.weights
        if self.n_classes == 2:
            return (weight[1] - weight[0])[None, :], np.array([bias[1] - bias[0]])
        return weight, bias

    def folded_square(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
        """(U (H, d), u (H,), signs (H,), c) with score = sum_k signs_k (x U_k + u_k)^2 + c. Two classes only."""
        w1, b1, w2, b2 = self.weights
        v = w2[1] - w2[0]  # (H,)
        root = np.sqrt(np.abs(v))
        return w1 * root[:, None], b1 * root, np.sign(v), float(b2[1] - b2[0])

    # --- plaintext reference ---------------------------------------------------------------------------------
    def logits(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
        if self.kind == "linear":
            weight, bias = self.weights
            return x @ weight.T + bias
        w1, b1, w2, b2 = self.weights
        return ((x @ w1.T + b1) ** 2) @ w2.T + b2

    def scores(self, x: np.ndarray) -> np.ndarray:
        """(n, n_scores): what the encrypted evaluation should return, computed in float64."""
        logits = self.logits(x)
        return logits[:, 1:2] - logits[:, 0:1] if self.n_classes == 2 else logits

    @staticmethod
    def decide(scores: np.ndarray) -> np.ndarray:
        """Class per record from scores: the sign for one score, the arg-max for several."""
        scores = np.asarray(scores)
        return (scores[:, 0] > 0).astype(np.int64) if scores.shape[1] == 1 else scores.argmax(axis=1)


def plain_model(module: nn.Module) -> PlainModel:
    """Extract the weights of a trained logistic regression or square MLP (Opacus wrappers are unwrapped)."""
    module = getattr(module, "_module", module)  # opacus GradSampleModule
    if isinstance(module, SquareMLP):
        return PlainModel("square-mlp", (_numpy(module.hidden.weight), _numpy(module.hidden.bias),
                                         _numpy(module.output.weight), _numpy(module.output.bias)))
    linear = getattr(module, "linear", None)
    if isinstance(linear, nn.Linear) and len(list(module.children())) == 1:
        return PlainModel("linear", (_numpy(linear.weight), _numpy(linear.bias)))
    raise UnsupportedError(f"{type(module).__name__} cannot be evaluated under CKKS: serve logreg or the square MLP.")
