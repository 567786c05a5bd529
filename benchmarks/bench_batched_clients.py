"""Benchmark (issue 14): one fed-dp-sgd run with its clients trained per client through Opacus (DPSGDTrainer,
FRONTIER_BATCHED_DP_SGD=0) against the round's clients trained as one stacked pass (federated/batched_clients.py).

adult, mlp 64, 5 clients (iid), 5 rounds, the spec's defaults otherwise (epsilon, C, batch size, Adam lr, accountant,
one local epoch). Each side runs `--repeats` times, the two sides alternating so that other work on the machine
falls on both; the same config, prepared data and calibrated noise (a NoiseCache shared by both sides, warmed
before the clock). Prints, per side, the wall time of FedDPSGD.run (partition, rounds, scoring), its round-loop time
(RunResult.train_seconds), accuracy and epsilon, and the ratios per-client / batched.

    .venv/bin/python benchmarks/bench_batched_clients.py                    # CPU, 3 repeats
    .venv/bin/python benchmarks/bench_batched_clients.py --epsilon 1        # a budget where accuracy moves
    .venv/bin/python benchmarks/bench_batched_clients.py --device cuda --repeats 2
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench_sweep, beside this file
from bench_sweep import REPO_ROOT, load_average, silence_opacus_warnings  # noqa: E402

SWITCH = "FRONTIER_BATCHED_DP_SGD"
SIDES = {"per-client Opacus": "0", "batched clients": "1"}


class MemoryNoiseCache(dict):
    """RunContext's NoiseCache in memory: both sides use the noise calibrated once, before the clock."""

    def get_noise(self, key: str) -> float | None:
        return self.get(key)

    def put_noise(self, key: str, noise_multiplier: float) -> None:
        self[key] = noise_multiplier


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="adult")
    parser.add_argument("--clients", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epsilon", type=float, default=None, help="target epsilon (default: the spec's)")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--out", type=Path, default=None, help="also write the figures here as JSON")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO_ROOT))
    silence_opacus_warnings()

    from engine.data import get_dataset_info
    from engine.runner import plan as planning
    from engine.runner.spec import spec_from_mapping
    from engine.techniques.base import RunContext
    from engine.techniques.registry import create_technique

    spec = spec_from_mapping({"dataset": args.dataset, "techniques": ["fed-dp-sgd"], "model": "mlp",
                              "hidden_units": 64, "n_clients": args.clients, "rounds": args.rounds, "seeds": [0],
                              **({"epsilons": [args.epsilon]} if args.epsilon else {})})
    data = planning.prepared_data(spec.dataset, spec.train_subsample, None)
    config = planning.expand(spec, get_dataset_info(spec.dataset), data.n_train)[0]
    technique, cache = create_technique("fed-dp-sgd"), MemoryNoiseCache()
    technique.run(config, data, context=RunContext(device=args.device, noise_cache=cache))  # warm: calibration, imports
    print(f"{args.dataset}: {data.n_train} training rows, {args.clients} clients, {args.rounds} rounds, "
          f"epsilon {config.target_epsilon}, C {config.max_grad_norm}, batch {config.batch_size}, "
          f"lr {config.learning_rate}, {config.accountant}, device {args.device}; load {load_average()}")
    runs: dict[str, list[dict]] = {side: [] for side in SIDES}
    for repeat in range(args.repeats):
        for side, switch in SIDES.items():
            os.environ[SWITCH] = switch
            start = time.perf_counter()
            result = technique.run(config, data, context=RunContext(device=args.device, noise_cache=cache))
            runs[side].append({"wall_seconds": time.perf_counter() - start, "train_seconds": result.train_seconds,
                               "accuracy": result.accuracy, "epsilon": result.epsilon,
                               "trainer": result.extra["trainer"]})
            print(f"  {repeat}: {side:18s} {runs[side][-1]['wall_seconds']:7.2f} s wall, "
                  f"{result.train_seconds:7.2f} s rounds, accuracy {result.accuracy:.4f}, epsilon {result.epsilon:.4f}")
    summary = {side: {key: statistics.median(run[key] for run in own) for key in ("wall_seconds", "train_seconds")}
               | {"accuracy_mean": statistics.mean(run["accuracy"] for run in own), "epsilon": own[0]["epsilon"]}
               for side, own in runs.items()}
    for side, figures in summary.items():
        print(f"{side:18s} median {figures['wall_seconds']:7.2f} s wall ({figures['train_seconds']:.2f} s rounds), "
              f"mean accuracy {figures['accuracy_mean']:.4f}, epsilon {figures['epsilon']:.4f}")
    slow, fast = (summary[side] for side in SIDES)
    ratios = {key: slow[key] / fast[key] for key in ("wall_seconds", "train_seconds")}
    print(f"per-client / batched: {ratios['wall_seconds']:.2f}x wall, {ratios['train_seconds']:.2f}x rounds; "
          f"load {load_average()}")
    if args.out:
        args.out.write_text(json.dumps({"config": str(config), "device": args.device, "runs": runs,
                                        "summary": summary, "ratios": ratios}, indent=2))


if __name__ == "__main__":
    main()
