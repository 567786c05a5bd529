"""Benchmark (issue 14): the standard 45-run adult DP-SGD sweep through the engine, batched, against the Opacus
tutorial one run at a time, and against the same grid trained without privacy one model at a time.

Three sides, one process, the same prepared data and model (mlp 64; epsilon {0.1,0.5,1,2,8} x C {0.5,1,2} x seeds
{0,1,2}, batch 512, Adam lr 5e-3, PRV accountant, delta 1e-5):
- engine: services.plan + services.run into a fresh temporary store, workers=1, batching on (the default): the 45
  configurations trained in one pass (engine/techniques/batched_dp_sgd.py), noise calibrated once per epsilon;
- tutorial: bench_sweep.run_tutorial, the Opacus-tutorial loop (make_private_with_epsilon, which calibrates every
  run) one run after another, at torch's default threads as the tutorial has it (--tutorial-threads to change);
  --tutorial-seeds trains only those seeds (every grid point still) and extrapolates its
  wall time to the whole grid, labelled as such;
- non-private: the engine's baseline training (techniques/baseline.train_baseline: Adam, a shuffled DataLoader,
  validation-threshold scoring) of each of the 45 configurations, one model at a time.
Prints accuracy and epsilon per point on each side, the wall times and the ratios tutorial / engine (target >= 20)
and engine / non-private (target <= 1), and writes every figure to --out as JSON.

    .venv/bin/python benchmarks/bench_batched.py                      # the full comparison (~25 min on 2 cores)
    .venv/bin/python benchmarks/bench_batched.py --tutorial-seeds 0   # tutorial on seed 0 only, extrapolated
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench_sweep, beside this file
from bench_sweep import (COMMON, REPO_ROOT, STANDARD, cpu_seconds, load_average, machine_info,  # noqa: E402
                         run_engine, run_tutorial, silence_opacus_warnings)

SWITCH = "FRONTIER_BATCHED_DP_SGD"
DEFAULT_THREADS = __import__("torch").get_num_threads()  # torch's own default, before any side changes it


def timed(parts: dict, label: str, module, name: str) -> None:
    """Wrap module.name so that its seconds add up in parts[label]."""
    inner = getattr(module, name)

    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return inner(*args, **kwargs)
        finally:
            parts[label] = parts.get(label, 0.0) + time.perf_counter() - start

    setattr(module, name, wrapper)


def engine_side(g: dict, device: str) -> dict:
    """run_engine (bench_sweep): its wall time covers planning, calibration, the pass, scoring and the store."""
    from engine import services  # noqa: F401 - imported before the clock starts, as the CLI has it
    from engine.runner.records import open_store  # noqa: F401
    from engine.techniques import batched_dp_sgd

    os.environ.pop(SWITCH, None)  # the default: batched
    parts: dict = {}
    timed(parts, "calibration", batched_dp_sgd, "calibrated_noises")  # once per epsilon, together (then the store's cache)
    timed(parts, "epsilon", batched_dp_sgd, "epsilon_for")  # once per epsilon
    timed(parts, "scoring", batched_dp_sgd, "evaluate")  # each run's validation threshold and test metrics
    load = load_average()
    start = time.perf_counter()
    result = run_engine(g, workers=1, device=device)
    result.update(wall_seconds=time.perf_counter() - start, load_before=load, load_after=load_average(),
                  parts={label: round(seconds, 1) for label, seconds in parts.items()})
    return result


def tutorial_side(g: dict, device: str, seeds: tuple[int, ...], threads: int) -> dict:
    import torch

    # The tutorial sets no threads: torch's default (every core) is what it runs with, and on an idle 2-core machine
    # its runs were faster so (7.1 s a run against 8.2-9.1 s on one thread); on a loaded one, --tutorial-threads 1.
    torch.set_num_threads(threads or DEFAULT_THREADS)
    load = load_average()
    result = run_tutorial({**g, "seeds": seeds}, device=device)
    share = len(seeds) / len(g["seeds"])
    result.update(load_before=load, load_after=load_average(), seeds=list(seeds),
                  wall_seconds_grid=result["wall_seconds"] / share, cpu_seconds_grid=result["cpu_seconds"] / share,
                  extrapolated=share < 1)
    return result


def non_private_side(g: dict, device: str) -> dict:
    """The engine's non-private training of every configuration of the grid, one model at a time."""
    import torch

    from engine.config import SweepSpec
    from engine.runner import plan as planning
    from engine.techniques.base import RunContext
    from engine.techniques.baseline import train_baseline

    torch.set_num_threads(1)
    spec = SweepSpec(dataset=g["dataset"], techniques=("dp-sgd",), model=g["model"], epsilons=g["epsilons"],
                     clipping_norms=g["clipping_norms"], seeds=g["seeds"], epochs=g["epochs"],
                     batch_size=g["batch_size"], learning_rate=g["learning_rate"], hidden_units=g["hidden_units"],
                     delta=g["delta"], accountant=g["accountant"])
    data = planning.prepared_data(spec.dataset, None, None)
    configs = planning.plan_sweep(spec, uploads_dir=None, store=None).configs
    load = load_average()
    runs, start, cpu_start = [], time.perf_counter(), cpu_seconds()
    for config in configs:
        _, result = train_baseline(config, data, context=RunContext(device=device))
        runs.append({"target_epsilon": config.target_epsilon, "max_grad_norm": config.max_grad_norm,
                     "seed": config.seed, "accuracy": result.accuracy, "train_seconds": result.train_seconds})
    return {"wall_seconds": time.perf_counter() - start, "cpu_seconds": cpu_seconds() - cpu_start, "runs": runs,
            "load_before": load, "load_after": load_average()}


