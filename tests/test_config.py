import math

import pytest

from engine.config import RunConfig, SweepSpec
from engine.errors import ConfigError
from engine.runner.spec import all_settings, spec_from_mapping


@pytest.mark.parametrize("bad, message", [
    (dict(epsilons=(-1.0,)), "epsilons must be > 0"),
    (dict(epsilons=(0.0,)), "epsilons must be > 0"),
    (dict(epsilons=(math.nan,)), "epsilons must be a finite number"),
    (dict(clipping_norms=(0.0,)), "clipping_norms must be > 0"),
    (dict(delta=1.0), "delta must be > 0 and < 1"),
    (dict(accountant="gdp"), "Unknown accountant 'gdp'"),
    (dict(model="resnet"), "Unknown model"),
    (dict(epochs=0), "epochs must be >= 1"),
    (dict(seeds=()), "seeds is empty"),
    (dict(techniques=()), "techniques is empty"),
])
def test_invalid_specs_say_how_to_fix(bad, message):
    with pytest.raises(ConfigError, match=message):
        SweepSpec(**bad).validate()
    with pytest.raises(ConfigError, match=message):
        spec_from_mapping(bad)


@pytest.mark.parametrize("values, message", [
    ({"techniques": ["fedavg"], "secure_aggregation": "no"}, "secure_aggregation must be true or false.*quoted"),
    ({"batch_size": True}, "batch_size must be a whole number, got True"),
    ({"epochs": 2.7}, "epochs must be a whole number, got 2.7"),
    ({"epsilons": ["one"]}, "epsilons must be a number"),
    ({"dataset": ["a", "b"]}, "dataset must be text"),
    ({"techniques": ["dp-sgd"], "rounds": 3}, "rounds does not apply to dp-sgd: it is a setting of dp-fedavg"),
    ({"techniques": ["fedavg"], "mu": 0.1}, "mu does not apply to fedavg: it is a setting of fedprox"),
    ({"techniques": ["fedavg"], "partition": "iid", "alpha": 0.1}, "alpha applies to partition dirichlet"),
    ({"techniques": ["fedavg"], "compression": "int8", "secure_aggregation": True}, "does not combine"),
    ({"techniques": ["fedavg"], "dropout": 1.0}, "dropout must be >= 0 and < 1"),
    ({"epsilom": [1]}, "Unknown sweep setting.*epsilom"),
])
def test_wrong_types_and_settings_that_do_not_apply_are_errors_not_coercions(values, message):
    with pytest.raises(ConfigError, match=message):
        spec_from_mapping(values)


def test_mapping_round_trip_with_technique_options():
    spec = spec_from_mapping({"dataset": "heart", "techniques": ["fedavg", "fedprox"], "epsilons": [0.5, 2],
                              "seeds": [0, 1], "partition": "natural", "mu": 0.1, "secure_aggregation": True})
    assert spec.option("mu") == 0.1 and spec.option("secure_aggregation") is True
    assert spec_from_mapping(spec.to_mapping()) == spec
    assert spec_from_mapping({"epsilons": 2, "seeds": [0, 1.0]}).epsilons == (2.0,)  # a scalar is a one-value list


def test_every_setting_has_one_declaration_with_a_flag_and_help():
    settings = all_settings()
    assert {"epsilons", "n_clients", "mu", "train_technique", "only_clients"} <= set(settings)
    assert settings["n_clients"].cli_flag == "--clients" and settings["epsilons"].cli_flag == "--epsilon"
    assert all(declared.help for declared in settings.values())
    assert len({declared.cli_flag for declared in settings.values()}) == len(settings)


def test_text_is_parsed_by_the_declaration():
    settings = all_settings()
    assert settings["epsilons"].parse_text("0.5, 1,2") == (0.5, 1.0, 2.0)
    with pytest.raises(ConfigError, match="epsilons must be comma-separated numbers"):
        settings["epsilons"].parse_text("a,b")
    with pytest.raises(ConfigError, match="hidden_units must be whole numbers"):
        settings["hidden_units"].parse_text("2.5")
    with pytest.raises(ConfigError, match="epochs must be comma-separated whole numbers"):  # a training axis
        settings["epochs"].parse_text("2.5")
    assert settings["epochs"].parse_text("20") == (20,) and settings["learning_rate"].parse_text("1e-3,0.01") == (
        0.001, 0.01)


def test_cache_key_covers_config_data_and_engine_version():
    config = RunConfig(dataset="adult", technique="dp-sgd", model="mlp", seed=0, epochs=10, batch_size=512,
                       learning_rate=5e-3, hidden_units=64, target_epsilon=1.0, max_grad_norm=1.0, delta=1e-5,
                       accountant="prv")
    key = config.cache_key("data-a", "1")
    assert key == config.cache_key("data-a", "1")
    assert len({key, config.cache_key("data-b", "1"), config.cache_key("data-a", "2"),
                RunConfig.from_dict({**config.to_dict(), "seed": 1}).cache_key("data-a", "1")}) == 4
    # The point key ignores the seed only.
    assert config.point_key("d", "1") == RunConfig.from_dict({**config.to_dict(), "seed": 7}).point_key("d", "1")
    assert config.point_key("d", "1") != RunConfig.from_dict({**config.to_dict(), "hidden_units": 4}).point_key("d", "1")


def test_technique_params_round_trip_through_a_record():
    config = RunConfig(dataset="heart", technique="fedavg", model="mlp", seed=0, epochs=4, batch_size=32,
                       learning_rate=5e-3, hidden_units=64, params=(("partition", "natural"), ("rounds", 4)))
    flat = config.to_dict()
    assert flat["rounds"] == 4 and "params" not in flat
    assert RunConfig.from_dict(flat) == config
