"""X25519 key agreement and HKDF-SHA256 key derivation: each pair of clients derives the same secret from
one's private key and the other's public key, for two uses kept apart by the HKDF `info` label: the seed of
their pairwise mask (s_uv) and the key that encrypts the Shamir shares one sends the other."""

from __future__ import annotations

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

KEY_BYTES = 32  # an X25519 public or private key, raw
NONCE_BYTES = 12  # ChaCha20-Poly1305 nonce
MASK_SEED_INFO = b"secagg pairwise mask"
SHARE_ENCRYPTION_INFO = b"secagg share encryption"


def new_private_key() -> X25519PrivateKey:
    return X25519PrivateKey.generate()


def public_bytes(key: X25519PrivateKey) -> bytes:
    """The raw 32-byte public key: what a client advertises."""
    return key.public_key().public_bytes(encoding=serialization.Encoding.Raw, format=serialization.PublicFormat.Raw)


def private_bytes(key: X25519PrivateKey) -> bytes:
    """The raw 32-byte private key: what a client Shamir-shares so a dropped client's masks can be removed."""
    return key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption())


def private_key_from_bytes(raw: bytes) -> X25519PrivateKey:
    return X25519PrivateKey.from_private_bytes(raw)


def derive_key(private: X25519PrivateKey, peer_public: bytes, info: bytes) -> bytes:
    """HKDF-SHA256(X25519(private, peer)) under the label `info`: 32 bytes, the same from either side."""
    shared = private.exchange(X25519PublicKey.from_public_bytes(peer_public))
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(shared)


def pairwise_mask_seed(private: X25519PrivateKey, peer_public: bytes) -> bytes:
    """s_uv: the seed of the mask clients u and v add with opposite signs."""
    return derive_key(private, peer_public, MASK_SEED_INFO)


def share_cipher(private: X25519PrivateKey, peer_public: bytes) -> ChaCha20Poly1305:
    """The authenticated cipher that carries Shamir shares between two clients through the server."""
    return ChaCha20Poly1305(derive_key(private, peer_public, SHARE_ENCRYPTION_INFO))
