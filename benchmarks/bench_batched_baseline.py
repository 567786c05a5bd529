"""Benchmark (issue 14): the non-private baseline's runs of one sweep trained one at a time vs stacked in one pass.

The grid: `baseline` on adult, mlp 64, seeds 0..8, 10 epochs, batch 512, Adam lr 5e-3 (9 runs). Each side is
services.plan + services.run into its own fresh temporary store, workers=1, in this process:
- per run: FRONTIER_BATCHED_DP_SGD=0, each run through train_baseline (its DataLoader and autograd loop), at torch's
  default threads (what a sweep with workers=1 does), and again at 1 torch thread (what each worker process of a
  sweep with workers > 1 uses: on a loaded 2-core machine, 2 OpenMP threads on these small matrices cost far more);
- batched: the default, the 9 runs in one pass (engine/techniques/batched_baseline.py; its steps take the torch
  threads that measuring shows to be faster, engine/techniques/step_threads.py).
The clock covers services.run only (training, scoring, the store); the data is prepared once by the plan before.
Prints the wall times, the ratios per-run / batched, and each run's test accuracy on both sides. The two paths
compute the same training: the weights agree to ~1e-6 for the first epochs, then float-rounding differences flip
ReLU masks and grow, as a 2^-22 nudge of the inputs does to the per-run path itself, so the accuracies agree within
seed noise, not digit for digit (logreg stays within 1e-7 after 10 epochs).

    .venv/bin/python benchmarks/bench_batched_baseline.py [--device cpu|cuda|auto] [--out results.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root: the engine

from engine import services  # noqa: E402
from engine.runner.records import open_store  # noqa: E402
from engine.runner.spec import spec_from_mapping  # noqa: E402
from engine.techniques.batched_dp_sgd import ENVIRONMENT_VARIABLE  # noqa: E402
from engine.workspace import Workspace  # noqa: E402

GRID = dict(dataset="adult", techniques=("baseline",), model="mlp", hidden_units=64, seeds=tuple(range(9)),
            epochs=10, batch_size=512, learning_rate=5e-3)


def side(batched: bool, device: str, folder: Path, threads: int | None = None) -> dict:
    """Plan and run the grid into a fresh store under `folder` (at `threads` torch threads; None: as they are); the
    wall time of services.run and each run's record."""
    if batched:
        os.environ.pop(ENVIRONMENT_VARIABLE, None)  # the default: on
    else:
        os.environ[ENVIRONMENT_VARIABLE] = "0"
    workspace = Workspace.at(folder / "results.sqlite")
    plan = services.plan(spec_from_mapping(GRID), workspace)
    default_threads = torch.get_num_threads()
    torch.set_num_threads(threads or default_threads)
    start = time.perf_counter()
    try:
        report = services.run(plan, workspace, device=device)
    finally:
        wall = time.perf_counter() - start
        torch.set_num_threads(default_threads)
    with open_store(workspace.store_path) as store:
        records = sorted(store.records(status="ok"), key=lambda record: record["seed"])
    assert report.trained == len(GRID["seeds"]) and not report.failed, report
    return {"wall_seconds": wall, "train_seconds": sum(r["train_seconds"] for r in records),
            "runs": [{"seed": r["seed"], "accuracy": r["accuracy"], "steps": r["steps"],
                      "batched_configs": (r.get("extra") or {}).get("batched_configs")} for r in records]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    parser.add_argument("--out", type=Path, help="write every figure here as JSON")
    args = parser.parse_args()
    threads = torch.get_num_threads()
    with tempfile.TemporaryDirectory() as temporary:
        per_run = side(False, args.device, Path(temporary) / "per-run")
        one_thread = side(False, args.device, Path(temporary) / "per-run-1-thread", threads=1)
        batched = side(True, args.device, Path(temporary) / "batched")
    os.environ.pop(ENVIRONMENT_VARIABLE, None)
    ratio = per_run["wall_seconds"] / batched["wall_seconds"]
    ratio_one_thread = one_thread["wall_seconds"] / batched["wall_seconds"]
    print(f"baseline, adult mlp 64, {len(GRID['seeds'])} seeds x {GRID['epochs']} epochs, batch {GRID['batch_size']}, "
          f"device {args.device}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    print(f"{'seed':>4}  {'per-run acc':>11}  {'batched acc':>11}  {'steps':>5}")
    for alone, together in zip(per_run["runs"], batched["runs"]):
        print(f"{alone['seed']:>4}  {alone['accuracy']:>11.4f}  {together['accuracy']:>11.4f}  {together['steps']:>5}")
    gap = max(abs(a["accuracy"] - b["accuracy"]) for a, b in zip(per_run["runs"], batched["runs"]))
    print(f"largest accuracy difference: {gap:.2g}")
    print(f"per run, {threads} torch threads: {per_run['wall_seconds']:.2f} s wall "
          f"({per_run['train_seconds']:.2f} s training)")
    print(f"per run, 1 torch thread: {one_thread['wall_seconds']:.2f} s wall "
          f"({one_thread['train_seconds']:.2f} s training)")
    print(f"batched: {batched['wall_seconds']:.2f} s wall ({batched['train_seconds']:.2f} s training, "
          f"{batched['runs'][0]['batched_configs']} models in one pass)")
    print(f"ratio per-run / batched: {ratio:.2f}x ({threads} threads), {ratio_one_thread:.2f}x (1 thread)")
    if args.out:
        args.out.write_text(json.dumps({"grid": {k: list(v) if isinstance(v, tuple) else v for k, v in GRID.items()},
                                        "device": args.device, "torch_threads": threads, "per_run": per_run,
                                        "per_run_1_thread": one_thread, "batched": batched, "ratio": ratio,
                                        "ratio_1_thread": ratio_one_thread}, indent=2))


if __name__ == "__main__":
    main()
