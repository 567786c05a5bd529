"""The `he-inference` technique: the issue's must-show results, the DP-SGD hybrid, sweeps, store and CLI."""

import json

import pytest
from typer.testing import CliRunner

from engine.cli import app
from engine.config import RunConfig, SweepSpec
from engine.errors import ConfigError
from engine.he import plain_model, score_encrypted
from engine.data import get_dataset_info
from engine.runner.plan import spec_for_run
from engine.runner.records import make_record, record_columns
from engine_support import make_spec, expand, plan_sweep, prepared_data, run_sweep
from engine.techniques.base import RunContext
from engine.techniques.registry import create_technique, get_technique_class
from engine.techniques.baseline import train_baseline

REQUIRED = ("he_agreement", "he_accuracy", "he_max_abs_error", "he_ms_per_record_batched",
            "he_ms_per_record_interactive", "he_bytes_per_record", "he_context_bytes", "he_poly_modulus_degree",
            "he_security_bits")


def he_config(dataset, model, **spec):
    settings = dict(dataset=dataset, techniques=("he-inference",), model=model, epochs=2, batch_size=64,
                    accountant="rdp", epsilons=(1.0,), clipping_norms=(1.0,), seeds=(0,))
    return expand(make_spec(**{**settings, **spec}))


def run(config):
    return create_technique("he-inference").run(config, prepared_data(config), context=RunContext(device="cpu"))


@pytest.fixture(scope="module")
def adult_logreg():
    (config,) = he_config("adult", "logreg", epochs=1, batch_size=512)
    return config, run(config)


# --- must show ----------------------------------------------------------------------------------------------
def test_logreg_breast_cancer_agrees_fully_with_plaintext():
    (config,) = he_config("breast-cancer", "logreg")
    result = run(config)
    extra = result.extra
    assert extra["he_agreement"] == 1.0 and extra["he_agreement_interactive"] == 1.0
    assert result.accuracy == extra["he_accuracy"] == extra["he_plaintext_accuracy"]
    assert extra["he_max_abs_error"] < 1e-3
    assert set(REQUIRED) <= set(extra) and result.epsilon is None
    assert (extra["he_poly_modulus_degree"], extra["he_coeff_modulus_bits"], extra["he_security_bits"]) == (8192, "60,40,60", 128)
    assert extra["he_context_bytes"] < 10_000 < 1_000_000 < extra["he_context_galois_bytes"]  # no rotation keys batched
    assert extra["he_interactive_sample"] == 64


def test_logreg_adult_agrees_fully_on_every_test_record(adult_logreg):
    config, result = adult_logreg
    extra = result.extra
    assert extra["he_n_records"] == 16281 and extra["he_agreement"] == 1.0 and extra["he_agreement_interactive"] == 1.0
    assert extra["he_max_abs_error"] < 1e-3


def test_logreg_adult_batched_is_fast_and_beats_one_ciphertext_per_record(adult_logreg):
    """<= 1 ms per record end to end and >= 50x faster than one ciphertext per record, side by side. The
    machine is shared: a busy moment gets one more measurement before the test decides."""
    config, result = adult_logreg
    extra = result.extra
    if extra["he_ms_per_record_batched"] > 1.0 or extra["he_batched_speedup"] < 50:
        model, _ = train_baseline(config, prepared_data(config), context=RunContext(device="cpu"))
        extra = score_encrypted(plain_model(model), prepared_data(config).x_test, interactive_sample=64).metrics
    assert extra["he_ms_per_record_batched"] <= 1.0, extra
    assert extra["he_ms_per_record_interactive"] >= 50 * extra["he_ms_per_record_batched"], extra
    split = extra["he_ms_encrypt_batched"] + extra["he_ms_evaluate_batched"] + extra["he_ms_decrypt_batched"]
    assert split == pytest.approx(extra["he_ms_per_record_batched"])


def test_square_mlp_breast_cancer_agrees_at_least_99_percent():
    (config,) = he_config("breast-cancer", "mlp", epochs=10)
    result = run(config)
    extra = result.extra
    assert extra["he_agreement"] >= 0.99 and extra["he_agreement_interactive"] >= 0.99
    assert extra["he_relu_mlp_accuracy"] is not None and 0 <= extra["he_relu_mlp_accuracy"] <= 1
    assert extra["he_depth"] == 2 and extra["he_poly_modulus_degree"] == 8192 and extra["he_relin_keys_bytes"] > 0
    assert extra["he_served_model"].startswith("mlp-square")


# --- the hybrid: trained with DP-SGD, served encrypted ------------------------------------------------------
def test_hybrid_record_carries_training_epsilon_and_inference_cost(store):
    spec = make_spec(dataset="breast-cancer", techniques=("he-inference",), model="logreg", train_technique="dp-sgd",
                     epsilons=(1.0,), clipping_norms=(1.0,), seeds=(0,), epochs=2, batch_size=64, accountant="rdp")
    report = run_sweep(spec, store=store)
    assert report.trained == 1 and report.failed == 0
    (record,) = store.records()
    assert record["train_technique"] == "dp-sgd" and record["trust_model"] == "central"
    assert record["privacy_unit"] == "record" and "training data" in record["protects"]
    assert record["epsilon"] <= record["target_epsilon"] == 1.0 and record["noise_multiplier"] > 0
    assert record["accountant"] == "rdp" and record["delta"] == 1e-5
    for column in REQUIRED:  # promoted to their own columns
        assert column in {c.name for c in record_columns()} and record[column] is not None, column
    assert record["he_agreement"] == 1.0


