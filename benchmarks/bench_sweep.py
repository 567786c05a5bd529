"""Benchmark: the standard DP-SGD sweep through the engine vs the same runs trained the Opacus-tutorial way.

Part A (engine): `run_sweep` of the standard grid into a fresh temporary result store, with N worker
processes (calibrated noise multipliers cached in the store, one calibration per epsilon).

Part B (tutorial): the same configurations one after another in this process, written as the Opacus
tutorial teaches: DataLoader -> PrivacyEngine(accountant="prv").make_private_with_epsilon(...) (which
recalibrates the noise for every run) -> a plain epoch loop -> test accuracy and get_epsilon(delta).

Both use the same prepared data (engine.data.load_dataset) and the same model (engine.models.build_model).
Prints a side-by-side table, the wall times and their ratio, and writes every figure to --out as JSON.

    .venv/bin/python benchmarks/bench_sweep.py            # full grid (minutes to tens of minutes on CPU)
    .venv/bin/python benchmarks/bench_sweep.py --quick    # smoke run: eps {1, 8} x C {1} x seed {0}, 2 epochs
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
import warnings
from datetime import datetime, timezone
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # runnable as `python benchmarks/bench_sweep.py` without an install
    sys.path.insert(0, str(REPO_ROOT))

# Opacus' warnings that say nothing about the benchmark (secure_mode off; backward hook on the first layer).
NOISY_WARNINGS = ("Secure RNG turned off", "Full backward hook is firing", "Optimal order is the largest alpha")

# The standard sweep named in the issue, and the reduced grid of --quick.
STANDARD = dict(epsilons=(0.1, 0.5, 1.0, 2.0, 8.0), clipping_norms=(0.5, 1.0, 2.0), seeds=(0, 1, 2), epochs=10)
QUICK = dict(epsilons=(1.0, 8.0), clipping_norms=(1.0,), seeds=(0,), epochs=2)
COMMON = dict(dataset="adult", model="mlp", batch_size=512, learning_rate=5e-3, hidden_units=64, delta=1e-5,
              accountant="prv")


def silence_opacus_warnings() -> None:
    for message in NOISY_WARNINGS:
        warnings.filterwarnings("ignore", message=message)
    # Engine workers are spawned processes: they read filters only from the environment. (The engine filters
    # the first two itself, but not the RDP warning that PRV's epsilon computation raises at small epsilon.)
    os.environ["PYTHONWARNINGS"] = ",".join(
        filter(None, [os.environ.get("PYTHONWARNINGS"), *(f"ignore:{message}:UserWarning" for message in NOISY_WARNINGS)]))


def cpu_seconds() -> float:
    """User + system CPU time of this process and of its finished children (the engine's worker processes
    count once the sweep has shut its pool down)."""
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    return total


def load_average() -> list[float] | None:
    """1, 5 and 15 minute load averages: other work on the machine shows here (and in the timings)."""
    try:
        return [round(value, 2) for value in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def cpu_count() -> int:
    """CPU cores this process may use (its affinity mask), as the engine counts them."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def default_workers() -> int:
    return cpu_count()


def grid(quick: bool) -> dict:
    return {**COMMON, **(QUICK if quick else STANDARD)}


def machine_info(device: str) -> dict:
    import opacus
    import torch

    from engine import ENGINE_VERSION

    cpu_model = platform.processor() or ""
    try:  # lscpu's "Model name" where /proc/cpuinfo has it
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {
        "platform": platform.platform(), "python": platform.python_version(), "cpu_model": cpu_model,
        "cpu_count_usable": cpu_count(), "cpu_count_os": os.cpu_count(), "torch_threads": torch.get_num_threads(),
        "device": device, "gpu": gpu, "torch": torch.__version__, "opacus": opacus.__version__,
        "engine": ENGINE_VERSION,
    }


