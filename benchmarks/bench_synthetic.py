"""Benchmark (issue 16): DP synthetic data (MST) on the frontier beside dp-logreg and dp-sgd, on adult.

Every run goes through the engine (`services.run`) into a result store under --out, so an interrupted benchmark
picks up where it stopped. adult, epsilon {0.3, 1, 3, 10} x 3 seeds, delta 1e-5, the logreg model for every
technique: dp-synthetic (MST, 16 bins; logreg trained on the synthetic table, tested on the real test rows),
dp-logreg (objective perturbation, pure epsilon), dp-sgd (logreg, PRV, C = 1, the engine's default training
settings), and the non-private baseline (logreg). Prints a Markdown table: test accuracy and balanced accuracy
(mean +- std over seeds), and for dp-synthetic the mean 1-way and 2-way marginal TVD against the training rows.

    .venv/bin/python benchmarks/bench_synthetic.py            # the full grid (~30-60 min on 2 busy cores)
    .venv/bin/python benchmarks/bench_synthetic.py --quick    # epsilon {1}, seed 0
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # runnable as `python benchmarks/bench_synthetic.py` without an install
    sys.path.insert(0, str(REPO_ROOT))

EPSILONS = (0.3, 1.0, 3.0, 10.0)
SEEDS = (0, 1, 2)
TECHNIQUES = ("dp-synthetic", "dp-logreg", "dp-sgd", "baseline")


def sweep(techniques, epsilons, seeds, store_path: Path) -> list[dict]:
    from engine import services
    from engine.config import SweepSpec
    from engine.runner.records import open_store
    from engine.workspace import Workspace

    spec = SweepSpec(dataset="adult", techniques=tuple(techniques), epsilons=tuple(epsilons), seeds=tuple(seeds),
                     model="logreg", clipping_norms=(1.0,), delta=1e-5)
    workspace = Workspace.at(store_path)
    with open_store(store_path) as store:
        def progress(event) -> None:
            if event.kind in ("finished", "failed"):
                c = event.config
                print(f"  [{event.done}/{event.total}] {c.technique} eps={c.target_epsilon} seed={c.seed} "
                      f"{event.kind}{': ' + event.error if event.error else ''}", file=sys.stderr, flush=True)

        report = services.run(services.plan(spec, workspace), workspace, workers=1, device="cpu",
                              on_progress=progress)
        return store.records(run_ids=report.run_ids, status="ok")


def _cell(values: list[float]) -> str:
    return f"{np.mean(values):.3f} ± {np.std(values):.3f}" if values else "–"


def table(records: list[dict], epsilons) -> str:
    lines = ["| technique | ε | accuracy | balanced accuracy | 1-way TVD | 2-way TVD | s/run | runs |",
             "|---|---|---|---|---|---|---|---|"]
    for technique in TECHNIQUES:
        for epsilon in (epsilons if technique != "baseline" else (None,)):
            runs = [r for r in records if r["technique"] == technique and r.get("target_epsilon") == epsilon]
            if not runs:
                continue
            tvd = {way: [r[f"synth_tvd_{way}way"] for r in runs if r.get(f"synth_tvd_{way}way") is not None]
                   for way in (1, 2)}
            lines.append(f"| {technique} | {'–' if epsilon is None else f'{epsilon:g}'} | "
                         f"{_cell([r['accuracy'] for r in runs])} | {_cell([r['balanced_accuracy'] for r in runs])} | "
                         f"{_cell(tvd[1])} | {_cell(tvd[2])} | {np.mean([r['train_seconds'] for r in runs]):.0f} | "
                         f"{len(runs)} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "benchmarks" / "out" / "synthetic",
                        help="folder of the result store (and the synthetic tables)")
    parser.add_argument("--quick", action="store_true", help="epsilon 1, seed 0 only")
    arguments = parser.parse_args()
    warnings.filterwarnings("ignore")
    epsilons, seeds = ((1.0,), (0,)) if arguments.quick else (EPSILONS, SEEDS)
    records = sweep(TECHNIQUES, epsilons, seeds, arguments.out / "results.sqlite")
    print(table(records, epsilons))


if __name__ == "__main__":
    main()
