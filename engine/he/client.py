"""The client: owns the CKKS secret key, encrypts records, decrypts scores, decides.

What leaves the client is bytes only: a public context (parameters and evaluation keys, never the secret
key) and serialised ciphertexts. Encryption is symmetric (under the secret key) by default: cheaper than
public-key encryption, and the server never needs to encrypt. TenSEAL's vector-matrix product (`mm`, used
by one-record-at-a-time MLP scoring) starts from an encryption of zero on the server, so a client serving
that asks for `asymmetric=True` and sends the public key with that context.
"""

from __future__ import annotations

import numpy as np
import tenseal as ts

from engine.he.packing import Message, pack_feature_major
from engine.he.params import HEParameters, check_parameters


class HEClient:
    """One key pair. `public_context(...)` is what the server gets; the secret key never leaves this object."""

    def __init__(self, params: HEParameters, *, asymmetric: bool = False):
        self.params = check_parameters(params)
        self.asymmetric = asymmetric
        kind = ts.ENCRYPTION_TYPE.ASYMMETRIC if asymmetric else ts.ENCRYPTION_TYPE.SYMMETRIC
        self._context = ts.context(
            ts.SCHEME_TYPE.CKKS, poly_modulus_degree=params.poly_modulus_degree,
            coeff_mod_bit_sizes=list(params.coeff_mod_bit_sizes), encryption_type=kind,
        )
        self._context.global_scale = 2.0 ** params.scale_bits

    # --- what is sent ------------------------------------------------------------------------------------------
    def public_context(self, *, galois_keys: bool, relin_keys: bool, public_key: bool = False) -> bytes:
        """Parameters plus only the keys the server's circuit needs; no secret key, ever.

        galois_keys: rotations (interactive dot / matrix products). relin_keys: ciphertext x ciphertext
        products (the square activation). public_key: the server must encrypt (TenSEAL's `mm`).
        """
        if public_key and not self.asymmetric:
            raise ValueError("This client encrypts symmetrically and has no public key: create it with asymmetric=True.")
        if galois_keys and not self._context.has_galois_keys():
            self._context.generate_galois_keys()
        return self._context.serialize(save_public_key=public_key, save_secret_key=False,
                                       save_galois_keys=galois_keys, save_relin_keys=relin_keys)

    def key_sizes(self) -> dict[str, int]:
        """Serialised bytes of the parameters alone and of each key (Galois keys are generated if absent)."""
        if not self._context.has_galois_keys():
            self._context.generate_galois_keys()

        def size(**keys) -> int:
            flags = dict(save_public_key=False, save_secret_key=False, save_galois_keys=False, save_relin_keys=False)
            return len(self._context.serialize(**{**flags, **keys}))

        base = size()
        return {"parameters": base, "secret_key": size(save_secret_key=True) - base,
                "public_key": size(save_public_key=True) - base if self.asymmetric else 0,
                "relin_keys": size(save_relin_keys=True) - base, "galois_keys": size(save_galois_keys=True) - base}

    # --- batched: feature-major chunks -------------------------------------------------------------------------
    def encrypt_batch(self, x: np.ndarray) -> tuple[list[Message], list[int]]:
        """(n, d) records -> one message of d ciphertexts per chunk of up to N/2 records, and the chunk sizes."""
        chunks = pack_feature_major(x, self.params.slots)  # each (d, n_chunk)
        messages = [[ts.ckks_vector(self._context, column).serialize() for column in chunk] for chunk in chunks]
        return messages, [chunk.shape[1] for chunk in chunks]

    def encrypt_chunk(self, chunk: np.ndarray) -> Message:
        """One (d, n_chunk) feature-major chunk (see packing.pack_feature_major) -> d ciphertexts."""
        return [ts.ckks_vector(self._context, column).serialize() for column in chunk]

    def decrypt_chunk(self, reply: Message, n_records: int) -> np.ndarray:
        """A reply of n_scores ciphertexts -> (n_scores, n_records) scores."""
        return np.array([ts.ckks_vector_from(self._context, part).decrypt()[:n_records] for part in reply])

    # --- interactive: one record per ciphertext ----------------------------------------------------------------
    def encrypt_record(self, record: np.ndarray) -> bytes:
        return ts.ckks_vector(self._context, np.asarray(record, dtype=np.float64).ravel()).serialize()

    def decrypt_record(self, reply: Message, n_scores: int) -> np.ndarray:
        """(n_scores,) scores of one record (the reply's ciphertexts hold them in order)."""
        values = [value for part in reply for value in ts.ckks_vector_from(self._context, part).decrypt()]
        return np.array(values[:n_scores])
