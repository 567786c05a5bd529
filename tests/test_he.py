"""engine.he: the client/server split is real (the server cannot decrypt), parameters are security-checked,
packing round-trips, and the folded square MLP computes what the plaintext model computes."""

import numpy as np
import pytest
import tenseal as ts

from engine.errors import ConfigError
from engine.he import (HE_STANDARD_MAX_BITS, HEClient, HEParameters, HEServer, PlainModel, check_parameters,
                       choose_parameters, parameters_for, score_encrypted)
from engine.he.packing import chunk_bounds, message_bytes, pack_feature_major, unpack_scores

RNG = np.random.default_rng(0)


def linear_model(d=5, classes=2) -> PlainModel:
    return PlainModel("linear", (RNG.normal(size=(classes, d)), RNG.normal(size=classes)))


def square_model(d=5, hidden=6, classes=2) -> PlainModel:
    return PlainModel("square-mlp", (RNG.normal(size=(hidden, d)) / 2, RNG.normal(size=hidden) / 2,
                                     RNG.normal(size=(classes, hidden)), RNG.normal(size=classes)))


# --- the server has no secret key ---------------------------------------------------------------------------
def test_server_gets_bytes_without_secret_key_and_cannot_decrypt():
    model = linear_model()
    client = HEClient(parameters_for(model))
    public = client.public_context(galois_keys=False, relin_keys=False)
    assert isinstance(public, bytes)
    server = HEServer(public, model)
    assert not server.context.is_private() and not server.context.has_secret_key()
    assert not server.context.has_galois_keys()  # batched scoring needs no rotations

    x = RNG.normal(size=(7, 5))
    messages, sizes = client.encrypt_batch(x)
    assert all(isinstance(part, bytes) for message in messages for part in message)
    reply = server.score_chunk(messages[0])
    assert all(isinstance(part, bytes) for part in reply)
    for secret in (messages[0][0], reply[0]):  # neither the records nor the scores open on the server
        with pytest.raises(ValueError, match="secret"):
            ts.ckks_vector_from(server.context, secret).decrypt()
    scores = client.decrypt_chunk(reply, sizes[0]).T  # the client can
    np.testing.assert_allclose(scores, model.scores(x), atol=1e-4)


def test_server_refuses_a_context_with_the_secret_key():
    model = linear_model()
    client = HEClient(parameters_for(model))
    private = client._context.serialize(save_secret_key=True)
    with pytest.raises(ValueError, match="secret key"):
        HEServer(private, model)


def test_interactive_scoring_needs_galois_keys_and_sends_them_only_then():
    model = linear_model()
    client = HEClient(parameters_for(model))
    batched = client.public_context(galois_keys=False, relin_keys=False)
    interactive = client.public_context(galois_keys=True, relin_keys=False)
    assert len(interactive) > 100 * len(batched)  # rotation keys are the bulk of a public context
    request = client.encrypt_record(RNG.normal(size=5))
    with pytest.raises(ValueError, match="Galois"):
        HEServer(batched, model).score_record(request)
    score = client.decrypt_record(HEServer(interactive, model).score_record(request), 1)
    assert score.shape == (1,)


# --- parameters: chosen from depth, checked against the HE Standard ------------------------------------------
def test_insecure_parameter_set_is_refused_with_a_fix():
    with pytest.raises(ConfigError, match=r"insecure: 280 bits .* > 218 allowed at N=8192.*use N=16384"):
        choose_parameters(3, poly_modulus_degree=8192, coeff_mod_bit_sizes=(60, 40, 40, 40, 40, 60))
    with pytest.raises(ConfigError, match="insecure"):
        check_parameters(HEParameters(4096, (60, 40, 60), 40))
    with pytest.raises(ConfigError, match="insecure"):
        HEClient(HEParameters(8192, (60, 40, 40, 40, 40, 60), 40))  # the client refuses too
    with pytest.raises(ConfigError, match="depth 3"):
        choose_parameters(3, coeff_mod_bit_sizes=(60, 40, 60))
    with pytest.raises(ConfigError, match="not one of"):
        check_parameters(HEParameters(3000, (60, 40, 60), 40))


@pytest.mark.parametrize("depth, degree, total, security", [(1, 8192, 160, 128), (2, 8192, 200, 128),
                                                            (3, 16384, 240, 192)])
def test_parameters_follow_depth(depth, degree, total, security):
    params = choose_parameters(depth)
    assert (params.poly_modulus_degree, params.total_bits, params.security_bits) == (degree, total, security)
    assert params.depth == depth and params.scale_bits == 40
    assert params.total_bits <= HE_STANDARD_MAX_BITS[128][params.poly_modulus_degree]


def test_model_depth_sets_the_parameters():
    assert parameters_for(linear_model()).coeff_mod_bit_sizes == (60, 40, 60)
    assert parameters_for(square_model()).coeff_mod_bit_sizes == (60, 40, 40, 60)  # folded: depth 2
    assert parameters_for(square_model(classes=3)).poly_modulus_degree == 16384  # depth 3


# --- packing ------------------------------------------------------------------------------------------------
def test_packing_round_trip_plain_and_encrypted():
    x = RNG.normal(size=(10, 3))
    assert chunk_bounds(10, 4) == [(0, 4), (4, 8), (8, 10)]
    chunks = pack_feature_major(x, slots=4)
    assert [c.shape for c in chunks] == [(3, 4), (3, 4), (3, 2)]
    np.testing.assert_array_equal(unpack_scores(chunks), x)

    client = HEClient(choose_parameters(1))
    messages, sizes = client.encrypt_batch(x)
    assert sizes == [10] and len(messages[0]) == 3  # one ciphertext per feature, records in slots
    back = unpack_scores([client.decrypt_chunk(message, n) for message, n in zip(messages, sizes)])
    np.testing.assert_allclose(back, x, atol=1e-6)
    assert message_bytes(messages[0]) == sum(len(part) for part in messages[0]) > 0


# --- the models the server evaluates -------------------------------------------------------------------------
def test_folded_square_mlp_equals_the_plaintext_model():
    model = square_model()
    u, u0, signs, c = model.folded_square()
    x = RNG.normal(size=(20, 5))
    folded = ((x @ u.T + u0) ** 2) @ signs + c
    np.testing.assert_allclose(folded, model.scores(x)[:, 0], rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("make", [linear_model, square_model, lambda: linear_model(classes=3),
                                  lambda: square_model(classes=3)], ids=["linear", "square", "linear-3", "square-3"])
def test_encrypted_scores_match_plaintext_in_both_modes(make):
    model = make()
    x = RNG.normal(size=(30, 5))
    result = score_encrypted(model, x, interactive_sample=2)
    assert result.scores.shape == (30, model.n_scores)
    assert result.metrics["he_agreement"] == 1.0 and result.metrics["he_agreement_interactive"] == 1.0
    assert result.metrics["he_max_abs_error"] < 1e-4 * max(1.0, np.abs(result.plain_scores).max())
    np.testing.assert_array_equal(result.decisions, result.plain_decisions)
