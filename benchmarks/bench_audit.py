"""Empirical audits on adult and heart: epsilon vs measured lower bound vs attack TPR at FPR 1%, and wall times.

    .venv/bin/python benchmarks/bench_audit.py [--datasets adult,heart] [--quick]

For each dataset: baseline and dp-sgd at epsilon 1, 4 and 8 (engine defaults on adult: MLP 64, batch 512,
10 epochs; heart: batch 32, 30 epochs), each audited three ways through `services.audit`, the code path of
`frontier audit`: the one-run black-box canary audit (default canaries), the one-run white-box audit with Dirac
gradient canaries (dp-sgd only), and RMIA with 4 reference models. Every audit's wall time is measured on this
machine. Writes benchmarks/out/bench_audit.json and prints the README table.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from engine import services  # noqa: E402
from engine.audit.settings import AuditSettings  # noqa: E402
from engine.workspace import Workspace  # noqa: E402
from engine_support import make_spec  # noqa: E402

SETTINGS = {"adult": dict(epochs=10, batch_size=512), "heart": dict(epochs=30, batch_size=32)}
AUDITS = {"one-run black-box": AuditSettings(), "one-run white-box": AuditSettings(white_box=True),
          "rmia (4 reference models)": AuditSettings(attack="rmia", reference_models=4)}
OUT = ROOT / "benchmarks" / "out"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--datasets", default="adult,heart")
    parser.add_argument("--quick", action="store_true", help="2 epochs, epsilon 8 only")
    args = parser.parse_args()
    workspace = Workspace.at(Path(tempfile.mkdtemp()) / "results.sqlite")
    rows = []
    for dataset in args.datasets.split(","):
        shared = dict(SETTINGS[dataset], epochs=2) if args.quick else SETTINGS[dataset]
        spec = make_spec(dataset=dataset, techniques=["baseline", "dp-sgd"], epsilons=[8.0] if args.quick else [1, 4, 8],
                         seeds=[0], **shared)
        plan = services.plan(spec, workspace)
        services.run(plan, workspace, device="cpu")
        for run_id, config in zip(plan.run_ids, plan.configs):
            for name, settings in AUDITS.items():
                if settings.white_box and config.technique != "dp-sgd":
                    continue
                started = time.perf_counter()
                figures = services.audit(workspace, run_id, settings, device="cpu").figures
                seconds = time.perf_counter() - started
                rate = figures.rate_at(0.01)
                rows.append({"dataset": dataset, "technique": config.technique, "target_epsilon": config.target_epsilon,
                             "epsilon": figures.epsilon, "audit": name, "epsilon_lower_bound": figures.lower_bound.epsilon,
                             "tpr_at_1pct": rate.tpr.value, "tpr_low": rate.tpr.low, "tpr_high": rate.tpr.high,
                             "bound_at_1pct": rate.bound, "within_bound": all(r.within_bound for r in figures.rates),
                             "auc": figures.auc.value, "auc_low": figures.auc.low, "auc_high": figures.auc.high,
                             "breach": figures.breach, "n_in": figures.n_in, "n_out": figures.n_out, "seconds": seconds})
                print(json.dumps(rows[-1]), flush=True)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "bench_audit.json").write_text(json.dumps({"machine": platform.platform(), "rows": rows}, indent=1))
    print("| dataset | technique | ε | audit | ε lower bound (95%) | TPR at FPR 1% [95% CI] | bound at 1% | AUC [95% CI] "
          "| within bound | wall time |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        eps = "—" if r["epsilon"] is None else f"{r['epsilon']:.3g}"
        bound = "—" if r["epsilon"] is None else f"{r['bound_at_1pct'] * 100:.3g}%"
        print(f"| {r['dataset']} | {r['technique']} | {eps} | {r['audit']} | {r['epsilon_lower_bound']:.3g} | "
              f"{r['tpr_at_1pct'] * 100:.3g}% [{r['tpr_low'] * 100:.3g}, {r['tpr_high'] * 100:.3g}] | {bound} | "
              f"{r['auc']:.3f} [{r['auc_low']:.3f}, {r['auc_high']:.3f}] | {'yes' if r['within_bound'] and not r['breach'] else 'NO'} | "
              f"{r['seconds']:.0f} s |")


if __name__ == "__main__":
    main()
