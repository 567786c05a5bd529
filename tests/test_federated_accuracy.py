"""The federated must-shows at full scale (slow: minutes). Run with `pytest -m slow tests/test_federated_accuracy.py`.
Small-scale versions of the same properties run in the default suite (tests/test_federated.py)."""

import pytest

from engine.config import SweepSpec
from engine_support import make_spec, expand, prepared_data, run_sweep
from engine.techniques.base import RunContext
from engine.techniques.registry import create_technique

pytestmark = pytest.mark.slow
ADULT = dict(dataset="adult", n_clients=10, rounds=10, local_epochs=2, batch_size=512, seeds=(0,))


def _run(technique, **settings):
    config = expand(make_spec(techniques=(technique,), **settings))[0]
    return create_technique(technique).run(config, prepared_data(config), context=RunContext(device="cpu"))


def test_adult_iid_fedavg_is_within_one_point_of_the_centralised_baseline():
    baseline = _run("baseline", dataset="adult", epochs=10, batch_size=512, seeds=(0,))
    fedavg = _run("fedavg", partition="iid", **ADULT)
    assert abs(fedavg.accuracy - baseline.accuracy) <= 0.01, (fedavg.accuracy, baseline.accuracy)


def test_adult_dirichlet_alpha_01_lowers_accuracy_and_fedprox_runs_on_the_same_partition():
    iid = _run("fedavg", partition="iid", **ADULT)
    skewed = _run("fedavg", partition="dirichlet", alpha=0.1, **ADULT)
    prox = _run("fedprox", partition="dirichlet", alpha=0.1, mu=0.1, **ADULT)
    assert iid.accuracy - skewed.accuracy > 0.01, (iid.accuracy, skewed.accuracy)
    assert prox.extra["client_sizes"] == skewed.extra["client_sizes"]
    assert prox.extra["client_label_mix_not_private"] == skewed.extra["client_label_mix_not_private"]


def test_heart_four_hospitals_fed_dp_sgd_against_one_hospital_and_pooled(tmp_path):
    from engine.runner.records import open_store as ResultStore

    spec = make_spec(dataset="heart", techniques=("baseline", "single-silo", "fedavg", "fed-dp-sgd"),
                     partition="natural", epsilons=(1.0, 4.0, 8.0), epochs=20, rounds=20, batch_size=32, seeds=(0,))
    with ResultStore(tmp_path / "results.sqlite") as store:
        report = run_sweep(spec, store=store, device="cpu")
        records = store.records()
    assert report.failed == 0
    private = [r for r in records if r["technique"] == "fed-dp-sgd"]
    assert sorted(r["target_epsilon"] for r in private) == [1.0, 4.0, 8.0]
    assert all(r["epsilon"] <= r["target_epsilon"] and r["privacy_unit"] == "record" and r["n_clients"] == 4
               for r in private)
    assert {r["client"] for r in records if r["technique"] == "single-silo"} == {
        "Cleveland", "Hungary", "Switzerland", "VA Long Beach"}
