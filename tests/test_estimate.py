"""A sweep's time estimate (engine.jobs.estimate): from the store's runs like it when there are some, else from a
short measurement on this machine (engine.jobs.probe) kept in the workspace (engine.jobs.timings), else a default.
DP-SGD runs the runner trains together (batched DP-SGD, on by default) are estimated as the runner's batched passes.

Nothing here asserts a duration: only the estimate's structure and its own arithmetic, and the ratio of a batched
estimate to the wall time of running that very plan, both measured in the same test.
"""

from __future__ import annotations

import json
import time

import pytest

from engine import services
from engine.jobs import estimate as estimating
from engine.jobs import probe as probing
from engine.jobs.probe import Measurement
from engine.jobs.timings import timings_path
from engine.runner.records import open_store as ResultStore
from engine.techniques import batched_dp_sgd
from engine.workspace import Workspace
from engine_support import make_spec, run_sweep
from conftest import QUICK

STEP = Measurement(kind="step", seconds=0.01, steps_timed=40, overhead_seconds=0.25)


@pytest.fixture
def workspace(isolated_store) -> Workspace:
    return Workspace.at(isolated_store)


@pytest.fixture
def probes(monkeypatch) -> list:
    """Counts the probes the estimate starts (each still measures for real): a technique's name, with " batched"
    for a batched DP-SGD pass."""
    calls = []

    def counted(config, data, device):
        calls.append(config.technique)
        return probing.probe(config, data, device)

    def counted_batched(configs, data, device):
        calls.append(f"{configs[0].technique} batched")
        return probing.probe_batched(configs, data, device)

    monkeypatch.setattr(estimating, "probe", counted)
    monkeypatch.setattr(estimating, "probe_batched", counted_batched)
    return calls


@pytest.fixture
def per_run(monkeypatch) -> None:
    """Batched DP-SGD switched off: every dp-sgd run trains (and is estimated) alone."""
    monkeypatch.setenv(batched_dp_sgd.ENVIRONMENT_VARIABLE, "0")


def _fixed(monkeypatch, measurement: Measurement | Exception) -> list:
    """Replaces the probe with one that answers `measurement` (or raises it), counting its calls."""
    calls = []

    def fake(config, data, device):  # noqa: ARG001
        calls.append(config.technique)
        if isinstance(measurement, Exception):
            raise measurement
        return measurement

    monkeypatch.setattr(estimating, "probe", fake)
    return calls


def _estimate(workspace: Workspace, **spec):
    return services.estimate(services.plan(make_spec(**{**QUICK, **spec}), workspace), workspace, device="cpu")


def test_without_stored_runs_the_estimate_is_measured_once_and_kept(workspace, probes, per_run):
    workspace.folder.mkdir(parents=True)
    first = _estimate(workspace, techniques=("baseline", "dp-sgd"))
    assert probes == ["baseline", "dp-sgd"]  # one probe per technique, on its first pending configuration
    assert first.to_train == 3 and first.seconds > estimating.STARTUP_SECONDS
    assert first.basis.count("measured on this machine") == 2 and "ms a step (" in first.basis
    assert "steps timed" in first.basis and "default" not in first.basis
    kept = json.loads(timings_path(workspace).read_text())
    assert {json.loads(key)["technique"] for key in kept} == {"baseline", "dp-sgd"}
    assert all(value["kind"] == "step" and value["seconds"] > 0 and value["steps_timed"] >= probing.PROBE_STEPS_PER_EPOCH
               for value in kept.values())
    assert not workspace.store_path.exists()  # the timings file sits beside the store; the store is not created

    again = _estimate(workspace, techniques=("baseline", "dp-sgd"))
    assert probes == ["baseline", "dp-sgd"]  # the Sweep page's reruns measure nothing again
    assert (again.seconds, again.basis) == (first.seconds, first.basis)