# --- Part A: the engine -----------------------------------------------------------------------------------
def run_engine(g: dict, *, workers: int, device: str) -> dict:
    from engine import services
    from engine.config import SweepSpec
    from engine.runner.records import open_store
    from engine.workspace import Workspace

    spec = SweepSpec(dataset=g["dataset"], techniques=("dp-sgd",), model=g["model"], epsilons=g["epsilons"],
                     clipping_norms=g["clipping_norms"], seeds=g["seeds"], epochs=g["epochs"],
                     batch_size=g["batch_size"], learning_rate=g["learning_rate"], hidden_units=g["hidden_units"],
                     delta=g["delta"], accountant=g["accountant"])

    def progress(event) -> None:
        if event.kind in ("finished", "failed", "cached"):
            c = event.config
            detail = (f"acc {event.result.accuracy:.4f}  eps {event.result.epsilon:.4f}  "
                      f"train {event.result.train_seconds:.1f}s" if event.result is not None else event.error or "")
            print(f"  [engine {event.done:>2}/{event.total}] {event.kind:<8} eps={c.target_epsilon:<4g} "
                  f"C={c.max_grad_norm:<4g} seed={c.seed}  {detail}", flush=True)

    with tempfile.TemporaryDirectory(prefix="bench-sweep-") as folder:
        workspace = Workspace.at(Path(folder) / "results.sqlite")
        with open_store(workspace.store_path) as store:
            cpu_start, start = cpu_seconds(), time.perf_counter()
            report = services.run(services.plan(spec, workspace), workspace, workers=workers, device=device,
                                  on_progress=progress)
            wall, cpu = time.perf_counter() - start, cpu_seconds() - cpu_start
            frame = store.dataframe(dataset=g["dataset"])
    if report.cached:
        raise RuntimeError("the fresh store answered runs from cache: the timing would be meaningless")
    runs = [{"target_epsilon": float(row.target_epsilon), "max_grad_norm": float(row.max_grad_norm),
             "seed": int(row.seed), "status": row.status, "error": row.error,
             "accuracy": None if row.status != "ok" else float(row.accuracy),
             "epsilon": None if row.status != "ok" else float(row.epsilon),
             "noise_multiplier": None if row.status != "ok" else float(row.noise_multiplier),
             "train_seconds": None if row.status != "ok" else float(row.train_seconds)}
            for row in frame.itertuples()]
    return {"wall_seconds": wall, "cpu_seconds": cpu, "workers": workers, "trained": report.trained,
            "failed": report.failed, "runs": runs}


# --- Part B: the Opacus tutorial, one run after another ----------------------------------------------------
def run_tutorial_once(data, *, target_epsilon: float, max_grad_norm: float, seed: int, g: dict, device: str) -> dict:
    import torch
    from opacus import PrivacyEngine
    from torch import nn
    from torch.utils.data import DataLoader, TensorDataset

    from engine.models import build_model

    start = time.perf_counter()
    torch.manual_seed(seed)
    model = build_model(g["model"], n_features=data.n_features, n_classes=data.n_classes,
                        hidden_units=g["hidden_units"], is_image=data.is_image).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=g["learning_rate"])
    train_loader = DataLoader(TensorDataset(torch.from_numpy(data.x_train), torch.from_numpy(data.y_train)),
                              batch_size=g["batch_size"])
    privacy_engine = PrivacyEngine(accountant=g["accountant"])
    model, optimizer, train_loader = privacy_engine.make_private_with_epsilon(
        module=model, optimizer=optimizer, data_loader=train_loader, target_epsilon=target_epsilon,
        target_delta=g["delta"], epochs=g["epochs"], max_grad_norm=max_grad_norm)
    calibrated = time.perf_counter()

    criterion = nn.CrossEntropyLoss()
    model.train()
    for _ in range(g["epochs"]):
        for features, labels in train_loader:
            if len(labels) == 0:  # Poisson sampling can draw an empty batch
                continue
            optimizer.zero_grad()
            loss = criterion(model(features.to(device)), labels.to(device))
            loss.backward()
            optimizer.step()
    trained = time.perf_counter()

    model.eval()
    with torch.no_grad():
        logits = model(torch.from_numpy(data.x_test).to(device))
        accuracy = (logits.argmax(dim=1).cpu() == torch.from_numpy(data.y_test)).float().mean().item()
    epsilon = privacy_engine.get_epsilon(g["delta"])
    done = time.perf_counter()
    return {"target_epsilon": float(target_epsilon), "max_grad_norm": float(max_grad_norm), "seed": int(seed),
            "status": "ok", "error": None, "accuracy": float(accuracy), "epsilon": float(epsilon),
            "noise_multiplier": float(optimizer.noise_multiplier), "calibrate_seconds": calibrated - start,
            "train_seconds": trained - calibrated, "epsilon_seconds": done - trained, "run_seconds": done - start}


