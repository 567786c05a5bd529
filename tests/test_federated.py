"""Federated learning: partitions, aggregation, trainers, config and cache keys, records, accounting, CLI."""

import json
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from engine.cli import app
from engine.config import RunConfig, SweepSpec
from engine.errors import ConfigError
from engine.federated.compression import compress, parse_compression
from engine.federated.local import ClientData, LocalOptions, ParamLayout, make_trainer
from engine.federated.partitions import make_partition, partition_summary
from engine.federated.strategies import FedAvg, aggregate, aggregate_sum
from engine.models import build_model
from engine.privacy.accounting import epsilon_for
from engine.privacy.composition import compose_runs, run_mechanism
from engine.data import get_dataset_info
from engine.runner.plan import spec_for_run
from engine.runner.spec import spec_from_mapping
from engine_support import make_spec, expand, plan_sweep, prepared_data, run_sweep
from engine.techniques.base import RunContext
from engine.techniques.registry import create_technique

SMALL = dict(dataset="breast-cancer", epochs=2, batch_size=64, accountant="rdp", epsilons=(2.0,), seeds=(0,))
HOSPITALS = ["Cleveland", "Hungary", "Switzerland", "VA Long Beach"]


def _data(name="breast-cancer"):
    return prepared_data(expand(make_spec(dataset=name, techniques=("baseline",)))[0])


# --- partitions -----------------------------------------------------------------------------------------
def _covers(partition, n):
    rows = np.concatenate(partition.train_indices)
    return len(rows) == n and len(np.unique(rows)) == n


def test_iid_partition_is_balanced_disjoint_and_seeded():
    data = _data()
    partition = make_partition(data, kind="iid", n_clients=10, seed=0)
    assert _covers(partition, data.n_train) and max(partition.sizes) - min(partition.sizes) <= 1
    again = make_partition(data, kind="iid", n_clients=10, seed=0)
    assert all(np.array_equal(a, b) for a, b in zip(partition.train_indices, again.train_indices))
    other = make_partition(data, kind="iid", n_clients=10, seed=1)
    assert not np.array_equal(partition.train_indices[0], other.train_indices[0])


def test_dirichlet_skews_labels_more_as_alpha_falls():
    from engine.federated.partitions import label_skew

    data = _data()
    skews = {alpha: np.mean([label_skew(make_partition(data, kind="dirichlet", n_clients=5, alpha=alpha, seed=s), data)
                             for s in range(5)]) for alpha in (0.1, 1.0, 100.0)}
    iid = label_skew(make_partition(data, kind="iid", n_clients=5, seed=0), data)
    assert skews[0.1] > skews[1.0] > skews[100.0] and skews[0.1] > 5 * iid
    assert _covers(make_partition(data, kind="dirichlet", n_clients=5, alpha=0.1, seed=0), data.n_train)


def test_quantity_skew_varies_sizes_not_labels():
    data = _data()
    partition = make_partition(data, kind="quantity", n_clients=5, alpha=0.3, seed=0)
    assert _covers(partition, data.n_train) and min(partition.sizes) >= 2
    assert max(partition.sizes) > 3 * min(partition.sizes)


def test_heart_natural_partition_is_its_four_hospitals():
    data = _data("heart")
    partition = make_partition(data, kind="natural", column="dataset")
    assert list(partition.client_names) == HOSPITALS and _covers(partition, data.n_train)
    assert sum(len(rows) for rows in partition.test_indices) == len(data.y_test)
    summary = partition_summary(partition, data)
    assert list(summary["client"]) == HOSPITALS and summary["n_train"].sum() == data.n_train
    assert set(summary.columns) >= {"n_train", "share", "label_0", "label_1", "n_test"}
    assert summary["label_1"].max() - summary["label_1"].min() > 0.3  # very different disease rates
    # `--partition natural` alone finds the catalogue's silo column.
    config = expand(make_spec(dataset="heart", techniques=("fedavg",), partition="natural"))[0]
    assert (config.param("n_clients"), config.param("partition_column")) == (4, "dataset")