def test_the_estimate_is_steps_times_the_measured_step(workspace, monkeypatch):
    calls = _fixed(monkeypatch, STEP)
    short = _estimate(workspace, techniques=("baseline",), epochs=2)
    long = _estimate(workspace, techniques=("baseline",), epochs=4)
    assert calls == ["baseline"]  # epochs are not part of what a step costs: one measurement serves both
    plan = services.plan(make_spec(**{**QUICK, "techniques": ("baseline",), "epochs": 2}), workspace)
    steps = estimating.steps_and_sample_rate(plan.n_train, 64, 2)[0]
    training = short.seconds - estimating.STARTUP_SECONDS - STEP.overhead_seconds
    assert training == pytest.approx(steps * STEP.seconds)
    assert long.seconds - estimating.STARTUP_SECONDS - STEP.overhead_seconds == pytest.approx(2 * training)
    assert f"10 ms a step (40 steps timed) × {steps:,} steps" in short.basis


def test_a_real_measurement_scales_with_the_epochs(workspace, probes, per_run):
    short = _estimate(workspace, techniques=("dp-sgd",), epsilons=(1.0,), epochs=2)
    long = _estimate(workspace, techniques=("dp-sgd",), epsilons=(1.0,), epochs=4)
    assert probes == ["dp-sgd"]
    fixed = estimating.STARTUP_SECONDS + estimating.CALIBRATION_SECONDS["rdp"]  # one new noise level each
    plan = services.plan(make_spec(**{**QUICK, "techniques": ("dp-sgd",), "epsilons": (1.0,)}), workspace)
    per_run_besides = estimating.measurement(plan, plan.configs[0], workspace, "cpu").overhead_seconds  # kept
    assert probes == ["dp-sgd"] and per_run_besides >= 0
    assert (long.seconds - fixed - per_run_besides) == pytest.approx(2 * (short.seconds - fixed - per_run_besides))


def test_looking_writes_nothing_and_still_measures_once(workspace, probes):
    first = _estimate(workspace, techniques=("baseline",))
    _estimate(workspace, techniques=("baseline",))
    assert probes == ["baseline"] and "measured on this machine" in first.basis
    assert not workspace.folder.exists()  # kept in this process until the workspace exists


def test_stored_runs_come_before_a_measurement(workspace, monkeypatch, per_run):
    calls = _fixed(monkeypatch, STEP)
    with ResultStore(workspace.store_path) as store:
        run_sweep(make_spec(techniques=("baseline",), **QUICK), store=store)
    estimate = _estimate(workspace, techniques=("baseline", "dp-sgd"), seeds=(0, 1))
    assert calls == ["dp-sgd"]  # the baseline's time comes from its stored run
    assert "baseline" in estimate.basis and "mean of 1 stored run" in estimate.basis
    assert "dp-sgd" in estimate.basis and "measured on this machine" in estimate.basis


def test_a_failed_measurement_falls_back_to_the_default_and_says_so(workspace, monkeypatch):
    _fixed(monkeypatch, RuntimeError("no"))
    estimate = _estimate(workspace, techniques=("baseline",))
    assert "a default for" in estimate.basis and "measuring it here failed (RuntimeError)" in estimate.basis
    assert estimate.seconds > estimating.STARTUP_SECONDS


def test_a_one_go_technique_is_timed_over_one_real_run(workspace, probes):
    estimate = _estimate(workspace, techniques=("dp-logreg",), epsilons=(1.0, 4.0))
    assert probes == ["dp-logreg"] and "measured on this machine: one run timed" in estimate.basis


def test_a_technique_the_probe_does_not_train_keeps_the_default(workspace, probes):
    assert probing.probe_kind("fedavg") is None
    estimate = _estimate(workspace, techniques=("fedavg",))
    assert probes == [] and "a default for" in estimate.basis and "not measured before a sweep" in estimate.basis


HEART_GRID = dict(dataset="heart", techniques=("dp-sgd",), accountant="rdp", epsilons=(0.5, 1.0, 4.0),
                  clipping_norms=(0.5, 1.0, 2.0), seeds=(0, 1))  # 18 runs, the size-aware defaults (~300 steps)


