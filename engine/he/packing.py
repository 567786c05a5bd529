"""How records are laid out in CKKS slots, and how messages are measured.

Batched mode packs feature-major ("column-major"): one ciphertext holds one feature of up to N/2 records,
so a chunk of records travels as d ciphertexts and a linear layer is d plaintext-scalar products and
additions per output. Nothing moves between slots, so the server needs no Galois (rotation) keys.

Interactive mode packs one record per ciphertext (TenSEAL's tutorial layout): the record's d features in
the slots; a dot product or vector-matrix product then sums across slots with rotations (Galois keys).

A message is a list of serialised ciphertexts (bytes); its size is what crosses the wire.
"""

from __future__ import annotations

import numpy as np

Message = list[bytes]  # serialised ciphertexts, in order


def chunk_bounds(n_records: int, slots: int) -> list[tuple[int, int]]:
    """[(start, stop), ...] covering n_records in chunks of at most `slots` records."""
    if slots < 1:
        raise ValueError(f"slots must be positive, got {slots}")
    return [(start, min(start + slots, n_records)) for start in range(0, n_records, slots)]


def pack_feature_major(x: np.ndarray, slots: int) -> list[np.ndarray]:
    """(n, d) records -> one (d, n_chunk) array per chunk: row j is feature j of the chunk's records."""
    x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    return [np.ascontiguousarray(x[start:stop].T) for start, stop in chunk_bounds(len(x), slots)]


def unpack_scores(chunks: list[np.ndarray]) -> np.ndarray:
    """Per chunk (n_scores, n_chunk) -> (n, n_scores), records in their original order."""
    if not chunks:
        return np.zeros((0, 0))
    return np.concatenate([np.asarray(chunk).T for chunk in chunks], axis=0)


def message_bytes(message: Message) -> int:
    return sum(len(part) for part in message)