@pytest.mark.parametrize("settings_, message", [
    (dict(dataset="heart", partition="natural", n_clients=3), "has 4 silos"),
    (dict(dataset="breast-cancer", partition="natural"), "names no silo column"),
    (dict(partition="iid", alpha=0.1), "alpha applies to"),
    (dict(partition="stripes"), "Unknown partition"),
    (dict(dropout=1.0), "dropout must be >= 0 and < 1"),
    (dict(secure_aggregation=True, compression="int8"), "does not combine"),
    (dict(compression="gzip"), "Unknown compression"),
    (dict(n_clients=4, clients_per_round=5), "exceeds"),
])
def test_bad_federated_settings_say_how_to_fix(settings_, message):
    with pytest.raises(ConfigError, match=message):
        expand(make_spec(**{"techniques": ("fedavg",), **settings_}))


def test_too_many_clients_for_the_data_is_caught_before_training():
    with pytest.raises(ConfigError, match="cannot give"):
        plan_sweep(make_spec(**{**SMALL, "techniques": ("fedavg",), "n_clients": 300}), None)


# --- aggregation ------------------------------------------------------------------------------------------
vectors = st.lists(st.floats(-10, 10, allow_nan=False), min_size=3, max_size=3)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(vectors, st.integers(1, 1000)), min_size=1, max_size=6))
def test_aggregate_is_the_example_weighted_mean(pairs):
    updates, weights = [np.array(u) for u, _ in pairs], [w for _, w in pairs]
    expected = np.average(np.stack(updates), axis=0, weights=weights)
    np.testing.assert_allclose(aggregate(updates, weights), expected, atol=1e-9)
    np.testing.assert_allclose(aggregate(updates[::-1], weights[::-1]), expected, atol=1e-9)  # order-free
    total = sum(w * u for u, w in zip(updates, weights))
    np.testing.assert_allclose(aggregate_sum(total, sum(weights)), expected, atol=1e-9)  # what secagg reveals


def test_fedavg_picks_k_distinct_clients_per_round():
    strategy = FedAvg(n_clients=10, clients_per_round=3, local=LocalOptions(1, 8, 0.01), sizes=[5] * 10)
    rng = np.random.default_rng(0)
    picks = [strategy.configure_fit(r, rng) for r in range(20)]
    assert all(len(set(p)) == 3 for p in picks) and len({c for p in picks for c in p}) == 10


@pytest.mark.parametrize("mu", [0.0, 0.5])
def test_vectorised_and_loop_trainers_agree(mu):
    data = _data()
    partition = make_partition(data, kind="quantity", n_clients=4, alpha=1.0, seed=0)  # unequal sizes: masking
    torch.manual_seed(0)
    model = build_model("mlp", n_features=data.n_features, n_classes=2, hidden_units=8, is_image=False)
    layout = ParamLayout(model)
    start = layout.model_vector(model)
    clients = ClientData(data.x_train, data.y_train, partition.train_indices)
    options = LocalOptions(epochs=1, batch_size=32, learning_rate=5e-3, mu=mu)
    loop = make_trainer("loop", model, layout).train(start, [0, 1, 2, 3], clients, options, seed=0, round_index=0)
    vectorised = make_trainer("vectorised", model, layout).train(start, [0, 1, 2, 3], clients, options, 0, 0)
    np.testing.assert_allclose(vectorised, loop, atol=2e-5)
    assert np.abs(loop).max() > 1e-3  # they trained


def test_compression_sizes_and_errors():
    vector = np.random.default_rng(0).normal(size=1000)
    decoded, size = compress(vector, "topk", 0.1, np.random.default_rng(0))
    assert size == 100 * 8 and np.count_nonzero(decoded) == 100
    assert np.all(np.abs(decoded[decoded != 0]) >= np.sort(np.abs(vector))[-100] - 1e-6)
    decoded, size = compress(vector, "int8", None, np.random.default_rng(0))
    assert size == 1000 + 4 and np.max(np.abs(decoded - vector)) <= np.max(np.abs(vector)) / 127 + 1e-9
    assert parse_compression("topk:0.05") == ("topk", 0.05) and parse_compression(None) == ("none", None)