def test_a_batched_sweep_is_estimated_as_its_passes_and_close_to_its_wall_time(workspace, probes):
    workspace.folder.mkdir(parents=True)
    plan = services.plan(make_spec(**HEART_GRID), workspace)
    batched = services.estimate(plan, workspace, device="cpu")
    assert probes == ["dp-sgd batched"] and batched.to_train == 18
    assert "dp-sgd 18 runs in 1 batched pass (" in batched.basis and "a step for 18 models" in batched.basis
    assert "measured on this machine" in batched.basis and "default" not in batched.basis
    kept = [json.loads(key) | value for key, value in json.loads(timings_path(workspace).read_text()).items()]
    assert [(entry["kind"], entry["batched_models"], entry["models"]) for entry in kept] == [("batched", 18, 18)]
    assert kept[0]["seconds"] > 0 and kept[0]["per_model_seconds"] >= 0 and kept[0]["overhead_seconds"] >= 0
    again = services.estimate(plan, workspace, device="cpu")
    assert probes == ["dp-sgd batched"] and (again.seconds, again.basis) == (batched.seconds, batched.basis)

    # Two worker processes on CPU: the runner cuts the group in two, so two passes of 9 (measured at 9).
    spread = services.estimate(plan, workspace, workers=2, device="cpu")
    assert "18 runs in 2 batched passes" in spread.basis and "a step for 9 models" in spread.basis
    assert "2 worker processes at once" in spread.basis

    start = time.perf_counter()
    report = services.run(plan, workspace, device="cpu")  # this process: no fresh worker to start
    wall = time.perf_counter() - start
    assert report.trained == 18 and not report.failed
    with ResultStore(workspace.store_path) as store:  # it did train as one pass
        assert {record["extra"]["batched_configs"] for record in store.records(status="ok")} == {18}
    ratio = (batched.seconds - estimating.STARTUP_SECONDS) / wall
    assert 0.3 < ratio < 3, (ratio, wall, batched.basis)


def test_with_batching_off_the_same_grid_is_estimated_run_by_run_and_much_longer(workspace, probes, monkeypatch):
    plan = services.plan(make_spec(**HEART_GRID), workspace)
    batched = services.estimate(plan, workspace, device="cpu")
    monkeypatch.setenv(batched_dp_sgd.ENVIRONMENT_VARIABLE, "0")
    alone = services.estimate(plan, workspace, device="cpu")
    assert probes == ["dp-sgd batched", "dp-sgd"]
    assert "batched" not in alone.basis and "ms a step (" in alone.basis
    training = [estimate.seconds - estimating.STARTUP_SECONDS - 3 * estimating.CALIBRATION_SECONDS["rdp"]
                for estimate in (batched, alone)]
    assert training[1] > 4 * training[0], (training, batched.basis, alone.basis)


def test_a_batched_pass_costs_its_steps_times_a_step_of_its_models(workspace, monkeypatch):
    measured = Measurement(kind="batched", seconds=0.02, steps_timed=30, overhead_seconds=0.01, models=10,
                           per_model_seconds=0.001)
    calls = []
    monkeypatch.setattr(estimating, "probe_batched", lambda configs, data, device: calls.append(len(configs)) or measured)
    plan = services.plan(make_spec(**HEART_GRID), workspace)
    estimate = services.estimate(plan, workspace, device="cpu")
    assert calls == [18]
    steps = estimating.steps_and_sample_rate(plan.n_train, plan.configs[0].batch_size, plan.configs[0].epochs)[0]
    step = 0.02 + (18 - 10) * 0.001  # the measured step moved along the per-model cost to 18 models
    training = estimate.seconds - estimating.STARTUP_SECONDS - 3 * estimating.CALIBRATION_SECONDS["rdp"]
    assert training == pytest.approx(steps * step + 18 * 0.01)
    assert f"28 ms a step for 18 models measured on this machine, 30 steps timed; × {steps:,} steps" in estimate.basis
