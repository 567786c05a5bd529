"""Shared fixtures. Every test gets its own result store: nothing is written to ./.frontier."""

from __future__ import annotations

import warnings

import pytest

from engine.config import SweepSpec
from engine.runner.records import open_store as ResultStore

# Fast, real settings: a small real dataset, RDP calibration (sub-second), few epochs.
QUICK = dict(dataset="breast-cancer", epochs=2, batch_size=64, accountant="rdp", epsilons=(1.0, 4.0),
             clipping_norms=(1.0,), seeds=(0,))


@pytest.fixture(autouse=True)
def isolated_store(tmp_path, monkeypatch):
    path = tmp_path / "store" / "results.sqlite"
    monkeypatch.setenv("FRONTIER_STORE", str(path))
    return path


@pytest.fixture
def store(isolated_store):
    with ResultStore(isolated_store) as opened:
        yield opened


@pytest.fixture
def quick_spec() -> SweepSpec:
    return SweepSpec(techniques=("baseline", "dp-sgd"), **QUICK)


@pytest.fixture(autouse=True)
def _quiet_opacus():
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Secure RNG turned off")
        warnings.filterwarnings("ignore", message="Full backward hook is firing")
        yield
