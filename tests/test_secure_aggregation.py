"""Secure aggregation (Bonawitz et al. 2017): exact sums with and without dropouts, masked uploads that look
uniform and unrelated to the update, a coordinator that never holds an unmasked update, and the same model.
The primitives (key agreement, Shamir, masking) are tested on their own in test_secure_aggregation_primitives.py."""

import inspect

import numpy as np
import pytest
from scipy import stats

from engine.config import SweepSpec
from engine.federated.costs import Traffic
from engine.federated.secure_aggregation.masking import Quantiser
from engine.federated.secure_aggregation.parties import SecAggAborted, SecAggClient, SecAggCoordinator
from engine.federated.secure_aggregation.protocol import secure_sum, threshold_for
from engine.federated.secure_aggregation.strategy_wrapper import UPDATE_CLAMP, SecureAggregation
from engine_support import make_spec, expand, prepared_data
from engine.techniques.base import RunContext
from engine.techniques.registry import create_technique


def _inputs(n_clients=10, dim=500, seed=0):
    rng = np.random.default_rng(seed)
    quantiser = Quantiser.for_bound(UPDATE_CLAMP * 1000)
    raw = {c: rng.normal(scale=3.0, size=dim) for c in range(n_clients)}
    return quantiser, raw, {c: quantiser.encode(v) for c, v in raw.items()}


def _plain_sum(encoded, clients):
    total = np.zeros(len(next(iter(encoded.values()))), dtype=np.uint32)
    for c in clients:
        total = total + encoded[c]
    return total


@pytest.mark.parametrize("dropped", [set(), {2, 7}])  # 0% and 20% of 10 clients drop out mid-round
def test_aggregate_equals_the_plain_sum_exactly(dropped):
    quantiser, raw, encoded = _inputs()
    traffic = Traffic()
    total = secure_sum(encoded, dropped, threshold_for(10), traffic)
    survivors = [c for c in encoded if c not in dropped]
    np.testing.assert_array_equal(total, _plain_sum(encoded, survivors))  # exact, modulo 2^32
    float_sum = sum(raw[c] for c in survivors)
    assert np.max(np.abs(quantiser.decode(total) - float_sum)) <= len(survivors) * quantiser.step / 2 + 1e-12
    # Dropped clients sent keys and shares but no masked vector; survivors also sent unmasking shares.
    for c in dropped:
        assert traffic.up[(0, c)] < 500 * 4
    for c in survivors:
        assert traffic.up[(0, c)] > 500 * 4
    assert traffic.overhead["masked_vectors"] == len(survivors) * 500 * 4  # k = 32 bits per coordinate
    assert traffic.overhead["secure_aggregation"] + traffic.overhead["masked_vectors"] == traffic.total


def test_too_many_dropouts_abort_the_round():
    _, _, encoded = _inputs(n_clients=6)
    with pytest.raises(SecAggAborted):
        secure_sum(encoded, {0, 1, 2, 3}, threshold_for(6))  # 2 survivors < t = 4


