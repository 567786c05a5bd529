"""Techniques, each registered by name behind one contract (base.Technique -> base.RunResult)."""

from engine.techniques.base import RunContext, RunResult, Technique
from engine.techniques.registry import (
    create_technique,
    get_technique_class,
    register_technique,
    technique_names,
    unregister_technique,
)

# Importing the modules registers the built-in techniques.
from engine.techniques import baseline as _baseline  # noqa: E402,F401
from engine.techniques import dp_sgd as _dp_sgd  # noqa: E402,F401
from engine.techniques import he_inference as _he_inference  # noqa: E402,F401
from engine.techniques import federated as _federated  # noqa: E402,F401
from engine.techniques import diffprivlib_models as _diffprivlib_models  # noqa: E402,F401
from engine.techniques import local_dp as _local_dp  # noqa: E402,F401

__all__ = [
    "RunContext", "RunResult", "Technique", "create_technique", "get_technique_class",
    "register_technique", "technique_names", "unregister_technique",
]
