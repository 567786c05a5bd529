"""The two parties of one secure-aggregation round and the messages they exchange.

`SecAggClient` holds its quantised input (never sent in the clear) and its secrets; `SecAggCoordinator`
(the server) only ever receives public keys, opaque ciphertexts, masked vectors and shares.
Messages: advertised keys = id (4 bytes) + c_u public + s_u public (32 bytes each); an encrypted share =
nonce + ChaCha20-Poly1305(sender id, recipient id, share of s_u, share of b_u) with the ids as associated data.
"""

from __future__ import annotations

import secrets
import struct

import numpy as np

from engine.federated.secure_aggregation.key_agreement import (KEY_BYTES, NONCE_BYTES, new_private_key,
                                                               pairwise_mask_seed, private_bytes,
                                                               private_key_from_bytes, public_bytes, share_cipher)
from engine.federated.secure_aggregation.masking import (add_pairwise_mask, add_self_mask, remove_pairwise_mask,
                                                         remove_self_mask)
from engine.federated.secure_aggregation.shamir import (SECRET_BYTES, SHARE_BYTES, reconstruct_secret,
                                                        split_secret)

ID_BYTES = 4


class SecAggAborted(RuntimeError):
    """Fewer than t clients were left to unmask: the round produces no aggregate."""


class SecAggClient:
    """One client's side. Holds its quantised input (never sent in the clear) and its secrets."""

    def __init__(self, client_id: int, values: np.ndarray):
        self.id = client_id
        self._input = values.astype(np.uint32)  # (dim,) quantised update
        self._cipher_key, self._mask_key = new_private_key(), new_private_key()
        self._self_seed = secrets.token_bytes(SECRET_BYTES)
        self._keys: dict[int, tuple[bytes, bytes]] = {}  # peer -> (c_v public, s_v public)
        self._held: dict[int, tuple[int, int]] = {}  # from client u: (share of s_u, share of b_u)

    def advertise_keys(self) -> bytes:
        return struct.pack("<I", self.id) + public_bytes(self._cipher_key) + public_bytes(self._mask_key)

    def share_keys(self, advertised: list[bytes], threshold: int) -> dict[int, bytes]:
        """Encrypted shares for every other client, keyed by recipient."""
        for message in advertised:
            (peer,), keys = struct.unpack("<I", message[:ID_BYTES]), message[ID_BYTES:]
            self._keys[peer] = (keys[:KEY_BYTES], keys[KEY_BYTES:])
        xs = [peer + 1 for peer in self._keys]  # Shamir evaluates at x = id + 1: f(0) is the secret
        s_shares = split_secret(private_bytes(self._mask_key), xs, threshold)
        b_shares = split_secret(self._self_seed, xs, threshold)
        self._held[self.id] = (s_shares[self.id + 1], b_shares[self.id + 1])
        out = {}
        for peer, (cipher_public, _) in self._keys.items():
            if peer == self.id:
                continue
            header = struct.pack("<II", self.id, peer)
            plaintext = (header + s_shares[peer + 1].to_bytes(SHARE_BYTES, "big")
                         + b_shares[peer + 1].to_bytes(SHARE_BYTES, "big"))
            nonce = secrets.token_bytes(NONCE_BYTES)
            out[peer] = nonce + share_cipher(self._cipher_key, cipher_public).encrypt(nonce, plaintext, header)
        return out

    def receive_shares(self, ciphertexts: dict[int, bytes]) -> None:
        for sender, blob in ciphertexts.items():
            header = struct.pack("<II", sender, self.id)
            cipher = share_cipher(self._cipher_key, self._keys[sender][0])
            body = cipher.decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], header)[len(header):]
            self._held[sender] = (int.from_bytes(body[:SHARE_BYTES], "big"), int.from_bytes(body[SHARE_BYTES:], "big"))

    def masked_input(self) -> np.ndarray:
        masked = add_self_mask(self._input, self._self_seed)  # (dim,) uint32
        for peer, (_, mask_public) in self._keys.items():
            if peer != self.id:
                masked = add_pairwise_mask(masked, pairwise_mask_seed(self._mask_key, mask_public), self.id, peer)
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
        return reconstruct_secret(dict(list(shares.items())[:self.threshold]))

    def aggregate(self) -> np.ndarray:
        """sum of the survivors' inputs modulo 2^k: the only thing the server learns."""
        survivors, dropped = self.unmasking_request()
        if len(self.unmask_shares) < self.threshold:
            raise SecAggAborted(f"{len(self.unmask_shares)} clients answered the unmasking round, threshold {self.threshold}.")
        total = np.zeros(self.dim, dtype=np.uint32)  # (dim,)
        for client in survivors:
            total = total + self.masked[client]
        for client in survivors:
            total = remove_self_mask(total, self._reconstruct("b", client))
        for gone in dropped:
            private = private_key_from_bytes(self._reconstruct("s", gone))
            for client in survivors:
                mask_public = self.advertised[client][ID_BYTES + KEY_BYTES:]
                total = remove_pairwise_mask(total, pairwise_mask_seed(private, mask_public), client, gone)
        return total
