import math

import pytest

from engine.config import RunConfig, SweepSpec, parse_number_list
from engine.errors import ConfigError


@pytest.mark.parametrize("bad, message", [
    (dict(epsilons=(-1.0,)), "epsilon must be a positive"),
    (dict(epsilons=(0.0,)), "epsilon must be a positive"),
    (dict(epsilons=(math.nan,)), "epsilon must be a positive"),
    (dict(clipping_norms=(0.0,)), "clipping norm"),
    (dict(delta=1.0), "delta"),
    (dict(accountant="gdp"), "GDP is not offered"),
    (dict(model="resnet"), "Unknown model"),
    (dict(epochs=0), "epochs"),
    (dict(seeds=()), "seed"),
    (dict(techniques=()), "technique"),
])
def test_invalid_specs_say_how_to_fix(bad, message):
    with pytest.raises(ConfigError, match=message):
        SweepSpec(**bad).validate()


def test_mapping_round_trip_and_unknown_keys():
    spec = SweepSpec(dataset="heart", epsilons=(0.5, 2.0), seeds=(0, 1))
    assert SweepSpec.from_mapping(spec.to_mapping()) == spec
    with pytest.raises(ConfigError, match="Unknown sweep setting.*epsilom"):
        SweepSpec.from_mapping({"epsilom": [1]})
    assert SweepSpec.from_mapping({"epsilons": 2, "seeds": [0, "1"]}).epsilons == (2.0,)


def test_parse_number_list():
    assert parse_number_list("0.5, 1,2", float, "--epsilon") == (0.5, 1.0, 2.0)
    with pytest.raises(ConfigError, match="--epsilon"):
        parse_number_list("a,b", float, "--epsilon")


def test_cache_key_covers_config_data_and_engine_version():
    config = RunConfig(dataset="adult", technique="dp-sgd", model="mlp", seed=0, epochs=10, batch_size=512,
                       learning_rate=5e-3, hidden_units=64, target_epsilon=1.0, max_grad_norm=1.0, delta=1e-5,
                       accountant="prv")
    key = config.cache_key("data-a", "1")
    assert key == config.cache_key("data-a", "1")
    assert len({key, config.cache_key("data-b", "1"), config.cache_key("data-a", "2"),
                RunConfig.from_dict({**config.to_dict(), "seed": 1}).cache_key("data-a", "1")}) == 4
