import pytest

from engine.errors import ConfigError
from engine.techniques.base import RunResult, Technique
from engine.techniques.registry import (create_technique, get_technique_class, register_technique, technique_names,
                                        unregister_technique)


class _Dummy(Technique):
    def run(self, config, data, *, context, on_progress=None):
        return RunResult(accuracy=1.0, balanced_accuracy=1.0, roc_auc=None, train_seconds=0.0,
                         peak_memory_mb=None, device=context.device)


def test_builtin_techniques_are_registered():
    assert {"baseline", "dp-sgd"} <= set(technique_names())
    assert get_technique_class("dp-sgd").uses_epsilon and get_technique_class("dp-sgd").uses_clipping
    assert not get_technique_class("baseline").uses_epsilon


def test_unknown_technique_names_the_choices():
    with pytest.raises(ConfigError, match="choose one of .*baseline.*dp-sgd"):
        create_technique("dp-magic")


def test_register_decorator_duplicate_and_force():
    try:
        register_technique("dummy-test")(_Dummy)
        assert isinstance(create_technique("dummy-test"), _Dummy)
        with pytest.raises(ValueError, match="already registered"):
            register_technique("dummy-test", _Dummy)
        register_technique("dummy-test", _Dummy, force=True)  # replacing on purpose is allowed
    finally:
        unregister_technique("dummy-test")
    assert "dummy-test" not in technique_names()


def test_only_technique_subclasses_register():
    with pytest.raises(TypeError):
        register_technique("not-a-technique", object)
