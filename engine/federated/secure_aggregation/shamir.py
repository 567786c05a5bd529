"""Shamir t-out-of-n secret sharing of 32-byte secrets over the prime field GF(2^521 - 1): any t shares
reconstruct the secret, fewer reveal nothing about it."""

from __future__ import annotations

import secrets

PRIME = 2 ** 521 - 1  # a Mersenne prime above 2^256 (secrets are 32 bytes)
SECRET_BYTES = 32
SHARE_BYTES = 66  # one field element


def split_secret(secret: bytes, xs: list[int], threshold: int) -> dict[int, int]:
    """t-out-of-n shares (x -> f(x)) of a 32-byte secret, f of degree t - 1 with f(0) = secret."""
    coefficients = [int.from_bytes(secret, "big")] + [secrets.randbelow(PRIME) for _ in range(threshold - 1)]
    shares = {}
    for x in xs:
        value = 0
        for coefficient in reversed(coefficients):  # Horner
            value = (value * x + coefficient) % PRIME
        shares[x] = value
    return shares


def reconstruct_secret(shares: dict[int, int]) -> bytes:
    """Lagrange interpolation at 0; needs at least t shares."""
    secret = 0
    for xi, yi in shares.items():
        numerator, denominator = 1, 1
        for xj in shares:
            if xj != xi:
                numerator = numerator * (-xj) % PRIME
                denominator = denominator * (xi - xj) % PRIME
        secret = (secret + yi * numerator * pow(denominator, -1, PRIME)) % PRIME
    if secret >= 2 ** (8 * SECRET_BYTES):
        raise ValueError("These shares do not reconstruct a 32-byte secret: fewer than t of them, or corrupted.")
    return secret.to_bytes(SECRET_BYTES, "big")