# --- config, expansion, cache keys ---------------------------------------------------------------------------
def test_federated_settings_are_refused_where_no_technique_uses_them_and_leave_other_keys_alone():
    with pytest.raises(ConfigError, match="n_clients does not apply to baseline, dp-sgd"):
        make_spec(**{**SMALL, "techniques": ("baseline", "dp-sgd"), "n_clients": 5})
    plain = expand(make_spec(**{**SMALL, "techniques": ("baseline", "dp-sgd")}))
    mixed = expand(make_spec(**{**SMALL, "techniques": ("baseline", "dp-sgd", "fedavg"), "n_clients": 5,
                                "partition": "dirichlet", "alpha": 0.1, "rounds": 7, "dropout": 0.2}))
    assert plain == [c for c in mixed if c.technique != "fedavg"] and all(not c.params for c in plain)
    assert plain[0].cache_key("f", "v") == RunConfig.from_dict(
        {k: v for k, v in plain[0].to_dict().items() if v is not None}).cache_key("f", "v")


def test_federated_defaults_and_epochs_are_rounds_times_local_epochs():
    fedavg, fedprox, dp = expand(make_spec(**{**SMALL, "techniques": ("fedavg", "fedprox", "dp-fedavg")}))
    assert (fedavg.param("n_clients"), fedavg.param("partition"), fedavg.param("rounds"), fedavg.param("local_epochs")) == (10, "iid", 2, 1)
    assert fedavg.param("mu") is None and fedprox.param("mu") == 0.01 and dp.max_grad_norm == 1.0 and dp.target_epsilon == 2.0
    config = expand(make_spec(**{**SMALL, "techniques": ("fedavg",), "rounds": 5, "local_epochs": 3}))[0]
    assert config.epochs == 15 and config.param("clients_per_round") == 10 and config.param("secure_aggregation") is False
    assert fedavg.cache_key("f", "v") != config.cache_key("f", "v")


@pytest.mark.parametrize("spec", [
    make_spec(dataset="breast-cancer", techniques=("fedavg",), n_clients=5, partition="dirichlet", alpha=0.3, rounds=3),
    make_spec(dataset="breast-cancer", techniques=("fedprox",), mu=0.1, clients_per_round=4, local_epochs=2),
    make_spec(dataset="breast-cancer", techniques=("fed-dp-sgd",), epsilons=(2.0,), compression="topk:0.2"),
    make_spec(dataset="breast-cancer", techniques=("dp-fedavg",), epsilons=(4.0,), secure_aggregation=True, dropout=0.1),
    make_spec(dataset="heart", techniques=("single-silo",), partition="natural", only_clients=("Hungary",)),
])
def test_spec_for_run_round_trips_federated_runs(spec):
    config = expand(spec)[0]
    again = spec_for_run(config, get_dataset_info(config.dataset))
    assert expand(again) == [config]
    assert spec_from_mapping(again.to_mapping()) == again


def test_single_silo_expands_to_each_hospital():
    configs = expand(make_spec(dataset="heart", techniques=("single-silo",), partition="natural"))
    assert [c.param("client") for c in configs] == HOSPITALS and all(c.param("rounds") is None for c in configs)
    with pytest.raises(ConfigError, match="No client"):
        expand(make_spec(dataset="heart", techniques=("single-silo",), partition="natural", only_clients=("Mars",)))


