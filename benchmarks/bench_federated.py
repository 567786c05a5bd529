"""FedAvg on Adult with 10 iid clients: our engine against Flower's simulation, side by side.

    .venv/bin/python benchmarks/bench_federated.py [--rounds 10] [--local-epochs 2] [--skip-flower]

Both sides get the same prepared arrays, the same partition (saved to an .npz from our engine), the same
initial parameters and the same hyperparameters, and each client sees the same seeded mini-batch order, so
they compute the same FedAvg; what differs is the framework around it. Flower runs in its own virtual
environment (benchmarks/.venv-flower, created here on first use) because flwr[simulation] pins protobuf and
starlette differently from this project. Also measured here: our vectorised vs loop client training, and
what secure aggregation, dropouts and compression cost in bytes and accuracy on the same run.

Writes benchmarks/out/bench_federated.json and prints a table (see benchmarks/README.md).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import subprocess
import sys
import time
import warnings
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine import services  # noqa: E402
from engine.config import SweepSpec  # noqa: E402
from engine.federated.local import ClientData, LocalOptions, ParamLayout, make_trainer  # noqa: E402
from engine.federated.partitions import make_partition  # noqa: E402
from engine.runner.spec import spec_from_mapping  # noqa: E402
from engine.techniques import federated as federated_techniques  # noqa: E402
from engine.techniques.base import RunContext  # noqa: E402
from engine.techniques.registry import create_technique  # noqa: E402
from engine.workspace import Workspace  # noqa: E402
from engine.techniques.training import model_for, seed_everything  # noqa: E402

FLOWER_VENV = ROOT / "benchmarks" / ".venv-flower"
FLOWER_PIN = "flwr[simulation]==1.41.0"  # 1.42.0 needs certifi>=2026.10.19, which this machine's index lacks
FLOWER_DEPS = [FLOWER_PIN, "torch==2.13.0", "numpy==2.4.6"]  # torch pinned: the CPU wheel on disk, not CUDA
OUT = ROOT / "benchmarks" / "out"


def ensure_flower_venv() -> tuple[Path | None, str]:
    """(python of the Flower venv, note); None and the error when it cannot be made."""
    python = FLOWER_VENV / "bin" / "python"
    check = [str(python), "-c", "import flwr, ray; print(flwr.__version__, ray.__version__)"]
    if python.exists():
        done = subprocess.run(check, capture_output=True, text=True)
        if done.returncode == 0:
            return python, f"flwr {done.stdout.split()[0]}, ray {done.stdout.split()[1]} (existing venv)"
    started = time.perf_counter()
    steps = [["python3.11", "-m", "venv", str(FLOWER_VENV)], [str(python), "-m", "pip", "install", "-q", *FLOWER_DEPS]]
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True)
        if done.returncode != 0:
            return None, f"`{' '.join(step)}` failed: {(done.stderr or done.stdout).strip()[-800:]}"
    done = subprocess.run(check, capture_output=True, text=True)
    if done.returncode != 0:
        return None, f"flwr installed but does not import: {done.stderr.strip()[-800:]}"
    return python, f"flwr {done.stdout.split()[0]}, ray {done.stdout.split()[1]} (venv made in {time.perf_counter() - started:.0f} s)"


def planned(spec: SweepSpec):
    """(the first run's config, its prepared data)."""
    plan = services.plan(spec, Workspace.at(None))
    return plan.configs[0], plan.data


def engine_run(spec: SweepSpec, trainer: str = "auto") -> dict:
    config, data = planned(spec)
    federated_techniques.TRAINER = trainer
    try:
        started = time.perf_counter()
        result = create_technique(config.technique).run(config, data, context=RunContext(device="cpu"))
        wall = time.perf_counter() - started
    finally:
        federated_techniques.TRAINER = "auto"
    return {"accuracy": result.accuracy, "wall_seconds": wall, "train_seconds": result.train_seconds,
            "comm_bytes": result.extra.get("comm_bytes"), "round_accuracy": result.extra.get("round_accuracy"),
            "trainer_rounds": result.extra.get("trainer_rounds"), "config": config.to_dict(),
            "bytes_up_per_client_round": result.extra.get("bytes_up_per_client_round")}


def write_arrays(spec: SweepSpec, path: Path) -> None:
    """The prepared data, the partition and the initial parameters our run uses, for the Flower side."""
    config, data = planned(spec)
    partition = make_partition(data, kind=config.param("partition"), n_clients=config.param("n_clients"),
                               seed=config.seed)
    seed_everything(config.seed)  # as FederatedTechnique.run does before building the model
    model = model_for(config, data)
    offsets = np.concatenate([[0], np.cumsum(partition.sizes)])
    np.savez(path, x_train=data.x_train, y_train=data.y_train, x_test=data.x_test, y_test=data.y_test,
             client_rows=np.concatenate(partition.train_indices), client_offsets=offsets,
             initial_params=ParamLayout(model).model_vector(model).astype(np.float32), n_classes=data.n_classes,
             hidden_units=config.hidden_units, n_clients=config.param("n_clients"), rounds=config.param("rounds"),
             local_epochs=config.param("local_epochs"), batch_size=config.batch_size, learning_rate=config.learning_rate,
             seed=config.seed)


def flower_run(python: Path, arrays: Path, cores: int | None) -> dict:
    result_path = arrays.with_suffix(".flower.json")
    env = {**os.environ, "RAY_DEDUP_LOGS": "0", "PYTHONWARNINGS": "ignore"}
    started = time.perf_counter()
    command = [str(python), str(ROOT / "benchmarks" / "flower_fedavg.py"), str(arrays), str(result_path)]
    done = subprocess.run(command + ([str(cores)] if cores else []), capture_output=True, text=True, env=env)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        return {"error": (done.stderr or done.stdout)[-2000:]}
    result = json.loads(result_path.read_text())
    result["wall_seconds"] = wall  # the whole process: imports, Ray start, rounds, shutdown
    return result


def summary(runs: list[dict]) -> dict:
    """Min and median wall time over repeats (the min is the least disturbed by other load)."""
    walls = sorted(run["wall_seconds"] for run in runs)
    out = {"wall_min": walls[0], "wall_median": float(np.median(walls))}
    if "rounds_seconds" in runs[0]:
        out["rounds_min"] = min(run["rounds_seconds"] for run in runs)
    return out


def trainer_micro(rounds: int = 3) -> list[dict]:
    """Seconds per round of local training, vectorised vs loop (min of `rounds`), iid and skewed clients."""
    config, data = planned(SweepSpec(dataset="adult", techniques=("baseline",)))
    rows = []
    for kind, alpha in (("iid", None), ("dirichlet", 0.1)):
        partition = make_partition(data, kind=kind, n_clients=10, alpha=alpha, seed=0)
        torch.manual_seed(0)
        model = model_for(config, data)
        layout = ParamLayout(model)
        start = layout.model_vector(model)
        clients = ClientData(data.x_train, data.y_train, partition.train_indices)
        for batch in (512, 64):
            options = LocalOptions(epochs=1, batch_size=batch, learning_rate=5e-3)
            timing = {}
            for trainer in ("vectorised", "loop") * rounds:
                began = time.perf_counter()
                make_trainer(trainer, model, layout).train(start, list(range(10)), clients, options, 0, 0)
                timing.setdefault(trainer, []).append(time.perf_counter() - began)
            rows.append({"partition": kind if alpha is None else f"{kind} {alpha}", "batch_size": batch,
                         "vectorised_s": min(timing["vectorised"]), "loop_s": min(timing["loop"])})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--local-epochs", type=int, default=2)
    parser.add_argument("--skip-flower", action="store_true")
    parser.add_argument("--repeats", type=int, default=3, help="engine and Flower alternate this many times")
    parser.add_argument("--skip-extras", action="store_true", help="only the engine-vs-Flower comparison")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    OUT.mkdir(parents=True, exist_ok=True)
    spec = spec_from_mapping(dict(dataset="adult", techniques=("fedavg",), n_clients=10, partition="iid",
                                  rounds=args.rounds, local_epochs=args.local_epochs, batch_size=512,
                                  learning_rate=5e-3, seeds=(0,)))
    report = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine": platform.platform(),
              "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
              "load_average_at_start": os.getloadavg(), "settings": {"dataset": "adult", "clients": 10,
              "partition": "iid", "rounds": args.rounds, "local_epochs": args.local_epochs, "batch_size": 512,
              "learning_rate": 5e-3, "model": "mlp 64", "seed": 0}}
    python = None
    if not args.skip_flower:
        python, note = ensure_flower_venv()
        report["flower_install"] = note
        print(f"Flower: {note}", flush=True)
        arrays = OUT / "bench_federated_arrays.npz"
        write_arrays(spec, arrays)
    # Two footings: one core each (engine: 1 torch thread, its default; Flower: Ray with 1 CPU, one ClientApp at a
    # time), and every core (engine: torch's default threads; Flower: Ray runs a ClientApp per core in parallel). Engine and
    # Flower alternate so that other load on the machine slows both alike; the report keeps every repeat.
    default_threads = torch.get_num_threads()
    report["modes"] = {}
    for mode, cores in (("one core", 1), ("all cores", None)):
        torch.set_num_threads(cores or default_threads)
        federated_techniques.CPU_THREADS = cores  # the engine's default is 1; None leaves torch's (all cores)
        engine_runs, flower_runs = [], []
        for repeat in range(args.repeats):
            print(f"[{mode}] repeat {repeat + 1}/{args.repeats}: engine FedAvg (adult, 10 iid clients, {args.rounds} "
                  f"rounds x {args.local_epochs} local epochs) ...", flush=True)
            engine_runs.append(engine_run(spec))
            if python is not None:
                print(f"[{mode}] repeat {repeat + 1}/{args.repeats}: Flower ...", flush=True)
                flower_runs.append(flower_run(python, arrays, cores))
        entry = {"engine": {**engine_runs[0], **summary(engine_runs), "repeats": engine_runs},
                 "engine_loop": engine_run(spec, trainer="loop")}
        if flower_runs:
            entry["flower"] = ({**flower_runs[0], **summary(flower_runs), "repeats": flower_runs}
                               if all("accuracy" in run for run in flower_runs) else flower_runs[-1])
        report["modes"][mode] = entry
    torch.set_num_threads(1)  # the rest: one thread, least disturbed by other load
    federated_techniques.CPU_THREADS = 1
    report["engine"] = report["modes"]["one core"]["engine"]
    baseline = SweepSpec(dataset="adult", techniques=("baseline",), epochs=args.rounds * args.local_epochs,
                         batch_size=512, seeds=(0,))
    config, baseline_data = planned(baseline)
    began = time.perf_counter()
    centralised = create_technique("baseline").run(config, baseline_data, context=RunContext(device="cpu"))
    report["baseline"] = {"accuracy": centralised.accuracy, "wall_seconds": time.perf_counter() - began}
    if not args.skip_extras:
        report["variants"] = {}
        for name, settings in (("secure aggregation", {"secure_aggregation": True}),
                               ("secure aggregation, 20% dropout", {"secure_aggregation": True, "dropout": 0.2}),
                               ("int8 uploads", {"compression": "int8"}), ("top-10% uploads", {"compression": "topk"})):
            print(f"variant: {name} ...", flush=True)
            report["variants"][name] = engine_run(dataclasses.replace(spec, **settings))
        report["trainer_micro"] = trainer_micro()
    report["load_average_at_end"] = os.getloadavg()
    (OUT / "bench_federated.json").write_text(json.dumps(report, indent=2, default=str))
    print_table(report)


