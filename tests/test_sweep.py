"""Sweeps: expansion, caching, failures stored without stopping, workers, interruption."""

import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from engine.config import SweepSpec
from engine.errors import ConfigError
from engine.runner.records import open_store as ResultStore
from engine_support import make_spec, expand, plan_sweep, run_sweep
from engine.techniques.base import Technique
from engine.techniques.registry import register_technique, unregister_technique
from conftest import QUICK


def test_each_technique_expands_only_over_its_axes():
    spec = make_spec(techniques=("baseline", "dp-sgd"), epsilons=(0.5, 1, 2), clipping_norms=(0.5, 1), seeds=(0, 1))
    configs = expand(spec)
    baseline = [c for c in configs if c.technique == "baseline"]
    private = [c for c in configs if c.technique == "dp-sgd"]
    assert len(baseline) == 2 and all(c.target_epsilon is None and c.max_grad_norm is None for c in baseline)
    assert all(c.delta is None and c.accountant is None for c in baseline)  # baseline keys ignore delta
    assert len(private) == 3 * 2 * 2
    assert {c.model for c in configs} == {"mlp"}
    assert expand(make_spec(dataset="mnist", techniques=("baseline",)))[0].model == "cnn"


def test_delta_must_be_below_one_over_n():
    with pytest.raises(ConfigError, match="not below 1/n = 1/342"):  # 427 training rows, 85 held out to validate
        plan_sweep(make_spec(**{**QUICK, "delta": 0.01}), None)
    with pytest.raises(ConfigError, match="not below 1/n = 1/80"):  # 100 rows, 20 held out to validate
        plan_sweep(make_spec(**{**QUICK, "delta": 0.05, "train_subsample": 100}), None)
    plan_sweep(make_spec(**{**QUICK, "techniques": ("baseline",), "delta": 0.5}), None)  # no DP run: no check


def test_model_must_fit_the_data():
    with pytest.raises(Exception, match="cnn model needs an image dataset"):
        plan_sweep(make_spec(**{**QUICK, "model": "cnn"}), None)


def test_second_identical_sweep_trains_nothing(store, quick_spec):
    first = run_sweep(quick_spec, store=store, device="cpu")
    assert (first.total, first.trained, first.cached, first.failed) == (3, 3, 0, 0)
    events = []
    started = time.perf_counter()
    second = run_sweep(quick_spec, store=store, device="cpu", on_progress=events.append)
    assert (second.trained, second.cached) == (0, 3)
    assert time.perf_counter() - started < 30  # answered from the store, not trained (generous on slow CI)
    assert [event.kind for event in events] == ["cached"] * 3
    # A wider grid reuses what overlaps and trains only the new point.
    wider = make_spec(**{**QUICK, "techniques": ("baseline", "dp-sgd"), "epsilons": (1.0, 4.0, 8.0)})
    assert run_sweep(wider, store=store, device="cpu").trained == 1


def test_records_carry_everything_needed_to_trust_and_reproduce(store, quick_spec):
    run_sweep(quick_spec, store=store, device="cpu")
    records = {r["technique"] + str(r["target_epsilon"]): r for r in store.records()}
    private = records["dp-sgd1.0"]
    for field in ("run_id", "status", "dataset", "technique", "model", "seed", "target_epsilon", "epsilon", "delta",
                  "accountant", "noise_multiplier", "max_grad_norm", "sample_rate", "batch_size", "epochs", "steps",
                  "learning_rate", "accuracy", "balanced_accuracy", "roc_auc", "train_seconds", "peak_memory_mb",
                  "device", "versions", "created_at", "config"):
        assert private[field] is not None, field
    assert private["status"] == "ok" and private["accountant"] == "rdp" and private["device"] == "cpu"
    assert 0.9 * 1.0 <= private["epsilon"] <= 1.0
    assert private["delta"] == 1e-5 < 1 / private["n_train"]
    assert private["steps"] == 2 * 6 and private["sample_rate"] == pytest.approx(1 / 6)  # 342 rows / 64 -> 6 steps
    assert private["val_accuracy"] is not None and private["trivial_accuracy"] is not None
    assert private["config"]["max_grad_norm"] == 1.0 and private["versions"]["opacus"]
    assert private["data_derived_bounds"]  # breast-cancer's bounds come from the data, and the record says so
    baseline = records["baselineNone"]
    assert baseline["epsilon"] is None and baseline["trust_model"] == "none"


