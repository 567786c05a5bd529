"""What a client adds to its input before upload, and the integer form the input takes: fixed-point
encoding of floats to k-bit integers (k = 32, where uint32 arithmetic wraps), the ChaCha20 keystream as
PRG, the self mask PRG(b_u) and the pairwise masks +-PRG(s_uv) that cancel in the sum over u and v."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

BITS = 32  # masked values live in Z_{2^32}


@dataclass(frozen=True)
class Quantiser:
    """Fixed point: value -> round(value * 2^frac_bits) mod 2^bits; sums decode exactly while |sum| < 2^(bits-1)."""

    frac_bits: int
    bits: int = BITS

    @classmethod
    def for_bound(cls, bound: float, bits: int = BITS) -> "Quantiser":
        """The finest step whose sums stay below 2^(bits-1) when |sum| <= bound (one bit of margin)."""
        frac_bits = bits - 2 - math.ceil(math.log2(bound + 1))
        if frac_bits < 0:
            raise ValueError(f"A bound of {bound:g} does not fit {bits}-bit secure aggregation.")
        return cls(frac_bits, bits)

    @property
    def step(self) -> float:
        return 2.0 ** -self.frac_bits

    def encode(self, values: np.ndarray) -> np.ndarray:
        scaled = np.rint(np.asarray(values, dtype=np.float64) * 2.0 ** self.frac_bits).astype(np.int64)
        return scaled.astype(np.uint32)  # two's complement: negative values wrap modulo 2^32

    def decode(self, total: np.ndarray) -> np.ndarray:
        signed = total.astype(np.uint32).view(np.int32).astype(np.float64)
        return signed * self.step


def prg(seed: bytes, dim: int) -> np.ndarray:
    """(dim,) uint32 from the ChaCha20 keystream of a 32-byte seed (a cryptographic PRG)."""
    encryptor = Cipher(algorithms.ChaCha20(seed, b"\x00" * 16), mode=None).encryptor()
    return np.frombuffer(encryptor.update(b"\x00" * (4 * dim)), dtype="<u4").astype(np.uint32)


def add_self_mask(vector: np.ndarray, seed: bytes) -> np.ndarray:
    """vector + PRG(b_u): hides u's input even from the sum of its pairwise masks."""
    return vector + prg(seed, vector.size)  # (dim,) uint32: wraps modulo 2^32


def remove_self_mask(total: np.ndarray, seed: bytes) -> np.ndarray:
    return total - prg(seed, total.size)


def add_pairwise_mask(vector: np.ndarray, seed: bytes, own: int, peer: int) -> np.ndarray:
    """u adds PRG(s_uv) when u < v and subtracts it when u > v: the pair's two masks cancel in the sum."""
    pair = prg(seed, vector.size)
    return vector + pair if own < peer else vector - pair


def remove_pairwise_mask(total: np.ndarray, seed: bytes, own: int, peer: int) -> np.ndarray:
    """Undo what `own` added for `peer`: needed when `peer` dropped out and its opposite mask never arrived."""
    pair = prg(seed, total.size)
    return total - pair if own < peer else total + pair