def test_baseline_trained_record_says_what_it_protects(store):
    (config,) = he_config("breast-cancer", "logreg", epochs=1)
    data = prepared_data(config)
    record = make_record("id", config, data, run(config), "cpu", set(store.column_names()))
    store.write(record)
    stored = store.get("id")
    assert stored["trust_model"] == "none" and stored["epsilon"] is None and stored["train_technique"] == "baseline"
    assert "record being scored" in stored["protects"] and "not the training data" in stored["protects"]
    assert stored["he_context_bytes"] > 0 and stored["he_bytes_per_record"] > 0


# --- sweeps ---------------------------------------------------------------------------------------------------
def test_expansion_follows_the_train_technique():
    spec = dict(dataset="breast-cancer", model="logreg", epsilons=(1.0, 2.0), clipping_norms=(0.5, 1.0), seeds=(0,))
    plain = expand(make_spec(techniques=("he-inference", "baseline"), **spec))
    assert [(c.technique, c.target_epsilon, c.param("train_technique")) for c in plain] == [
        ("he-inference", None, "baseline"), ("baseline", None, None)]
    hybrid = expand(make_spec(techniques=("he-inference", "dp-sgd"), train_technique="dp-sgd", **spec))
    he_runs = [c for c in hybrid if c.technique == "he-inference"]
    assert len(he_runs) == 4 and {c.param("train_technique") for c in he_runs} == {"dp-sgd"}
    assert all(c.delta == 1e-5 and c.accountant == "prv" for c in he_runs)
    assert all(c.param("train_technique") is None for c in hybrid if c.technique == "dp-sgd")  # other keys unchanged
    assert get_technique_class("he-inference").trust_model_for(he_runs[0]) == "central"
    info = get_dataset_info("breast-cancer")
    assert spec_for_run(he_runs[0], info).option("train_technique") == "dp-sgd"
    assert expand(spec_for_run(he_runs[0], info)) == [he_runs[0]]


def test_cache_keys_of_other_techniques_are_unchanged_by_the_new_field():
    config = RunConfig(dataset="adult", technique="baseline", model="mlp", seed=0, epochs=10, batch_size=512,
                       learning_rate=5e-3, hidden_units=64)
    assert "train_technique" not in json.dumps({k: v for k, v in config.to_dict().items() if v is not None})
    assert config.cache_key("f", "v") == RunConfig.from_dict({**config.to_dict(), "train_technique": None}).cache_key("f", "v")


def test_models_and_train_techniques_it_cannot_serve_are_refused():
    with pytest.raises(ConfigError, match="Unknown train_technique 'fedavg'"):
        make_spec(techniques=("he-inference",), train_technique="fedavg")
    (config,) = he_config("breast-cancer", "logreg")
    cnn = RunConfig.from_dict({**config.to_dict(), "model": "cnn"})
    with pytest.raises(ConfigError, match="choose logreg or mlp"):
        create_technique("he-inference").check(cnn, prepared_data(config))
    with pytest.raises(ConfigError, match="choose logreg or mlp"):
        plan_sweep(make_spec(dataset="mnist", techniques=("he-inference",), seeds=(0,)), None)


# --- command line ---------------------------------------------------------------------------------------------
def test_cli_sweep_with_train_technique(isolated_store):
    runner = CliRunner()
    args = ["sweep", "--dataset", "breast-cancer", "--technique", "he-inference", "--model", "logreg", "--epochs", "1",
            "--batch-size", "64", "--accountant", "rdp", "--device", "cpu", "--quiet"]
    first = runner.invoke(app, [*args, "--train-technique", "dp-sgd", "--epsilon", "2"])
    assert first.exit_code == 0, first.output
    records = json.loads(runner.invoke(app, ["results", "--format", "json"]).output)
    assert len(records) == 1 and records[0]["train_technique"] == "dp-sgd" and records[0]["epsilon"] <= 2.0
    assert records[0]["he_agreement"] == 1.0 and records[0]["he_security_bits"] == 128
    bad = runner.invoke(app, [*args, "--train-technique", "local-dp"])
    assert bad.exit_code == 2 and "Unknown --train-technique" in bad.output


def test_dashboard_view_has_one_row_per_configuration(store):
    from engine.analysis.encrypted_inference import HE_MEASURES, he_view

    spec = make_spec(dataset="breast-cancer", techniques=("he-inference", "baseline"), model="logreg", seeds=(0, 1),
                     epochs=1, batch_size=64)
    run_sweep(spec, store=store)
    view = he_view(store.dataframe(), "breast-cancer")
    assert len(view) == 1 and view["seeds"].iloc[0] == 2 and view["train_technique"].iloc[0] == "baseline"
    assert set(HE_MEASURES) <= set(view.columns) and view["he_ms_per_record_batched"].iloc[0] > 0
    assert "record being scored" in view["protects"].iloc[0]
    assert he_view(store.dataframe(), "adult").empty