def test_masked_upload_is_uniform_and_unrelated_to_the_update():
    dim = 200_000
    rng = np.random.default_rng(1)
    structured = np.zeros(dim, dtype=np.uint32)  # the most structured input there is
    structured[: dim // 2] = 12345
    clients = {c: SecAggClient(c, structured if c == 0 else rng.integers(0, 2 ** 32, dim, dtype=np.uint32))
               for c in range(3)}
    advertised = [client.advertise_keys() for client in clients.values()]
    outgoing = {c: client.share_keys(advertised, 2) for c, client in clients.items()}
    for c, client in clients.items():
        client.receive_shares({sender: blobs[c] for sender, blobs in outgoing.items() if c in blobs})
    masked = clients[0].masked_input()
    # Uniform over Z_{2^32}: chi-square over 256 bins of the top byte, and Kolmogorov-Smirnov on [0, 1).
    counts = np.bincount((masked >> 24).astype(np.int64), minlength=256)
    assert stats.chisquare(counts).pvalue > 1e-4
    assert stats.kstest(masked / 2.0 ** 32, "uniform").pvalue > 1e-4
    # Unrelated to the update: the masked halves (update 0 vs 12345) have the same distribution, no correlation.
    assert stats.ks_2samp(masked[: dim // 2], masked[dim // 2:]).pvalue > 1e-4
    assert abs(np.corrcoef(masked.astype(np.float64), structured.astype(np.float64))[0, 1]) < 5 / np.sqrt(dim)
    assert np.mean(masked == structured) < 1e-3


def test_the_coordinator_never_holds_an_unmasked_update():
    _, _, encoded = _inputs(n_clients=5, dim=300)
    clients = {c: SecAggClient(c, v) for c, v in encoded.items()}
    server = SecAggCoordinator(300, threshold_for(5))
    for client in clients.values():
        server.collect_keys(client.advertise_keys())
    for c, client in clients.items():
        server.route_shares(c, client.share_keys(server.broadcast_keys(), server.threshold))
    for c, client in clients.items():
        client.receive_shares(server.deliver(c))
    for c in (0, 1, 2, 3):  # client 4 drops out
        server.collect_masked(c, clients[c].masked_input())
    survivors, dropped = server.unmasking_request()
    assert dropped == [4]
    for c in survivors:
        shares = clients[c].unmasking_shares(survivors, dropped)
        assert set(shares["s"]) == {4} and 4 not in shares["b"]  # never both secrets of one client
        server.collect_unmasking(c, shares)
    total = server.aggregate()
    np.testing.assert_array_equal(total, _plain_sum(encoded, [0, 1, 2, 3]))
    held = [value for value in vars(server).values()]
    arrays = [a for a in held if isinstance(a, np.ndarray)] + [a for d in held if isinstance(d, dict)
                                                               for a in d.values() if isinstance(a, np.ndarray)]
    for array in arrays:
        for raw in encoded.values():
            assert not np.array_equal(array, raw)
    # Its API takes only keys (bytes), ciphertexts (bytes), masked vectors and shares: no method accepts an update.
    assert set(inspect.signature(SecAggCoordinator.collect_masked).parameters) == {"self", "client", "masked"}


def _run(technique, secure, dropout=0.0, **settings):
    spec = make_spec(dataset="breast-cancer", techniques=(technique,), epochs=3, batch_size=64, accountant="rdp",
                     epsilons=(4.0,), n_clients=5, rounds=3, secure_aggregation=secure, dropout=dropout, **settings)
    config = expand(spec)[0]
    return create_technique(technique).run(config, prepared_data(config), context=RunContext(device="cpu"))


def test_fedavg_with_and_without_secure_aggregation_gives_the_same_model():
    plain, secure = _run("fedavg", False), _run("fedavg", True)
    # Each round's aggregate differs from the float one by at most half a quantisation step per client (over the
    # examples; checked exactly below): over three rounds the models make the same decisions (142 test rows).
    assert abs(secure.accuracy - plain.accuracy) <= 1 / 142
    step = secure.extra["secagg_quantisation_step"]
    assert step < 1e-3 and secure.extra["secagg_aborted_rounds"] == 0
    # Secure aggregation costs keys, encrypted shares and unmasking shares on top of the k-bit masked vectors.
    assert secure.extra["comm_bytes"] > plain.extra["comm_bytes"]
    assert secure.extra["overhead_bytes"]["secure_aggregation"] > 0


def test_same_model_bit_for_bit_to_the_quantisation_step():
    from engine.federated.local import ClientData, LocalOptions, ParamLayout, make_trainer
    from engine.federated.partitions import make_partition
    from engine.federated.strategies import FedAvg, run_rounds
    from engine.models import build_model
    import torch

    data = prepared_data(expand(make_spec(dataset="breast-cancer", techniques=("baseline",)))[0])
    partition = make_partition(data, kind="iid", n_clients=5, seed=0)
    finals = []
    for secure in (False, True):
        torch.manual_seed(0)
        model = build_model("mlp", n_features=data.n_features, n_classes=2, hidden_units=16, is_image=False)
        layout = ParamLayout(model)
        strategy = FedAvg(n_clients=5, clients_per_round=5, local=LocalOptions(1, 32, 5e-3), sizes=partition.sizes)
        step = SecureAggregation(strategy).quantiser.step
        if secure:
            strategy = SecureAggregation(strategy)
        history = run_rounds(strategy, make_trainer("vectorised", model, layout),
                             ClientData(data.x_train, data.y_train, partition.train_indices), params=layout.model_vector(model),
                             rounds=1, seed=0)
        finals.append(history.params)
    # One round: the aggregate is the float weighted mean up to K/2 quantisation steps over the examples.
    assert np.max(np.abs(finals[0] - finals[1])) <= 5 * step / 2 / sum(partition.sizes) + 1e-7


def test_dropout_mid_round_keeps_training_with_secure_aggregation():
    result = _run("fedavg", True, dropout=0.2)
    assert sum(result.extra["survivors_per_round"]) < sum(result.extra["selected_per_round"])
    assert result.extra["secagg_aborted_rounds"] == 0
    assert 0.5 < result.accuracy <= 1.0


def test_secure_aggregation_wraps_client_level_dp():
    result = _run("dp-fedavg", True)
    assert result.epsilon <= 4.0 and result.extra["privacy_unit"] == "client"
    assert result.extra["secagg_bits"] == 32 and result.extra["secagg_aborted_rounds"] == 0
