"""Update compression on the upload (client -> server), as a strategy wrapper.

- `topk[:fraction]`: keep the largest-magnitude `fraction` of coordinates (default 10%); sent as
  (int32 index, float32 value) pairs. No error feedback: what is dropped is lost (clients are stateless,
  as in cross-silo rounds where a client may not be picked again).
- `int8`: one float32 scale (max |x| / 127) and one signed byte per coordinate, with unbiased stochastic
  rounding (seeded per client and round).

The server decodes each upload back to a float update before the wrapped strategy sees it, so DP-FedAvg
clips the decoded update (server-side fixed clipping). Compression does not combine with secure
aggregation here: masked vectors are dense k-bit integers.
"""

from __future__ import annotations

import math

import numpy as np

from engine.errors import ConfigError
from engine.federated.costs import COUNT_BYTES, FLOAT_BYTES
from engine.federated.strategies import ClientUpdate, StrategyWrapper

DEFAULT_TOPK_FRACTION = 0.1
INDEX_BYTES = 4


def parse_compression(text: str | None) -> tuple[str, float | None]:
    """'none' | 'int8' | 'topk' | 'topk:0.05' -> (method, fraction)."""
    if text in (None, "", "none"):
        return "none", None
    if text == "int8":
        return "int8", None
    if text.startswith("topk"):
        rest = text[4:]
        if rest == "":
            return "topk", DEFAULT_TOPK_FRACTION
        try:
            fraction = float(rest.lstrip(":"))
        except ValueError:
            fraction = float("nan")
        if rest.startswith(":") and 0 < fraction <= 1:
            return "topk", fraction
    raise ConfigError(f"Unknown compression {text!r}: use none, int8, topk (keeps 10%) or topk:FRACTION, e.g. topk:0.05.")


def topk(vector: np.ndarray, fraction: float) -> tuple[np.ndarray, np.ndarray, int]:
    """(indices, float32 values, bytes) of the largest-magnitude ceil(fraction * dim) coordinates."""
    keep = max(1, math.ceil(fraction * vector.size))
    indices = np.sort(np.argpartition(np.abs(vector), vector.size - keep)[vector.size - keep:]).astype(np.int32)
    values = vector[indices].astype(np.float32)
    return indices, values, keep * (INDEX_BYTES + FLOAT_BYTES)


def int8_quantise(vector: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, float, int]:
    """(int8 codes, scale, bytes): x ~ scale * code, unbiased stochastic rounding."""
    scale = float(np.max(np.abs(vector))) / 127.0
    if scale == 0.0:
        return np.zeros(vector.size, dtype=np.int8), 0.0, vector.size + FLOAT_BYTES
    scaled = vector / scale
    low = np.floor(scaled)
    codes = low + (rng.random(vector.size) < (scaled - low))  # rounds up with probability = the fraction
    return np.clip(codes, -127, 127).astype(np.int8), np.float32(scale).item(), vector.size + FLOAT_BYTES


def compress(vector: np.ndarray, method: str, fraction: float | None, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """The update as the server decodes it, and the upload's size in bytes (payload only)."""
    if method == "topk":
        indices, values, size = topk(vector, fraction)
        decoded = np.zeros_like(vector)
        decoded[indices] = values
        return decoded, size
    if method == "int8":
        codes, scale, size = int8_quantise(vector, rng)
        return codes.astype(np.float64) * scale, size
    return vector, vector.size * FLOAT_BYTES


class Compression(StrategyWrapper):
    """Compresses each client's update before it leaves the client."""

    def __init__(self, strategy, *, method: str, fraction: float | None, seed: int):
        super().__init__(strategy)
        self.method, self.fraction, self.seed = method, fraction, seed

    def client_message(self, update: ClientUpdate, round_index: int):
        rng = np.random.default_rng([self.seed, 0xC0DE, round_index, update.client])
        decoded, size = compress(update.delta, self.method, self.fraction, rng)
        message = self.strategy.client_message(ClientUpdate(update.client, decoded, update.n_examples), round_index)
        return type(message)(message.client, message.vector, message.weight, size + COUNT_BYTES)

    def describe(self) -> dict:
        return {**self.strategy.describe(), "compression": self.method, "topk_fraction": self.fraction}