def per_point(runs: list[dict], key: str) -> dict:
    points: dict = {}
    for run in runs:
        if run.get("status", "ok") == "ok":
            points.setdefault((run["target_epsilon"], run["max_grad_norm"]), []).append(run[key])
    return points


def _mean_sd(values: list[float] | None) -> str:
    if not values:
        return "-"
    return f"{statistics.fmean(values):.4f}" + (f" ±{statistics.stdev(values):.4f}" if len(values) > 1 else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=STANDARD["epochs"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--tutorial-seeds", default=None,
                        help="comma-separated seeds the tutorial side trains (default: all; fewer: extrapolated)")
    parser.add_argument("--skip-tutorial", action="store_true", help="engine and non-private sides only")
    parser.add_argument("--tutorial-threads", type=int, default=0,
                        help="torch threads of the tutorial side (default 0: torch's default, as the tutorial runs)")
    parser.add_argument("--out", default=str(REPO_ROOT / "benchmarks" / "out" / "batched.json"))
    args = parser.parse_args()
    silence_opacus_warnings()
    from engine.data import load_dataset

    g = {**COMMON, **STANDARD, "epochs": args.epochs}
    load_dataset(g["dataset"])  # prepared once, before any clock starts
    seeds = tuple(int(s) for s in args.tutorial_seeds.split(",")) if args.tutorial_seeds else g["seeds"]
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    print(f"grid: {len(g['epsilons']) * len(g['clipping_norms']) * len(g['seeds'])} runs, adult mlp 64, batch "
          f"{g['batch_size']}, {g['epochs']} epochs, {g['accountant']}; {started}; load {load_average()}", flush=True)
    engine = engine_side(g, args.device)
    print(f"engine (batched): {engine['wall_seconds']:.1f} s wall", flush=True)
    # next, at the load of the engine's
    tutorial = None if args.skip_tutorial else tutorial_side(g, args.device, seeds, args.tutorial_threads)
    plain = non_private_side(g, args.device)
    print(f"non-private, one at a time: {plain['wall_seconds']:.1f} s wall", flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"engine": engine, "tutorial": tutorial, "non_private": plain}))  # kept at once

    accuracy_engine, epsilon_engine = per_point(engine["runs"], "accuracy"), per_point(engine["runs"], "epsilon")
    accuracy_plain = per_point(plain["runs"], "accuracy")
    accuracy_tutorial = per_point(tutorial["runs"], "accuracy") if tutorial else {}
    epsilon_tutorial = per_point(tutorial["runs"], "epsilon") if tutorial else {}
    print(f"\n{'eps':>5} {'C':>4} | {'engine acc':>16} {'tutorial acc':>16} {'non-private acc':>16} | "
          f"{'engine eps':>10} {'tutorial eps':>12}")
    rows = []
    for point in sorted(accuracy_engine):
        rows.append({"target_epsilon": point[0], "max_grad_norm": point[1],
                     "accuracy_engine": accuracy_engine.get(point), "accuracy_tutorial": accuracy_tutorial.get(point),
                     "accuracy_non_private": accuracy_plain.get(point), "epsilon_engine": epsilon_engine.get(point),
                     "epsilon_tutorial": epsilon_tutorial.get(point)})
        eps_e = max(epsilon_engine.get(point) or [float("nan")])
        eps_t = max(epsilon_tutorial.get(point) or [float("nan")])
        print(f"{point[0]:>5g} {point[1]:>4g} | {_mean_sd(accuracy_engine.get(point)):>16} "
              f"{_mean_sd(accuracy_tutorial.get(point)):>16} {_mean_sd(accuracy_plain.get(point)):>16} | "
              f"{eps_e:>10.4f} {eps_t:>12.4f}")
    train_engine = sum(r["train_seconds"] or 0 for r in engine["runs"] if r["status"] == "ok")  # shares of the pass
    train_plain = sum(r["train_seconds"] for r in plain["runs"])
    print(f"\nengine, batched, 1 process: {engine['wall_seconds']:.1f} s wall, {engine['cpu_seconds']:.1f} s CPU "
          f"({train_engine:.1f} s of it training, {engine['failed']} failed); load {engine['load_before']} -> "
          f"{engine['load_after']}")
    print("  of which, seconds: " + ", ".join(f"{label} {seconds}" for label, seconds in engine["parts"].items()))
    print(f"non-private, one model at a time: {plain['wall_seconds']:.1f} s wall, {plain['cpu_seconds']:.1f} s CPU "
          f"({train_plain:.1f} s training); load {plain['load_before']} -> {plain['load_after']}")
    ratios = {"engine_over_non_private_wall": engine["wall_seconds"] / plain["wall_seconds"],
              "engine_over_non_private_cpu": engine["cpu_seconds"] / plain["cpu_seconds"],
              "engine_over_non_private_training": train_engine / train_plain}
    print(f"private batched / non-private: {ratios['engine_over_non_private_wall']:.2f} wall, "
          f"{ratios['engine_over_non_private_cpu']:.2f} CPU, {ratios['engine_over_non_private_training']:.2f} training "
          "(target <= 1)")
    if tutorial:
        label = (f"seeds {list(seeds)} of {list(g['seeds'])}: {tutorial['wall_seconds']:.1f} s measured, "
                 f"{tutorial['wall_seconds_grid']:.1f} s extrapolated to the grid" if tutorial["extrapolated"]
                 else f"{tutorial['wall_seconds']:.1f} s")
        train_tutorial = sum(r["train_seconds"] for r in tutorial["runs"] if r["status"] == "ok") / (
            tutorial["wall_seconds"] / tutorial["wall_seconds_grid"])
        ratios.update(tutorial_over_engine_wall=tutorial["wall_seconds_grid"] / engine["wall_seconds"],
                      tutorial_over_engine_cpu=tutorial["cpu_seconds_grid"] / engine["cpu_seconds"],
                      tutorial_over_engine_training=train_tutorial / train_engine)
        print(f"Opacus tutorial, one run at a time: {label}; {tutorial['cpu_seconds_grid']:.1f} s CPU, "
              f"{train_tutorial:.1f} s training (grid); load {tutorial['load_before']} -> {tutorial['load_after']}")
        print(f"tutorial / engine: {ratios['tutorial_over_engine_wall']:.1f}x wall, "
              f"{ratios['tutorial_over_engine_cpu']:.1f}x CPU, {ratios['tutorial_over_engine_training']:.1f}x training "
              "(target >= 20)" + (" (tutorial side extrapolated)" if tutorial["extrapolated"] else ""))
    Path(args.out).write_text(json.dumps({
        "benchmark": "bench_batched", "started_at": started, "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": machine_info(args.device), "grid": {k: list(v) if isinstance(v, tuple) else v for k, v in g.items()},
        "engine": engine, "tutorial": tutorial, "non_private": plain, "points": rows, "ratios": ratios}, indent=1))
    print(f"figures written to {args.out}")


if __name__ == "__main__":
    main()