# --- runs and records ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def heart_records(tmp_path_factory):
    """The heart must-show at small scale: four hospitals, fed-dp-sgd at epsilon 1, 4, 8, one hospital alone,
    all data pooled, plus fedavg and client-level dp-fedavg."""
    from engine.runner.records import open_store as ResultStore

    store = ResultStore(tmp_path_factory.mktemp("fed") / "results.sqlite")
    spec = make_spec(dataset="heart", techniques=("baseline", "single-silo", "fedavg", "fed-dp-sgd", "dp-fedavg"),
                     partition="natural", epsilons=(1.0, 4.0, 8.0), epochs=4, rounds=4, batch_size=64,
                     accountant="rdp", only_clients=("Cleveland",))
    report = run_sweep(spec, store=store, device="cpu")
    assert report.failed == 0, [r["error"] for r in store.records(status="failed")]
    yield store.records()
    store.close()


def test_every_federated_record_carries_unit_clients_rounds_and_bytes(heart_records):
    federated = [r for r in heart_records if r["technique"] in ("fedavg", "fed-dp-sgd", "dp-fedavg")]
    assert len(federated) == 1 + 3 + 3
    for record in federated:
        assert record["privacy_unit"] in ("none", "record", "client")
        assert record["n_clients"] == 4 and record["rounds"] == 4 and record["partition"] == "natural"
        assert record["comm_bytes"] > 0 and record["clients_per_round"] == 4
        assert set(record["extra"]["silo_accuracy"]) == set(HOSPITALS)
        assert record["extra"]["client_names"] == HOSPITALS and len(record["extra"]["round_accuracy"]) == 4
    units = {r["technique"]: r["privacy_unit"] for r in federated}
    assert units == {"fedavg": "none", "fed-dp-sgd": "record", "dp-fedavg": "client"}
    baseline = [r for r in heart_records if r["technique"] == "baseline"]
    assert len(baseline) == 1 and baseline[0]["n_clients"] is None  # pooled data, a plain run
    alone = [r for r in heart_records if r["technique"] == "single-silo"]
    assert len(alone) == 1 and alone[0]["client"] == "Cleveland" and "own_silo_accuracy" in alone[0]["extra"]


def test_reported_epsilons_are_at_most_the_target_and_accounted(heart_records):
    for record in heart_records:
        if record["target_epsilon"] is None:
            continue
        assert record["epsilon"] <= record["target_epsilon"]
        assert record["epsilon"] == pytest.approx(epsilon_for(
            noise_multiplier=record["noise_multiplier"], sample_rate=record["sample_rate"], steps=record["steps"],
            delta=record["delta"], accountant="rdp", epsilon_scale=record["target_epsilon"]))
        if record["technique"] == "fed-dp-sgd":  # every client took the recorded steps: all at the run's epsilon
            extra = record["extra"]
            assert max(extra["client_epsilon"]) == record["epsilon"]
            assert record["steps"] == 4 * extra["steps_per_epoch"]
        else:  # dp-fedavg: one Poisson-sampled Gaussian step per round over whole clients
            assert record["steps"] == 4 and record["sample_rate"] == 1.0
            assert "4 clients" in record["extra"]["warning"]


def test_federated_runs_compose_into_the_sweep_epsilon(heart_records):
    private = [r for r in heart_records if r["epsilon"] is not None]
    composed = compose_runs(heart_records, delta=1e-5)
    assert composed.n_private == 6 and composed.epsilon > max(r["epsilon"] for r in private)
    labels = {run_mechanism(r)[0] for r in private}
    assert labels == {"subsampled Gaussian (DP-SGD)", "subsampled Gaussian (client-level, DP-FedAvg)"}


