"""The primitives under secure aggregation, each on its own: X25519 key agreement (both sides derive the same
secrets), Shamir sharing (any t shares reconstruct, t - 1 do not), masks (pairwise masks cancel in the sum,
self masks come off) and fixed-point encoding (round-trips within half a step, sums decode exactly)."""

from itertools import combinations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.federated.secure_aggregation.key_agreement import (KEY_BYTES, NONCE_BYTES, SHARE_ENCRYPTION_INFO,
                                                               derive_key, new_private_key, pairwise_mask_seed,
                                                               private_bytes, private_key_from_bytes, public_bytes,
                                                               share_cipher)
from engine.federated.secure_aggregation.masking import (Quantiser, add_pairwise_mask, add_self_mask, prg,
                                                         remove_pairwise_mask, remove_self_mask)
from engine.federated.secure_aggregation.shamir import reconstruct_secret, split_secret


# --- key agreement ------------------------------------------------------------------------------------
def test_both_sides_derive_the_same_mask_seed_and_share_key():
    alice, bob, eve = new_private_key(), new_private_key(), new_private_key()
    assert len(public_bytes(alice)) == KEY_BYTES
    seed = pairwise_mask_seed(alice, public_bytes(bob))
    assert seed == pairwise_mask_seed(bob, public_bytes(alice)) and len(seed) == 32
    assert seed != pairwise_mask_seed(alice, public_bytes(eve))
    nonce, header = bytes(NONCE_BYTES), b"ids"
    sealed = share_cipher(alice, public_bytes(bob)).encrypt(nonce, b"a share", header)
    assert share_cipher(bob, public_bytes(alice)).decrypt(nonce, sealed, header) == b"a share"
    # The two uses are kept apart by their HKDF labels: the share-encryption key is not the mask seed.
    assert derive_key(alice, public_bytes(bob), SHARE_ENCRYPTION_INFO) != seed


def test_a_private_key_survives_its_raw_bytes():
    """What the server reconstructs from shares of s_u is a working key: it derives u's pairwise seeds."""
    dropped, survivor = new_private_key(), new_private_key()
    rebuilt = private_key_from_bytes(private_bytes(dropped))
    assert len(private_bytes(dropped)) == KEY_BYTES
    assert pairwise_mask_seed(rebuilt, public_bytes(survivor)) == pairwise_mask_seed(survivor, public_bytes(dropped))


# --- Shamir --------------------------------------------------------------------------------------------
def test_any_threshold_sized_subset_reconstructs_and_fewer_fail():
    secret = bytes(range(32))
    xs, threshold = [1, 2, 3, 4, 5], 3
    shares = split_secret(secret, xs, threshold)
    for size in range(threshold, len(xs) + 1):
        for subset in combinations(xs, size):
            assert reconstruct_secret({x: shares[x] for x in subset}) == secret
    # t - 1 points fit many curves: the value at 0 is uniform in GF(2^521 - 1), above 2^256 but for ~2^-265.
    for subset in combinations(xs, threshold - 1):
        with pytest.raises(ValueError, match="fewer than t"):
            reconstruct_secret({x: shares[x] for x in subset})


def test_shares_are_fresh_and_a_corrupted_share_fails():
    secret = b"\xff" * 32  # the largest secret still reconstructs
    first, second = split_secret(secret, [1, 2, 3], 2), split_secret(secret, [1, 2, 3], 2)
    assert first != second  # new random coefficients every time
    assert reconstruct_secret({1: first[1], 3: first[3]}) == secret
    with pytest.raises(ValueError):
        reconstruct_secret({1: first[1], 3: first[3] + 1})


# --- masking -------------------------------------------------------------------------------------------
def test_pairwise_masks_cancel_in_the_sum():
    n_clients, dim = 5, 1000
    keys = [new_private_key() for _ in range(n_clients)]
    masked = []
    for own in range(n_clients):
        vector = np.zeros(dim, dtype=np.uint32)  # (dim,)
        for peer in range(n_clients):
            if peer != own:
                vector = add_pairwise_mask(vector, pairwise_mask_seed(keys[own], public_bytes(keys[peer])), own, peer)
        assert np.mean(vector == 0) < 1e-2  # each one alone looks random
        masked.append(vector)
    np.testing.assert_array_equal(np.sum(masked, axis=0, dtype=np.uint32), np.zeros(dim, dtype=np.uint32))


def test_masks_come_off_exactly():
    rng = np.random.default_rng(0)
    vector = rng.integers(0, 2 ** 32, 257, dtype=np.uint32)  # (dim,)
    seed = bytes(range(32))
    np.testing.assert_array_equal(remove_self_mask(add_self_mask(vector, seed), seed), vector)
    for own, peer in ((0, 1), (1, 0)):
        np.testing.assert_array_equal(remove_pairwise_mask(add_pairwise_mask(vector, seed, own, peer), seed, own, peer),
                                      vector)
    np.testing.assert_array_equal(prg(seed, 257), prg(seed, 257))  # deterministic in the seed
    assert not np.array_equal(prg(seed, 257), prg(bytes(32), 257))


# --- fixed point ---------------------------------------------------------------------------------------
@settings(max_examples=50, deadline=None)
@given(bound=st.floats(0.5, 1e6), fractions=st.lists(st.floats(-1.0, 1.0), min_size=1, max_size=20))
def test_fixed_point_round_trips_within_half_a_step(bound, fractions):
    quantiser = Quantiser.for_bound(bound)
    values = np.array(fractions) * bound  # (dim,) every |value| <= bound
    decoded = quantiser.decode(quantiser.encode(values))
    assert np.max(np.abs(decoded - values)) <= quantiser.step / 2 + 1e-12 * bound


@settings(max_examples=30, deadline=None)
@given(n_clients=st.integers(1, 8), seed=st.integers(0, 2 ** 32 - 1))
def test_sums_of_encodings_decode_to_the_sum(n_clients, seed):
    bound = 100.0
    quantiser = Quantiser.for_bound(bound)
    values = np.random.default_rng(seed).uniform(-bound / n_clients, bound / n_clients, (n_clients, 30))  # (clients, dim)
    total = np.sum([quantiser.encode(row) for row in values], axis=0, dtype=np.uint32)  # wraps modulo 2^32
    assert np.max(np.abs(quantiser.decode(total) - values.sum(axis=0))) <= n_clients * quantiser.step / 2 + 1e-9


def test_a_bound_too_large_for_the_bits_is_refused():
    with pytest.raises(ValueError, match="does not fit 32-bit"):
        Quantiser.for_bound(2.0 ** 31)
