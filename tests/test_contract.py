"""One contract, run against every registered technique."""

import pickle

import numpy as np
import pytest

from engine.config import SweepSpec
from engine_support import make_spec, expand, prepared_data
from engine.privacy.randomness import ReplayableRandomness
from engine.techniques.base import RunContext, RunResult
from engine.techniques.registry import create_technique, technique_names
from conftest import QUICK


def _config(name):
    return expand(make_spec(**{**QUICK, "techniques": (name,), "epsilons": (2.0,)}))[0]


@pytest.mark.parametrize("name", technique_names())
def test_technique_contract(name):
    config = _config(name)
    data = prepared_data(config)
    before = (config.to_dict(), data.x_train.copy(), data.y_train.copy())
    technique = create_technique(name)
    # Replayable randomness (tests only) makes a run reproducible; the product's secret randomness does not.
    first = technique.run(config, data, context=RunContext(device="cpu", randomness=ReplayableRandomness(7)))
    second = create_technique(name).run(config, data, context=RunContext(device="cpu",
                                                                         randomness=ReplayableRandomness(7)))
    secret = create_technique(name).run(config, data, context=RunContext(device="cpu"))

    assert isinstance(first, RunResult)
    assert first.accuracy == second.accuracy and first.epsilon == second.epsilon
    assert secret.epsilon == first.epsilon  # the accounting does not depend on the draws
    assert config.to_dict() == before[0]  # config untouched
    np.testing.assert_array_equal(data.x_train, before[1])  # data untouched
    np.testing.assert_array_equal(data.y_train, before[2])
    assert 0.0 <= first.accuracy <= 1.0 and first.train_seconds >= 0 and first.device == "cpu"
    if technique.uses_epsilon:
        assert first.epsilon is not None and first.epsilon <= config.target_epsilon
    else:
        assert first.epsilon is None
    restored = pickle.loads(pickle.dumps(first))  # results cross process boundaries (workers)
    assert restored.accuracy == first.accuracy


@pytest.mark.parametrize("name", technique_names())
def test_progress_reaches_one(name):
    seen = []
    create_technique(name).run(_config(name), prepared_data(_config(name)), context=RunContext(device="cpu"),
                               on_progress=seen.append)
    assert seen and seen[-1] == 1.0 and seen == sorted(seen)