def test_plain_fedavg_bytes_are_the_float32_model_both_ways():
    config = expand(make_spec(**{**SMALL, "techniques": ("fedavg",), "n_clients": 5, "rounds": 3,
                                 "clients_per_round": 2}))[0]
    result = create_technique("fedavg").run(config, prepared_data(config), context=RunContext(device="cpu"))
    dim = result.extra["n_parameters"]
    assert result.extra["bytes_down_total"] == 3 * 2 * 4 * dim
    assert result.extra["bytes_up_total"] == 3 * 2 * (4 * dim + 8)
    assert result.extra["comm_bytes"] == result.extra["bytes_up_total"] + result.extra["bytes_down_total"]
    assert result.extra["selected_per_round"] == [2, 2, 2]
    compressed = create_technique("fedavg").run(
        expand(make_spec(**{**SMALL, "techniques": ("fedavg",), "n_clients": 5, "rounds": 3, "clients_per_round": 2,
                            "compression": "int8"}))[0], prepared_data(config), context=RunContext(device="cpu"))
    assert compressed.extra["bytes_up_total"] == 3 * 2 * (dim + 4 + 8)
    assert compressed.extra["bytes_down_total"] == result.extra["bytes_down_total"]


def test_fed_dp_sgd_counts_only_the_rounds_a_client_was_picked():
    config = expand(make_spec(**{**SMALL, "techniques": ("fed-dp-sgd",), "n_clients": 6, "rounds": 4,
                                 "clients_per_round": 2}))[0]
    result = create_technique("fed-dp-sgd").run(config, prepared_data(config), context=RunContext(device="cpu"))
    participation = result.extra["participation"]
    assert sum(participation) == 8 and result.steps == max(participation) * result.extra["steps_per_epoch"]
    assert result.epsilon <= 2.0


def test_label_skew_lowers_accuracy_and_fedprox_runs_on_the_same_partition():
    """Adult subset, 10 clients, 4 rounds (the full-size check is in test_federated_accuracy.py, slow)."""
    common = dict(dataset="adult", n_clients=10, rounds=4, train_subsample=3000, batch_size=64, seeds=(0,))
    results = {}
    for name, technique, settings_ in (("iid", "fedavg", {"partition": "iid"}),
                                       ("dirichlet", "fedavg", {"partition": "dirichlet", "alpha": 0.1}),
                                       ("fedprox", "fedprox", {"partition": "dirichlet", "alpha": 0.1, "mu": 0.1})):
        config = expand(make_spec(**common, **settings_, techniques=(technique,)))[0]
        results[name] = create_technique(technique).run(config, prepared_data(config), context=RunContext(device="cpu"))
    assert results["iid"].accuracy - results["dirichlet"].accuracy > 0.02
    assert results["dirichlet"].extra["label_skew_not_private"] > 5 * results["iid"].extra["label_skew_not_private"]
    assert results["fedprox"].extra["client_sizes"] == results["dirichlet"].extra["client_sizes"]  # same partition
    assert results["fedprox"].extra["mu"] == 0.1


# --- CLI ---------------------------------------------------------------------------------------------------
def test_cli_federated_sweep_and_records(isolated_store):
    runner = CliRunner()
    result = runner.invoke(app, ["sweep", "--dataset", "heart", "--technique", "fedavg", "--partition", "natural",
                                 "--rounds", "2", "--local-epochs", "1", "--secure-aggregation", "--dropout", "0.25",
                                 "--quiet"])
    assert result.exit_code == 0, result.output
    records = json.loads(runner.invoke(app, ["results", "--format", "json"]).output)
    (record,) = records
    assert record["secure_aggregation"] == 1 and record["dropout"] == 0.25 and record["n_clients"] == 4
    assert record["comm_bytes"] > 0 and record["extra"]["overhead_bytes"]["secure_aggregation"] > 0
    bad = runner.invoke(app, ["sweep", "--dataset", "heart", "--technique", "fedavg", "--partition", "natural",
                              "--clients", "3"])
    assert bad.exit_code == 2 and "has 4 silos" in bad.output
    assert math.isfinite(record["accuracy"])


def test_partition_view_for_the_data_page():
    from engine.federated.partitions import partition_view

    table = partition_view("heart", kind="natural")
    assert list(table["client"]) == HOSPITALS and table["n_test"].sum() == 230
    assert len(partition_view("breast-cancer", kind="dirichlet", n_clients=4, alpha=0.5)) == 4
