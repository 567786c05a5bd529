"""The server: holds the plaintext model and a public CKKS context, and nothing that can decrypt.

It takes bytes and returns bytes. The context it is built from must carry no secret key (it refuses one
that does), so every ciphertext it handles stays opaque to it: it computes on the encrypted scores
without seeing a record or a score.
"""

from __future__ import annotations

import numpy as np
import tenseal as ts

from engine.he.model import PlainModel
from engine.he.packing import Message

NEGLIGIBLE_WEIGHT = 1e-12  # below 2^-40: encodes to zero at the 2^40 scale


class HEServer:
    def __init__(self, public_context: bytes, model: PlainModel):
        context = ts.context_from(public_context)
        if context.is_private() or context.has_secret_key():
            raise ValueError("Refusing a context that holds a secret key: the server must get only the public "
                             "context (serialize with save_secret_key=False).")
        self.context = context
        self.model = model
        if model.kind == "linear":
            self._linear = model.linear_scores()  # A (n_scores, d), c (n_scores,)
        elif model.n_scores == 1:
            u, u0, signs, c = model.folded_square()
            self._positive = (u[signs > 0], u0[signs > 0])
            self._negative = (u[signs < 0], u0[signs < 0])
            self._offset = c
        self._bytes_seen = 0

    def _load(self, part: bytes) -> ts.CKKSVector:
        return ts.ckks_vector_from(self.context, part)

    # --- batched: one ciphertext per feature, records in slots -------------------------------------------------
    def score_chunk(self, message: Message) -> Message:
        """d feature ciphertexts of one chunk -> n_scores score ciphertexts (same records in the same slots)."""
        columns = [self._load(part) for part in message]  # d x (n_chunk,)
        if len(columns) != self.model.n_features:
            raise ValueError(f"expected {self.model.n_features} feature ciphertexts, got {len(columns)}")
        if self.model.kind == "linear":
            weight, bias = self._linear
            scores = [_affine(columns, weight[row], bias[row]) for row in range(len(weight))]
        elif self.model.n_scores == 1:
            scores = [self._folded_square_columns(columns)]
        else:
            w1, b1, w2, b2 = self.model.weights
            squares = [_affine(columns, w1[k], b1[k]).square() for k in range(len(w1))]  # H x (n_chunk,)
            scores = [_affine(squares, w2[c], b2[c]) for c in range(len(w2))]
        return [score.serialize() for score in scores]

    def _folded_square_columns(self, columns: list[ts.CKKSVector]) -> ts.CKKSVector:
        """sum_k sign_k (x.U_k + u_k)^2 + c: depth 2 (one plaintext product, one square)."""
        total = None
        for (u, u0), sign in ((self._positive, 1.0), (self._negative, -1.0)):
            for k in range(len(u)):
                square = _affine(columns, u[k], u0[k]).square()
                if total is None:
                    total = square if sign > 0 else -square
                else:
                    total = total.add_(square) if sign > 0 else total.sub_(square)
        if total is None:  # every output weight is zero: the score is the constant c
            return _affine(columns, np.zeros(len(columns)), self._offset)
        return total + self._offset

    def score_batch(self, messages: list[Message]) -> list[Message]:
        return [self.score_chunk(message) for message in messages]

    # --- interactive: one record per ciphertext (rotations: needs Galois keys) ----------------------------------
    def score_record(self, ciphertext: bytes) -> Message:
        """One record's ciphertext -> its scores: one ciphertext holding n_scores values, or (several classes
        through the square MLP) one ciphertext per class."""
        if not self.context.has_galois_keys():
            raise ValueError("One-record-per-ciphertext scoring sums across slots and needs Galois keys: send the "
                             "public context with save_galois_keys=True.")
        record = self._load(ciphertext)  # (d,)
        if self.model.kind == "linear":
            weight, bias = self._linear
            scores = [record.dot(weight[0]) + float(bias[0]) if len(weight) == 1 else record.mm(weight.T) + bias.tolist()]
        elif self.model.n_scores == 1:
            score = None
            for (u, u0), sign in ((self._positive, 1.0), (self._negative, -1.0)):
                if len(u):
                    part = (record.mm(u.T) + u0.tolist()).square().sum()  # mm (level 1), square (level 2)
                    score = (part if sign > 0 else -part) if score is None else (score + part if sign > 0 else score - part)
            if score is None:
                raise ValueError("every output weight of the model is zero: nothing to evaluate")
            scores = [score + self._offset]
        else:
            # A second `mm` would read the first one's output as if it were replicated across the slots, which
            # it is not: the output layer is one dot product (rotations within the first H slots) per class.
            w1, b1, w2, b2 = self.model.weights
            squares = (record.mm(w1.T) + b1.tolist()).square()  # (H,)
            scores = [squares.dot(w2[c].tolist()) + float(b2[c]) for c in range(len(w2))]
        return [score.serialize() for score in scores]


def _affine(columns: list[ts.CKKSVector], weights: np.ndarray, bias: float) -> ts.CKKSVector:
    """sum_j weights_j * columns_j + bias: one plaintext-scalar product per weight (one level).

    Weights below 2^-40 encode to zero at a 2^40 scale, and a product with an all-zero plaintext is a
    "transparent" ciphertext SEAL refuses; they contribute under 1e-12 per feature and are skipped. A row
    with no weight left keeps one negligible term so the result is still a ciphertext.
    """
    total = None
    for column, weight in zip(columns, weights):
        if abs(weight) < NEGLIGIBLE_WEIGHT:
            continue
        term = column * float(weight)
        total = term if total is None else total.add_(term)
    if total is None:
        total = columns[0] * (2.0 ** -30)
    return total + float(bias)
