"""First-sweep time estimates against the wall time of the sweep, on a fresh store: before (the old constant,
DEFAULT_ROW_EPOCH_SECONDS x rows x epochs) and after (a few real steps measured on this machine, engine.jobs.probe).
Each sweep is launched as the Sweep page does it (a detached worker, services.launch) and timed to its end.

Command: .venv/bin/python benchmarks/bench_estimate.py [--sweeps german-credit,heart,adult:2] [--batched adult]
(dataset[:epochs]; default sizing where no epochs are given; baseline + dp-sgd at epsilon 1, seed 0, PRV)

--batched DATASET: the standard grid of issue 14 (dp-sgd, epsilon {0.1, 0.5, 1, 2, 8} x C {0.5, 1, 2} x seeds
{0, 1, 2}, 10 epochs, batch 512 on adult, PRV: 45 runs the runner trains in one batched pass), estimated as the
estimate now does it (batched passes, engine.jobs.probe.probe_batched) and as it did before it knew of batching (every
run alone through Opacus: the estimate with FRONTIER_BATCHED_DP_SGD=0), against the wall time of the launched sweep
(batching on). --sweeps "" runs only that case.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from engine import services
from engine.jobs import estimate as estimating
from engine.runner.spec import spec_from_mapping
from engine.techniques import batched_dp_sgd
from engine.workspace import Workspace


def constant_estimate(plan, workspace: Workspace) -> float:
    """The estimate as it was: nothing measured, the constant for every technique."""
    measurement = estimating.measurement
    estimating.measurement = lambda *args, **kwargs: None
    try:
        return services.estimate(plan, workspace, device="cpu").seconds
    finally:
        estimating.measurement = measurement


def wall_time(plan, workspace: Workspace) -> float:
    start = time.perf_counter()
    job_id = services.launch(plan, workspace, device="cpu")
    while (status := services.job_status(job_id, workspace)).running:
        time.sleep(0.2)
    if status.state != "finished" or status.failed:
        raise RuntimeError(f"{job_id} ended {status.state}: {status.log_tail}")
    return time.perf_counter() - start


def per_run_estimate(plan, workspace: Workspace):
    """The estimate with batching switched off: every dp-sgd run alone through Opacus (as before it knew)."""
    previous = os.environ.get(batched_dp_sgd.ENVIRONMENT_VARIABLE)
    os.environ[batched_dp_sgd.ENVIRONMENT_VARIABLE] = "0"
    try:
        return services.estimate(plan, workspace, device="cpu")
    finally:
        if previous is None:
            del os.environ[batched_dp_sgd.ENVIRONMENT_VARIABLE]
        else:
            os.environ[batched_dp_sgd.ENVIRONMENT_VARIABLE] = previous


def batched_case(dataset: str, folder: str) -> None:
    workspace = Workspace.at(Path(folder) / f"batched-{dataset}" / "results.sqlite")
    workspace.folder.mkdir(parents=True)
    spec = spec_from_mapping({"dataset": dataset, "techniques": ["dp-sgd"], "epsilons": [0.1, 0.5, 1.0, 2.0, 8.0],
                              "clipping_norms": [0.5, 1.0, 2.0], "seeds": [0, 1, 2], "epochs": 10,
                              **({"batch_size": 512} if dataset == "adult" else {})})
    plan = services.plan(spec, workspace)
    before = per_run_estimate(plan, workspace)
    start = time.perf_counter()
    after = services.estimate(plan, workspace, device="cpu")
    probe = time.perf_counter() - start
    actual = wall_time(plan, workspace)
    print("| batched sweep | runs | before: every run alone (ratio) | after: batched passes (ratio) | probe | actual |")
    print("|---|---|---|---|---|---|")
    print(f"| {dataset} dp-sgd grid | {after.to_train} | {before.seconds:.1f} s ({before.seconds / actual:.2f}) | "
          f"{after.seconds:.1f} s ({after.seconds / actual:.2f}) | {probe:.1f} s | {actual:.1f} s |", flush=True)
    print(f"  before: {before.basis}\n  after: {after.basis}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sweeps", default="german-credit,heart,adult:2")
    parser.add_argument("--batched", default="", help="a dataset for the batched dp-sgd grid case ('' for none)")
    args = parser.parse_args()
    print(f"load before: {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory() as folder:
        if args.batched:
            batched_case(args.batched, folder)
        if args.sweeps:
            print("| sweep | batch × epochs (steps a run) | before: constant (ratio) | after: measured (ratio) | probe "
                  "| actual | step loops: measured / actual |")
            print("|---|---|---|---|---|---|---|")
        for sweep in filter(None, args.sweeps.split(",")):
            dataset, _, epochs = sweep.partition(":")
            workspace = Workspace.at(Path(folder) / sweep.replace(":", "-") / "results.sqlite")
            workspace.folder.mkdir(parents=True)
            spec = spec_from_mapping({"dataset": dataset, "techniques": ["baseline", "dp-sgd"], "epsilons": [1.0],
                                      "seeds": [0], **({"epochs": int(epochs)} if epochs else {})})
            plan = services.plan(spec, workspace)
            before = constant_estimate(plan, workspace)
            start = time.perf_counter()
            after = services.estimate(plan, workspace, device="cpu")
            probe = time.perf_counter() - start
            actual = wall_time(plan, workspace)
            config = plan.configs[0]
            steps = estimating.steps_and_sample_rate(plan.n_train, config.batch_size, config.epochs)[0]
            loops = sum(steps * estimating.measurement(plan, run, workspace, "cpu").seconds for run in plan.configs)
            trained = services.read_runs(workspace)["train_seconds"].sum()  # the step loops as the runs timed them
            print(f"| {dataset}{' ' + epochs + ' epochs' if epochs else ''} | {config.batch_size} × {config.epochs} "
                  f"({steps}) | {before:.1f} s ({before / actual:.2f}) | {after.seconds:.1f} s "
                  f"({after.seconds / actual:.2f}) | {probe:.1f} s | {actual:.1f} s | {loops:.1f} s / {trained:.1f} s |",
                  flush=True)
            print(f"  basis: {after.basis}", flush=True)
    print(f"load after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