def print_table(report: dict) -> None:
    for mode, entry in report["modes"].items():
        print_mode(mode, entry)
    engine = report["engine"]
    print(f"{'centralised baseline':34} {report['baseline']['accuracy']:9.4f} {report['baseline']['wall_seconds']:8.2f}")
    for name, variant in report.get("variants", {}).items():
        print(f"{name:34} {variant['accuracy']:9.4f} {variant['wall_seconds']:8.2f}   comm {variant['comm_bytes'] / 1e6:.2f} MB"
              f" (plain {engine['comm_bytes'] / 1e6:.2f} MB)")
    for row in report.get("trainer_micro", []):
        print(f"local training {row['partition']:>14} batch {row['batch_size']:>3}: vectorised {row['vectorised_s']:.3f} s, "
              f"loop {row['loop_s']:.3f} s")


def print_mode(mode: str, entry: dict) -> None:
    engine, flower = entry["engine"], entry.get("flower", {})
    print(f"\n[{mode}]{'':{27 - len(mode)}} {'accuracy':>9} {'wall s':>8}  (min / median over repeats)")
    print(f"{'engine FedAvg (auto: vectorised)':34} {engine['accuracy']:9.4f} {engine['wall_min']:8.2f} / "
          f"{engine['wall_median']:.2f}")
    print(f"{'engine FedAvg (loop)':34} {entry['engine_loop']['accuracy']:9.4f} {entry['engine_loop']['wall_seconds']:8.2f}")
    if "accuracy" in flower:
        print(f"{'Flower 1.41 simulation (Ray)':34} {flower['accuracy']:9.4f} {flower['wall_min']:8.2f} / "
              f"{flower['wall_median']:.2f}   (rounds alone, min {flower['rounds_min']:.2f} s)")
        print(f"ratio Flower / engine wall time: {flower['wall_min'] / engine['wall_min']:.1f}x on the minima, "
              f"{flower['wall_median'] / engine['wall_median']:.1f}x on the medians "
              f"(Flower's rounds alone: {flower['rounds_min'] / engine['wall_min']:.1f}x)")
    elif flower:
        print(f"Flower failed: {flower.get('error', '')[-500:]}")


if __name__ == "__main__":
    main()