def run_tutorial(g: dict, *, device: str) -> dict:
    import torch

    from engine.data import load_dataset

    data = load_dataset(g["dataset"])  # loaded (and cached) before the clock starts
    configs = [(eps, norm, seed) for eps in g["epsilons"] for norm in g["clipping_norms"] for seed in g["seeds"]]
    runs = []
    cpu_start, start = cpu_seconds(), time.perf_counter()
    for index, (eps, norm, seed) in enumerate(configs, 1):
        try:
            run = run_tutorial_once(data, target_epsilon=eps, max_grad_norm=norm, seed=seed, g=g, device=device)
            print(f"  [tutorial {index:>2}/{len(configs)}] finished eps={eps:<4g} C={norm:<4g} seed={seed}  "
                  f"acc {run['accuracy']:.4f}  eps {run['epsilon']:.4f}  calibrate {run['calibrate_seconds']:.1f}s  "
                  f"train {run['train_seconds']:.1f}s  get_epsilon {run['epsilon_seconds']:.1f}s", flush=True)
        except Exception as exc:  # report and go on, as the engine does
            run = {"target_epsilon": float(eps), "max_grad_norm": float(norm), "seed": int(seed), "status": "failed",
                   "error": f"{type(exc).__name__}: {exc}", "accuracy": None, "epsilon": None}
            print(f"  [tutorial {index:>2}/{len(configs)}] FAILED eps={eps:<4g} C={norm:<4g} seed={seed}: {run['error']}",
                  flush=True)
        runs.append(run)
    wall, cpu = time.perf_counter() - start, cpu_seconds() - cpu_start
    return {"wall_seconds": wall, "cpu_seconds": cpu, "torch_threads": torch.get_num_threads(), "runs": runs}


# --- Summary -----------------------------------------------------------------------------------------------
def summarise(runs: list[dict]) -> dict[tuple[float, float], dict]:
    """Per (target epsilon, C): mean/std accuracy over seeds and the largest reported epsilon."""
    groups: dict[tuple[float, float], list[dict]] = {}
    for run in runs:
        groups.setdefault((run["target_epsilon"], run["max_grad_norm"]), []).append(run)
    out = {}
    for key, group in sorted(groups.items()):
        ok = [run for run in group if run["status"] == "ok"]
        accuracies = [run["accuracy"] for run in ok]
        out[key] = {
            "n_ok": len(ok), "n_failed": len(group) - len(ok),
            "accuracy_mean": statistics.fmean(accuracies) if accuracies else None,
            "accuracy_std": statistics.stdev(accuracies) if len(accuracies) > 1 else None,
            "epsilon_max": max(run["epsilon"] for run in ok) if ok else None,
            "noise_multiplier": ok[0].get("noise_multiplier") if ok else None,
        }
    return out


def _fmt(value, spec: str = ".4f") -> str:
    return "-" if value is None else format(value, spec)


def _fmt_accuracy(summary: dict) -> str:
    text = _fmt(summary.get("accuracy_mean"))
    return text if summary.get("accuracy_std") is None else f"{text} ±{summary['accuracy_std']:.4f}"


