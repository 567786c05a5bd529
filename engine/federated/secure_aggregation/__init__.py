"""Secure aggregation in the style of Bonawitz et al. 2017 ("Practical Secure Aggregation for
Privacy-Preserving Machine Learning"), honest-but-curious server, simulated in one process.

Updates are quantised to integers modulo 2^k (k = 32: numpy uint32 arithmetic wraps exactly there).
Per round, every client u:
  0. AdvertiseKeys: makes two fresh X25519 key pairs (c_u to encrypt shares, s_u to agree masks) and
     sends both public keys; the server broadcasts all of them.
  1. ShareKeys: draws a self-mask seed b_u, splits s_u's private key and b_u into t-out-of-n Shamir shares
     (field GF(2^521 - 1)) and sends each other client v its two shares encrypted with ChaCha20-Poly1305
     under HKDF(X25519(c_u, c_v)); the server only forwards the ciphertexts.
  2. MaskedInputCollection: y_u = x_u + PRG(b_u) + sum_{v>u} PRG(s_uv) - sum_{v<u} PRG(s_uv)  (mod 2^k), with
     s_uv = HKDF(X25519(s_u, s_v)) (the same for u and v) and PRG = the ChaCha20 keystream. Clients that
     drop out here send nothing.
  3. Unmasking: each survivor sends its shares of b_u for the survivors and of s_u for the dropped
     clients. With t of them the server removes the self masks of the survivors and the pairwise masks
     the survivors shared with dropped clients. What is left is sum_{u survived} x_u (mod 2^k), exactly.

The coordinator only ever receives public keys, opaque ciphertexts, masked vectors and shares; the raw
update lives in the client alone. Sizes of every message are counted as sent.

Modules, primitives first (each imports only those above it):
  key_agreement.py     X25519 key pairs, HKDF: pairwise mask seeds s_uv and the share-encryption cipher
  shamir.py            t-out-of-n Shamir secret sharing over GF(2^521 - 1): split and reconstruct
  masking.py           fixed-point encoding of floats to k-bit integers, the PRG, self and pairwise masks
  parties.py           the two parties, SecAggClient and SecAggCoordinator, and their messages
  protocol.py          `secure_sum`: the four rounds with dropouts, and the bytes each message costs
  strategy_wrapper.py  `SecureAggregation`: wraps a federated strategy so its messages are summed securely
"""
