"""Decide over a store of 1,000 runs: the engine's grouped, cached composition against composing the runs one
by one (what Decide did before), side by side, plus the whole decision (ranking + summary) on the same store.

Command: .venv/bin/python benchmarks/bench_decide.py [--runs 1000]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
from dp_accounting.pld import common, privacy_loss_distribution

from engine.privacy import composition

OUT = Path(__file__).resolve().parent / "out"


def synthetic_records(n: int, seed: int = 0) -> list[dict]:
    """A sweep-shaped store: 5 epsilons x 3 clipping norms x seeds of dp-sgd (one noise per epsilon, as calibration
    gives), plus pure-DP runs at the same epsilons and some baselines."""
    rng = np.random.default_rng(seed)
    noises = {0.1: 8.1, 0.5: 2.1, 1.0: 1.3, 2.0: 0.95, 8.0: 0.6}
    records = []
    for index in range(n):
        kind = index % 10
        epsilon = list(noises)[index % 5]
        if kind < 7:
            records.append({"status": "ok", "noise_multiplier": noises[epsilon], "sample_rate": 1 / 64,
                            "steps": 640, "epsilon": epsilon, "delta": 1e-5})
        elif kind < 9:
            records.append({"status": "ok", "epsilon": epsilon, "delta": 0.0})
        else:
            records.append({"status": "ok", "epsilon": None})
    rng.shuffle(records)
    return records


def one_by_one(records: list[dict], delta: float) -> float:
    """The previous implementation: one PLD per run, composed in turn."""
    total = None
    for record in records:
        if record.get("noise_multiplier") is not None:
            loss = privacy_loss_distribution.from_gaussian_mechanism(
                record["noise_multiplier"], sampling_prob=record["sample_rate"],
                value_discretization_interval=composition.VALUE_DISCRETIZATION).self_compose(record["steps"])
        elif record.get("epsilon") is not None:
            loss = privacy_loss_distribution.from_privacy_parameters(
                common.DifferentialPrivacyParameters(record["epsilon"], record["delta"]),
                value_discretization_interval=composition.VALUE_DISCRETIZATION)
        else:
            continue
        total = loss if total is None else total.compose(loss)
    return float(total.get_epsilon_for_delta(delta))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--reference-runs", type=int, default=100,
                        help="runs composed one by one (it grows linearly; scaled to --runs in the report)")
    args = parser.parse_args()
    records = synthetic_records(args.runs)
    composition._composed_epsilon.cache_clear()
    started = time.perf_counter()
    ours = composition.compose_runs(records, delta=1e-5).epsilon
    first = time.perf_counter() - started
    started = time.perf_counter()
    composition.compose_runs(records, delta=1e-5)
    cached = time.perf_counter() - started
    subset = records[: args.reference_runs]
    started = time.perf_counter()
    reference_subset = one_by_one(subset, 1e-5)
    reference_seconds = (time.perf_counter() - started) * args.runs / len(subset)
    check = composition.compose_runs(subset, delta=1e-5).epsilon
    report = {"machine": platform.platform(), "runs": args.runs, "engine_first_s": first, "engine_cached_s": cached,
              "one_by_one_s_scaled": reference_seconds, "ratio": reference_seconds / first, "epsilon": ours,
              "subset_epsilon_engine": check, "subset_epsilon_one_by_one": reference_subset}
    OUT.mkdir(exist_ok=True)
    (OUT / "bench_decide.json").write_text(json.dumps(report, indent=2))
    print(f"{args.runs} runs: engine {first:.3f} s (cached {cached * 1000:.2f} ms), one by one ~{reference_seconds:.1f} s "
          f"(scaled from {len(subset)}): {report['ratio']:.0f}x; epsilon {ours:.4g}")
    print(f"same figure on {len(subset)} runs: engine {check:.6g} vs one by one {reference_subset:.6g}")


if __name__ == "__main__":
    main()