def print_report(result: dict) -> None:
    machine, g = result["machine"], result["grid"]
    print()
    print("Machine:", f"{machine['platform']}; {machine['cpu_model'] or 'unknown CPU'}; "
          f"{machine['cpu_count_usable']} usable CPU cores; torch threads {machine['torch_threads']}; "
          f"device {machine['device']}" + (f" ({machine['gpu']})" if machine["gpu"] else "; no GPU"))
    print("Versions:", f"python {machine['python']}, torch {machine['torch']}, opacus {machine['opacus']}, "
          f"engine {machine['engine']}")
    print("Grid:", f"{g['dataset']} {g['model']}, epsilon {list(g['epsilons'])} x C {list(g['clipping_norms'])} x "
          f"seeds {list(g['seeds'])}, {g['epochs']} epochs, batch {g['batch_size']}, Adam lr {g['learning_rate']}, "
          f"delta {g['delta']}, accountant {g['accountant']}")
    print()
    header = (f"{'eps':>5} {'C':>4} | {'engine acc':>16} {'tutorial acc':>16} | {'engine eps':>10} "
              f"{'tutorial eps':>12} | {'engine sigma':>12} {'tutorial sigma':>14}")
    print(header)
    print("-" * len(header))
    for row in result["table"]:
        e, t = row["engine"], row["tutorial"]
        acc_e, acc_t = _fmt_accuracy(e), _fmt_accuracy(t)
        print(f"{row['target_epsilon']:>5g} {row['max_grad_norm']:>4g} | {acc_e:>16} {acc_t:>16} | "
              f"{_fmt(e['epsilon_max']):>10} {_fmt(t['epsilon_max']):>12} | "
              f"{_fmt(e['noise_multiplier']):>12} {_fmt(t['noise_multiplier']):>14}")
    a, b = result["engine"], result["tutorial"]
    print()
    print(f"Engine   (run_sweep, {a['workers']} worker(s)): {a['wall_seconds']:8.1f} s wall for {len(a['runs'])} runs "
          f"({a['failed']} failed), {a['cpu_seconds']:.1f} s CPU")
    print(f"Tutorial (sequential, {b['torch_threads']} torch thread(s)): {b['wall_seconds']:8.1f} s wall for "
          f"{len(b['runs'])} runs ({sum(r['status'] != 'ok' for r in b['runs'])} failed), {b['cpu_seconds']:.1f} s CPU")
    ok = [r for r in b["runs"] if r["status"] == "ok"]
    if ok:
        print(f"  of which: calibration {sum(r['calibrate_seconds'] for r in ok):.1f} s, training "
              f"{sum(r['train_seconds'] for r in ok):.1f} s, get_epsilon {sum(r['epsilon_seconds'] for r in ok):.1f} s")
    print(f"Load average (1/5/15 min) before/after: engine {a['load_average_before_after']}, "
          f"tutorial {b['load_average_before_after']}")
    print(f"Ratio tutorial / engine: {result['speedup']:.2f}x")


def compare(engine: dict, tutorial: dict) -> list[dict]:
    sa, sb = summarise(engine["runs"]), summarise(tutorial["runs"])
    return [{"target_epsilon": key[0], "max_grad_norm": key[1], "engine": sa.get(key, {}), "tutorial": sb.get(key, {})}
            for key in sorted(set(sa) | set(sb))]


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: epsilon {1, 8} x C {1} x seed {0}, 2 epochs")
    parser.add_argument("--workers", type=int, default=None, help="engine worker processes (default: CPU cores)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "benchmarks" / "out",
                        help="folder for the JSON of all figures (default: benchmarks/out)")
    args = parser.parse_args(argv)

    silence_opacus_warnings()
    from engine.data import load_dataset
    from engine.measure import resolve_device

    device = resolve_device(args.device)
    workers = args.workers if args.workers is not None else default_workers()
    g = grid(args.quick)
    started_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    load_dataset(g["dataset"])  # prepare once in this process (the data files are read here, not timed)

    print(f"Part A: engine run_sweep, {workers} worker(s), device {device}  (load average {load_average()})", flush=True)
    load_before = load_average()
    engine = run_engine(g, workers=workers, device=device)
    engine["load_average_before_after"] = [load_before, load_average()]
    print(f"  -> {engine['wall_seconds']:.1f} s wall  (load average {load_average()})", flush=True)
    print("Part B: Opacus-tutorial loop, sequential, same process", flush=True)
    load_before = load_average()
    tutorial = run_tutorial(g, device=device)
    tutorial["load_average_before_after"] = [load_before, load_average()]
    print(f"  -> {tutorial['wall_seconds']:.1f} s wall  (load average {load_average()})", flush=True)

    result = {
        "benchmark": "bench_sweep", "quick": args.quick, "started_at": started_at,
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": machine_info(device), "grid": {k: list(v) if isinstance(v, tuple) else v for k, v in g.items()},
        "engine": engine, "tutorial": tutorial,
        "speedup": tutorial["wall_seconds"] / engine["wall_seconds"],
        "table": compare(engine, tutorial),
    }
    print_report(result)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / ("bench_sweep_quick.json" if args.quick else "bench_sweep.json")
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nFigures written to {path}")
    return result


if __name__ == "__main__":
    main()
