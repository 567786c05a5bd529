"""Benchmark (issue 14): the engine's PRV noise calibration against Opacus' bisection at the same precision.

For three table shapes (adult's standard run: 30,162 rows, batch 512, 10 epochs; heart-sized: 552 rows, batch 32, 20
epochs; adult at batch 64, 3 epochs) and epsilon {0.05, 0.1, 0.5, 1, 2, 8} at delta 1e-5: the noise multiplier each
side finds, the seconds it took and how many PRV evaluations it made, and whether the engine's answer obeys the rule
both follow (the run's full-precision PRV epsilon in [0.99 x target, target]). Opacus' side is
`get_noise_multiplier(accountant="prv", epsilon_tolerance=1% of the target, eps_error=the engine's)`, what the engine
called before. Prints one line per question and the total seconds and their ratio.

    .venv/bin/python benchmarks/bench_calibration.py      # about 4 minutes on 2 cores (Opacus' side is most of it)
"""

from __future__ import annotations

import time
import warnings

from opacus.accountants import PRVAccountant
from opacus.accountants.utils import get_noise_multiplier

from engine.privacy.accounting import (RELATIVE_TOLERANCE, _accountant_options, epsilon_for, noise_for,
                                       steps_and_sample_rate)

SHAPES = [(30162, 512, 10), (552, 32, 20), (30162, 64, 3)]  # (rows, batch size, epochs)
EPSILONS = (0.05, 0.1, 0.5, 1.0, 2.0, 8.0)
DELTA = 1e-5


def main() -> None:
    warnings.filterwarnings("ignore", message="Optimal order")
    evaluations = []
    plain = PRVAccountant.get_epsilon

    def counted(self, *args, **kwargs):
        evaluations.append(1)
        return plain(self, *args, **kwargs)

    PRVAccountant.get_epsilon = counted
    totals = {"engine": 0.0, "opacus": 0.0}
    print(f"{'rows':>6} {'batch':>5} {'epochs':>6} {'eps':>5} | {'engine sigma':>12} {'s':>5} {'evals':>5} "
          f"{'in window':>9} | {'opacus sigma':>12} {'s':>5} {'evals':>5}")
    for rows, batch, epochs in SHAPES:
        steps, rate = steps_and_sample_rate(rows, batch, epochs)
        for target in EPSILONS:
            evaluations.clear()
            start = time.perf_counter()
            ours = noise_for(target_epsilon=target, delta=DELTA, sample_rate=rate, steps=steps, accountant="prv")
            ours_seconds, ours_evaluations = time.perf_counter() - start, len(evaluations)
            reported = epsilon_for(noise_multiplier=ours, sample_rate=rate, steps=steps, delta=DELTA, accountant="prv",
                                   epsilon_scale=target)
            evaluations.clear()
            start = time.perf_counter()
            theirs = get_noise_multiplier(target_epsilon=target, target_delta=DELTA, sample_rate=rate, steps=steps,
                                          accountant="prv", epsilon_tolerance=RELATIVE_TOLERANCE * target,
                                          **_accountant_options("prv", target))
            theirs_seconds = time.perf_counter() - start
            totals["engine"] += ours_seconds
            totals["opacus"] += theirs_seconds
            within = (1 - RELATIVE_TOLERANCE) * target <= reported <= target
            print(f"{rows:>6} {batch:>5} {epochs:>6} {target:>5g} | {ours:>12.4f} {ours_seconds:>5.1f} "
                  f"{ours_evaluations:>5} {str(within):>9} | {theirs:>12.4f} {theirs_seconds:>5.1f} {len(evaluations):>5}",
                  flush=True)
    print(f"total: engine {totals['engine']:.1f} s, Opacus' bisection {totals['opacus']:.1f} s: "
          f"{totals['opacus'] / totals['engine']:.1f}x")


if __name__ == "__main__":
    main()
