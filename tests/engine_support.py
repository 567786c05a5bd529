"""Short forms of the engine's entry points for tests: a spec from keywords, plans and sweeps on a store."""

from __future__ import annotations

import time
from pathlib import Path

from engine import services
from engine.config import SweepSpec
from engine.data import get_dataset_info
from engine.runner import plan as planning
from engine.runner.spec import spec_from_mapping
from engine.workspace import Workspace


def make_spec(**values) -> SweepSpec:
    """A spec from keywords, read strictly like YAML or flags (technique settings included)."""
    return spec_from_mapping(values)


def expand(spec: SweepSpec):
    n_train = planning.prepared_data(spec.dataset, spec.train_subsample, None).n_train
    return planning.expand(spec, get_dataset_info(spec.dataset), n_train)


def prepared_data(config_or_spec, uploads_dir: Path | None = None):
    """The rows a run of this config or spec trains, validates and tests on."""
    return planning.prepared_data(config_or_spec.dataset, config_or_spec.train_subsample, uploads_dir)


def plan_sweep(spec: SweepSpec, store_path: str | Path | None = None, *, uploads_dir: Path | None = None):
    """Plan against the store at `store_path` (None: no store, nothing cached), finding uploads in `uploads_dir`."""
    return planning.plan_sweep(spec, uploads_dir=uploads_dir, store=None) if store_path is None else \
        services.plan(spec, Workspace.at(store_path))


def run_sweep(spec: SweepSpec, *, store, uploads_dir: Path | None = None, workers: int = 1, device: str = "cpu",
              on_progress=None):
    """Plan and train `spec` into `store` (an open ResultStore or a path); uploads live beside the store."""
    workspace = Workspace.at(getattr(store, "path", store))
    assert uploads_dir is None or Path(uploads_dir) == workspace.uploads_dir, "uploads live beside their store"
    return services.run(services.plan(spec, workspace), workspace, workers=workers, device=device,
                        on_progress=on_progress)


def poll(condition, timeout: float, what: str, every: float = 0.1):
    """The first truthy value of `condition()` within `timeout` seconds (a wait on a condition, never a fixed sleep)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def sweep_per_run_and_batched(spec: SweepSpec, tmp_path: Path, monkeypatch) -> tuple[dict, dict]:
    """`spec` trained twice, in two stores: with FRONTIER_BATCHED_DP_SGD=0 (every run alone) and with batching on.
    The ok records of each, by run id, after checking that every run trained and both sides hold the same runs."""
    from engine.runner.records import open_store
    from engine.techniques.batched_dp_sgd import ENVIRONMENT_VARIABLE

    outcomes = {}
    for mode in ("0", "1"):
        monkeypatch.setenv(ENVIRONMENT_VARIABLE, mode)
        with open_store(tmp_path / mode / "results.sqlite") as store:
            report = run_sweep(spec, store=store)
            assert report.failed == 0 and report.trained == len(expand(spec))
            outcomes[mode] = {record["run_id"]: record for record in store.records(status="ok")}
    per_run, together = outcomes["0"], outcomes["1"]
    assert per_run.keys() == together.keys() and len(per_run) == len(expand(spec))  # same run ids (cache keys)
    return per_run, together
