"""One encrypted-scoring session, measured: keys, batched scoring of every record, interactive scoring of a
sample, each compared with plaintext scoring of the same model.

Timings per stage (milliseconds per record):
  encrypt  = client: encode, encrypt, serialise the request
  evaluate = server: deserialise, compute on ciphertexts, serialise the reply
  decrypt  = client: deserialise, decrypt, decide
End to end is their sum; the network is not simulated (bytes on the wire are recorded instead). One-off
costs (key generation, the server loading the public context) are recorded apart, not per record.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from engine.he.client import HEClient
from engine.he.model import PlainModel
from engine.he.packing import message_bytes, pack_feature_major
from engine.he.params import HEParameters, choose_parameters
from engine.he.server import HEServer


@dataclass
class EncryptedScoring:
    """What one session measured. `scores`/`decisions` cover every record (batched mode)."""

    params: HEParameters
    scores: np.ndarray  # (n, n_scores) decrypted
    decisions: np.ndarray  # (n,)
    plain_scores: np.ndarray  # (n, n_scores) float64 plaintext scoring of the same model
    plain_decisions: np.ndarray  # (n,)
    interactive_scores: np.ndarray  # (sample, n_scores)
    metrics: dict = field(default_factory=dict)  # flat he_* measurements (plain Python types)


class _Clock:
    def __init__(self):
        self.seconds = 0.0

    def __enter__(self):
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc_info):
        self.seconds += time.perf_counter() - self._start


def parameters_for(model: PlainModel, **override) -> HEParameters:
    """The parameter set for `model` (auto from its depth unless overridden; always security-checked)."""
    return choose_parameters(model.depth, min_slots=model.n_features, **override)


def score_encrypted(model: PlainModel, x: np.ndarray, *, interactive_sample: int = 64,
                    params: HEParameters | None = None, on_progress=None) -> EncryptedScoring:
    """Score every row of `x` batched and the first `interactive_sample` rows one at a time, all encrypted."""
    x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    n = len(x)
    params = params or parameters_for(model)
    needs_relin = model.kind == "square-mlp"  # ciphertext x ciphertext products
    # TenSEAL's vector-matrix product (interactive MLP or several scores) makes the server encrypt a zero.
    server_encrypts = interactive_sample > 0 and (model.kind != "linear" or model.n_scores > 1)
    m: dict = {}

    with _Clock() as keygen:
        client = HEClient(params, asymmetric=server_encrypts)
        public = client.public_context(galois_keys=False, relin_keys=needs_relin)
    with _Clock() as setup:
        server = HEServer(public, model)
    m["he_keygen_ms"] = keygen.seconds * 1e3
    m["he_server_setup_ms"] = setup.seconds * 1e3

    # --- plaintext reference, same model, float64 ------------------------------------------------------------
    with _Clock() as plain:
        plain_scores = model.scores(x)
        plain_decisions = model.decide(plain_scores)
    m["he_plaintext_ms_per_record"] = plain.seconds * 1e3 / max(n, 1)

    # --- batched: chunks of N/2 records, d ciphertexts each ----------------------------------------------------
    encrypt, evaluate, decrypt = _Clock(), _Clock(), _Clock()
    up = down = 0
    parts = []
    chunks = pack_feature_major(x, params.slots)
    for index, chunk in enumerate(chunks):
        with encrypt:
            request = client.encrypt_chunk(chunk)
        with evaluate:
            reply = server.score_chunk(request)
        with decrypt:
            parts.append(client.decrypt_chunk(reply, chunk.shape[1]))
        up, down = up + message_bytes(request), down + message_bytes(reply)
        if on_progress:
            on_progress(0.5 * (index + 1) / len(chunks))
    with decrypt:
        scores = np.concatenate([part.T for part in parts], axis=0)  # (n, n_scores)
        decisions = model.decide(scores)
    batched_seconds = encrypt.seconds + evaluate.seconds + decrypt.seconds
    m.update(
        he_n_records=n, he_chunks=len(chunks), he_records_per_chunk=params.slots,
        he_ms_encrypt_batched=encrypt.seconds * 1e3 / n, he_ms_evaluate_batched=evaluate.seconds * 1e3 / n,
        he_ms_decrypt_batched=decrypt.seconds * 1e3 / n, he_ms_per_record_batched=batched_seconds * 1e3 / n,
        he_records_per_second_batched=n / batched_seconds if batched_seconds > 0 else None,
        he_upload_bytes_per_record_batched=up / n, he_download_bytes_per_record_batched=down / n,
        he_bytes_per_record=(up + down) / n,
        he_agreement=float(np.mean(decisions == plain_decisions)),
        he_max_abs_error=float(np.max(np.abs(scores - plain_scores))),
    )
    m["he_max_abs_error_batched"] = m["he_max_abs_error"]

    # --- interactive: one record per ciphertext, a fixed sample -----------------------------------------------
    sample = min(interactive_sample, n)
    interactive = np.zeros((sample, model.n_scores))
    encrypt, evaluate, decrypt = _Clock(), _Clock(), _Clock()
    latencies = []
    up = down = 0
    if sample:
        with _Clock() as keygen_galois:
            public_galois = client.public_context(galois_keys=True, relin_keys=needs_relin, public_key=server_encrypts)
        with _Clock() as setup_galois:
            server_galois = HEServer(public_galois, model)
        m["he_keygen_galois_ms"] = keygen_galois.seconds * 1e3
        m["he_server_setup_galois_ms"] = setup_galois.seconds * 1e3
        for i in range(sample):
            start = time.perf_counter()
            with encrypt:
                request = client.encrypt_record(x[i])
            with evaluate:
                reply = server_galois.score_record(request)
            with decrypt:
                interactive[i] = client.decrypt_record(reply, model.n_scores)
            latencies.append(time.perf_counter() - start)
            up, down = up + len(request), down + message_bytes(reply)
            if on_progress:
                on_progress(0.5 + 0.5 * (i + 1) / sample)
        interactive_decisions = model.decide(interactive)
        m.update(
            he_ms_encrypt_interactive=encrypt.seconds * 1e3 / sample,
            he_ms_evaluate_interactive=evaluate.seconds * 1e3 / sample,
            he_ms_decrypt_interactive=decrypt.seconds * 1e3 / sample,
            he_ms_per_record_interactive=float(np.mean(latencies)) * 1e3,
            he_ms_p95_interactive=float(np.percentile(latencies, 95)) * 1e3,
            he_upload_bytes_per_record_interactive=up / sample,
            he_download_bytes_per_record_interactive=down / sample,
            he_agreement_interactive=float(np.mean(interactive_decisions == plain_decisions[:sample])),
            he_max_abs_error_interactive=float(np.max(np.abs(interactive - plain_scores[:sample]))),
            he_context_galois_bytes=len(public_galois),
        )
        m["he_max_abs_error"] = max(m["he_max_abs_error"], m["he_max_abs_error_interactive"])
        del server_galois, public_galois
    m["he_interactive_sample"] = sample
    m["he_batched_speedup"] = (m["he_ms_per_record_interactive"] / m["he_ms_per_record_batched"]
                               if sample and m["he_ms_per_record_batched"] > 0 else None)

    # --- what was sent, and the parameters ----------------------------------------------------------------------
    keys = client.key_sizes()
    m.update(
        he_context_bytes=len(public), he_parameters_bytes=keys["parameters"], he_secret_key_bytes=keys["secret_key"],
        he_relin_keys_bytes=keys["relin_keys"], he_galois_keys_bytes=keys["galois_keys"],
        he_public_key_bytes=keys["public_key"], he_encryption="public-key" if server_encrypts else "symmetric",
        he_poly_modulus_degree=params.poly_modulus_degree,
        he_coeff_modulus_bits=",".join(map(str, params.coeff_mod_bit_sizes)),
        he_coeff_modulus_total_bits=params.total_bits, he_scale_bits=params.scale_bits,
        he_depth=model.depth, he_security_bits=params.security_bits, he_slots=params.slots,
        he_relin_keys_sent=needs_relin,
    )
    return EncryptedScoring(params=params, scores=scores, decisions=decisions, plain_scores=plain_scores,
                            plain_decisions=plain_decisions, interactive_scores=interactive, metrics=m)


__all__ = ["EncryptedScoring", "parameters_for", "score_encrypted"]
