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

`SecAggCoordinator` only ever receives public keys, opaque ciphertexts, masked vectors and shares; the
raw update lives in `SecAggClient` alone. Sizes of every message are counted as sent.
"""

from __future__ import annotations

import math
import secrets
import struct
from dataclasses import dataclass

import numpy as np
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from engine.federated.strategies import StrategyWrapper

BITS = 32  # masked values live in Z_{2^32}
PRIME = 2 ** 521 - 1  # Shamir field: a Mersenne prime above 2^256 (secrets are 32 bytes)
SHARE_BYTES = 66  # one field element
ID_BYTES = 4
UPDATE_CLAMP = 64.0  # default public bound on |update coordinate| (times the client's weight) before quantisation
ADAM_STEP_BOUND = 3.2  # Adam moves a coordinate by at most (1 - b1) / sqrt(1 - b2) ~ 3.16 x lr per step (Kingma & Ba)


def adam_update_bound(learning_rate: float, steps: int) -> float:
    """A public bound on |update coordinate| after `steps` Adam steps: clamping to it never changes an update."""
    return ADAM_STEP_BOUND * learning_rate * steps
_RAW = dict(encoding=serialization.Encoding.Raw, format=serialization.PublicFormat.Raw)


class SecAggAborted(RuntimeError):
    """Fewer than t clients were left to unmask: the round produces no aggregate."""


def threshold_for(n_clients: int) -> int:
    """t = a strict majority of the round's clients (at least 2)."""
    return max(2, n_clients // 2 + 1)


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


# --- primitives ---------------------------------------------------------------------------------------
def _kdf(shared: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(shared)


def prg(seed: bytes, dim: int) -> np.ndarray:
    """(dim,) uint32 from the ChaCha20 keystream of a 32-byte seed (a cryptographic PRG)."""
    encryptor = Cipher(algorithms.ChaCha20(seed, b"\x00" * 16), mode=None).encryptor()
    return np.frombuffer(encryptor.update(b"\x00" * (4 * dim)), dtype="<u4").astype(np.uint32)


def shamir_split(secret: bytes, xs: list[int], threshold: int) -> dict[int, int]:
    """t-out-of-n shares (x -> f(x)) of a 32-byte secret, f of degree t - 1 with f(0) = secret."""
    coefficients = [int.from_bytes(secret, "big")] + [secrets.randbelow(PRIME) for _ in range(threshold - 1)]
    shares = {}
    for x in xs:
        value = 0
        for coefficient in reversed(coefficients):  # Horner
            value = (value * x + coefficient) % PRIME
        shares[x] = value
    return shares


def shamir_combine(shares: dict[int, int]) -> bytes:
    """Lagrange interpolation at 0; needs at least t shares."""
    secret = 0
    for xi, yi in shares.items():
        numerator, denominator = 1, 1
        for xj in shares:
            if xj != xi:
                numerator = numerator * (-xj) % PRIME
                denominator = denominator * (xi - xj) % PRIME
        secret = (secret + yi * numerator * pow(denominator, -1, PRIME)) % PRIME
    if secret >= 2 ** 256:
        raise ValueError("These shares do not reconstruct a 32-byte secret: fewer than t of them, or corrupted.")
    return secret.to_bytes(32, "big")


def _pair_seed(private: X25519PrivateKey, peer_public: bytes) -> bytes:
    return _kdf(private.exchange(X25519PublicKey.from_public_bytes(peer_public)), b"secagg pairwise mask")


# --- the two parties ----------------------------------------------------------------------------------
class SecAggClient:
    """One client's side. Holds its quantised input (never sent in the clear) and its secrets."""

    def __init__(self, client_id: int, values: np.ndarray):
        self.id = client_id
        self._input = values.astype(np.uint32)  # (dim,) quantised update
        self._cipher_key, self._mask_key = X25519PrivateKey.generate(), X25519PrivateKey.generate()
        self._self_seed = secrets.token_bytes(32)
        self._keys: dict[int, tuple[bytes, bytes]] = {}
        self._held: dict[int, tuple[int, int]] = {}  # from client u: (share of s_u, share of b_u)

    def advertise_keys(self) -> bytes:
        return (struct.pack("<I", self.id) + self._cipher_key.public_key().public_bytes(**_RAW)
                + self._mask_key.public_key().public_bytes(**_RAW))

    def _aead(self, peer: int) -> ChaCha20Poly1305:
        return ChaCha20Poly1305(_kdf(self._cipher_key.exchange(X25519PublicKey.from_public_bytes(self._keys[peer][0])),
                                     b"secagg share encryption"))

    def share_keys(self, advertised: list[bytes], threshold: int) -> dict[int, bytes]:
        """Encrypted shares for every other client, keyed by recipient."""
        for message in advertised:
            (peer,), keys = struct.unpack("<I", message[:ID_BYTES]), message[ID_BYTES:]
            self._keys[peer] = (keys[:32], keys[32:])
        xs = [peer + 1 for peer in self._keys]
        mask_secret = self._mask_key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                                   serialization.NoEncryption())
        s_shares, b_shares = shamir_split(mask_secret, xs, threshold), shamir_split(self._self_seed, xs, threshold)
        self._held[self.id] = (s_shares[self.id + 1], b_shares[self.id + 1])
        out = {}
        for peer in self._keys:
            if peer == self.id:
                continue
            header = struct.pack("<II", self.id, peer)
            plaintext = header + s_shares[peer + 1].to_bytes(SHARE_BYTES, "big") + b_shares[peer + 1].to_bytes(SHARE_BYTES, "big")
            nonce = secrets.token_bytes(12)
            out[peer] = nonce + self._aead(peer).encrypt(nonce, plaintext, header)
        return out

    def receive_shares(self, ciphertexts: dict[int, bytes]) -> None:
        for sender, blob in ciphertexts.items():
            header = struct.pack("<II", sender, self.id)
            plaintext = self._aead(sender).decrypt(blob[:12], blob[12:], header)
            body = plaintext[8:]
            self._held[sender] = (int.from_bytes(body[:SHARE_BYTES], "big"), int.from_bytes(body[SHARE_BYTES:], "big"))

    def masked_input(self) -> np.ndarray:
        dim = self._input.size
        masked = self._input + prg(self._self_seed, dim)
        for peer, (_, mask_public) in self._keys.items():
            if peer == self.id:
                continue
            pair = prg(_pair_seed(self._mask_key, mask_public), dim)
            masked = masked + pair if self.id < peer else masked - pair  # uint32: wraps modulo 2^32
        return masked

    def unmasking_shares(self, survivors: list[int], dropped: list[int]) -> dict[str, dict[int, int]]:
        """Shares of b_u for survivors, of s_u for dropped clients (never both for one client)."""
        if set(survivors) & set(dropped):
            raise ValueError("A client cannot be both a survivor and dropped.")
        return {"b": {u: self._held[u][1] for u in survivors if u in self._held},
                "s": {u: self._held[u][0] for u in dropped if u in self._held}}


class SecAggCoordinator:
    """The server's side. It never receives an unmasked input: only keys, ciphertexts, masked vectors, shares."""

    def __init__(self, dim: int, threshold: int):
        self.dim, self.threshold = dim, threshold
        self.advertised: dict[int, bytes] = {}
        self.mailbox: dict[int, dict[int, bytes]] = {}  # recipient -> sender -> ciphertext
        self.masked: dict[int, np.ndarray] = {}
        self.unmask_shares: dict[int, dict[str, dict[int, int]]] = {}

    def collect_keys(self, message: bytes) -> None:
        self.advertised[struct.unpack("<I", message[:ID_BYTES])[0]] = message

    def broadcast_keys(self) -> list[bytes]:
        return list(self.advertised.values())

    def route_shares(self, sender: int, ciphertexts: dict[int, bytes]) -> None:
        for recipient, blob in ciphertexts.items():
            self.mailbox.setdefault(recipient, {})[sender] = blob

    def deliver(self, recipient: int) -> dict[int, bytes]:
        return self.mailbox.get(recipient, {})

    def collect_masked(self, client: int, masked: np.ndarray) -> None:
        self.masked[client] = masked

    def unmasking_request(self) -> tuple[list[int], list[int]]:
        survivors = sorted(self.masked)
        return survivors, sorted(set(self.mailbox) - set(survivors))

    def collect_unmasking(self, client: int, shares: dict[str, dict[int, int]]) -> None:
        self.unmask_shares[client] = shares

    def _reconstruct(self, kind: str, owner: int) -> bytes:
        shares = {holder + 1: given[kind][owner] for holder, given in self.unmask_shares.items() if owner in given[kind]}
        if len(shares) < self.threshold:
            raise SecAggAborted(f"Only {len(shares)} shares for client {owner}, threshold {self.threshold}.")
        return shamir_combine(dict(list(shares.items())[:self.threshold]))

    def aggregate(self) -> np.ndarray:
        """sum of the survivors' inputs modulo 2^k: the only thing the server learns."""
        survivors, dropped = self.unmasking_request()
        if len(self.unmask_shares) < self.threshold:
            raise SecAggAborted(f"{len(self.unmask_shares)} clients answered the unmasking round, threshold {self.threshold}.")
        total = np.zeros(self.dim, dtype=np.uint32)
        for client in survivors:
            total = total + self.masked[client]
        for client in survivors:
            total = total - prg(self._reconstruct("b", client), self.dim)
        for gone in dropped:
            private = X25519PrivateKey.from_private_bytes(self._reconstruct("s", gone))
            for client in survivors:
                mask_public = self.advertised[client][ID_BYTES + 32:]
                pair = prg(_pair_seed(private, mask_public), self.dim)
                total = total - pair if client < gone else total + pair  # undo what `client` added for `gone`
        return total


def secure_sum(inputs: dict[int, np.ndarray], dropped: set[int], threshold: int, traffic=None, round_index: int = 0
               ) -> np.ndarray:
    """Run the four rounds for `inputs` (client -> uint32 vector); clients in `dropped` vanish after ShareKeys."""
    dim = len(next(iter(inputs.values())))
    clients = {cid: SecAggClient(cid, values) for cid, values in inputs.items()}
    server = SecAggCoordinator(dim, threshold)

    def up(cid, size, kind="secure_aggregation"):  # keys and shares: what secure aggregation adds
        if traffic is not None:
            traffic.send_up(round_index, cid, size, kind)

    def down(cid, size):
        if traffic is not None:
            traffic.send_down(round_index, cid, size, "secure_aggregation")

    for cid, client in clients.items():  # round 0
        message = client.advertise_keys()
        server.collect_keys(message)
        up(cid, len(message))
    advertised = server.broadcast_keys()
    for cid, client in clients.items():  # round 1
        down(cid, sum(len(m) for m in advertised))
        ciphertexts = client.share_keys(advertised, threshold)
        server.route_shares(cid, ciphertexts)
        up(cid, sum(2 * ID_BYTES + len(blob) for blob in ciphertexts.values()))
    for cid, client in clients.items():
        delivered = server.deliver(cid)
        down(cid, sum(2 * ID_BYTES + len(blob) for blob in delivered.values()))
        client.receive_shares(delivered)
    for cid, client in clients.items():  # round 2: the dropped never send their masked input
        if cid not in dropped:
            masked = client.masked_input()
            server.collect_masked(cid, masked)
            up(cid, masked.nbytes, "masked_vectors")  # stands in for the plain upload
    survivors, gone = server.unmasking_request()
    for cid in survivors:  # round 3
        down(cid, ID_BYTES * (len(survivors) + len(gone)))
        shares = clients[cid].unmasking_shares(survivors, gone)
        server.collect_unmasking(cid, shares)
        up(cid, sum(len(v) for v in shares.values()) * (ID_BYTES + SHARE_BYTES))
    return server.aggregate()


class SecureAggregation(StrategyWrapper):
    """Sums the wrapped strategy's client messages (vector and weight) without the server seeing any one."""

    def __init__(self, strategy, *, bits: int = BITS, value_bound: float = UPDATE_CLAMP):
        """`value_bound`: public bound on |coordinate| of an update (adam_update_bound for Adam clients); the
        tighter it is, the finer the quantisation step a k-bit sum allows."""
        super().__init__(strategy)
        self.value_bound = value_bound
        # The sum of weights travels as one more coordinate: the range must hold it too (weights <= message_bound).
        self.quantiser = Quantiser.for_bound(max(value_bound, 1.0) * strategy.message_bound(), bits)
        self.aborted_rounds = 0
        self.clamped_values = 0

    def aggregate_fit(self, round_index, messages, dropped, params, traffic, rng):
        inputs = {}
        for message in messages:
            limit = self.value_bound * max(message.weight, 1.0)
            self.clamped_values += int(np.sum(np.abs(message.vector) > limit))
            values = np.append(np.clip(message.vector, -limit, limit), message.weight)  # (dim + 1,)
            inputs[message.client] = self.quantiser.encode(values)
        for client in dropped:  # they shared keys, then vanished before uploading (their input is never used)
            inputs[client] = np.zeros(params.size + 1, dtype=np.uint32)
        if len(inputs) < 2:  # nothing to hide a single update among: no aggregate this round
            self.aborted_rounds += 1
            return params
        try:
            total = self.quantiser.decode(secure_sum(inputs, set(dropped), threshold_for(len(inputs)), traffic, round_index))
        except SecAggAborted:
            self.aborted_rounds += 1
            return params
        return self.server_update(total[:-1], float(total[-1]), params, rng)

    def describe(self) -> dict:
        return {**self.strategy.describe(), "secagg_bits": self.quantiser.bits,
                "secagg_quantisation_step": self.quantiser.step, "secagg_threshold": "majority of the round's clients"}