class _Exploding(Technique):
    uses_epsilon = True

    def run(self, config, data, *, context, on_progress=None):
        if config.target_epsilon == 4.0:
            raise RuntimeError("boom at epsilon 4")
        from engine.techniques.baseline import Baseline

        return Baseline().run(config, data, context=context)


def test_a_failed_run_is_stored_with_its_error_and_the_sweep_goes_on(store):
    register_technique("exploding-test", _Exploding)
    try:
        spec = make_spec(**{**QUICK, "techniques": ("exploding-test",)})
        report = run_sweep(spec, store=store, device="cpu")
        assert (report.trained, report.failed) == (1, 1)
        failed = store.records(status="failed")
        assert len(failed) == 1 and "boom at epsilon 4" in failed[0]["error"]
        assert "traceback" in failed[0]["extra"]
        # A rerun retries the failure only.
        assert run_sweep(spec, store=store, device="cpu").cached == 1
    finally:
        unregister_technique("exploding-test")


def test_worker_processes_give_the_same_records(store, quick_spec, tmp_path):
    run_sweep(quick_spec, store=store, device="cpu", workers=1)
    with ResultStore(tmp_path / "parallel.sqlite") as parallel:
        report = run_sweep(quick_spec, store=parallel, device="cpu", workers=2)
        assert report.trained == 3
        serial = {r["run_id"]: r for r in store.records()}
        for record in parallel.records():
            assert record["run_id"] in serial  # same cache keys
            assert record["epsilon"] == serial[record["run_id"]]["epsilon"]
            # The baseline is a function of its seed; DP noise is secret (never the seed), so a private run's
            # accuracy agrees only within the noise's spread.
            tolerance = 0.02 if record["epsilon"] is None else 0.08
            assert record["accuracy"] == pytest.approx(serial[record["run_id"]]["accuracy"], abs=tolerance)


def test_killing_a_sweep_loses_no_finished_run(tmp_path):
    store_path = tmp_path / "killed.sqlite"
    command = [sys.executable, "-m", "engine.cli", "sweep", "--dataset", "breast-cancer", "--technique", "dp-sgd",
               "--epsilon", "0.5,1,2,4,8", "--clip", "1", "--seeds", "0,1", "--epochs", "3", "--batch-size", "32",
               "--accountant", "rdp", "--device", "cpu", "--quiet", "--store", str(store_path)]
    # Per run (batching off): these runs would all end in one batched pass (its kill: tests/test_batched_dp_sgd.py).
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               env={**os.environ, "PYTHONWARNINGS": "ignore", "FRONTIER_BATCHED_DP_SGD": "0"})
    try:
        deadline = time.time() + 120
        finished = 0
        while time.time() < deadline and process.poll() is None:
            time.sleep(0.2)
            if store_path.exists():
                with sqlite3.connect(store_path, timeout=5) as db:
                    try:
                        finished = db.execute("SELECT count(*) FROM runs WHERE status='ok'").fetchone()[0]
                    except sqlite3.OperationalError:
                        finished = 0
                if finished >= 2:
                    break
        assert process.poll() is None, "the sweep ended before it could be killed: make it longer"
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    with ResultStore(store_path) as store:
        assert store.integrity_check() == "ok"
        kept = len(store.records(status="ok"))
        assert 2 <= kept < 10
        spec = make_spec(dataset="breast-cancer", techniques=("dp-sgd",), epsilons=(0.5, 1, 2, 4, 8),
                         clipping_norms=(1.0,), seeds=(0, 1), epochs=3, batch_size=32, accountant="rdp")
        report = run_sweep(spec, store=store, device="cpu")
        assert report.cached == kept and report.trained == 10 - kept
