"""Benchmark: classic central-DP models (diffprivlib) and local DP against DP-SGD, on Adult and Credit.

Every run goes through the engine (`run_sweep`) into a result store under --out, so an interrupted
benchmark picks up where it stopped. For each dataset and epsilon in {0.1, 0.5, 1, 2, 5, 10} over 5 seeds:
test accuracy (mean ± std) of dp-logreg, dp-naive-bayes, dp-forest, local-dp and dp-sgd (MLP, PRV, C = 1,
10 epochs), with two non-private references: `baseline` (the same MLP) and scikit-learn's logistic
regression with dp-logreg's C (the model local-dp trains on randomised records). Then the gap local vs
global at each epsilon: local-dp minus dp-logreg (same model family, so only the privacy model differs),
and local-dp minus the best global technique at that epsilon. Prints Markdown tables; writes them and
every figure under --out.

    .venv/bin/python benchmarks/bench_classic_dp.py                 # full grid (DP-SGD dominates: ~20-40 min)
    .venv/bin/python benchmarks/bench_classic_dp.py --no-dp-sgd     # the classic techniques only (minutes)
    .venv/bin/python benchmarks/bench_classic_dp.py --quick         # smoke run: epsilon {0.1, 10}, seed 0
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import warnings
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # runnable as `python benchmarks/bench_classic_dp.py` without an install
    sys.path.insert(0, str(REPO_ROOT))

DATASETS = ("adult", "credit")
EPSILONS = (0.1, 0.5, 1.0, 2.0, 5.0, 10.0)
SEEDS = (0, 1, 2, 3, 4)
CLASSIC = ("dp-logreg", "dp-naive-bayes", "dp-forest", "local-dp")
GLOBAL = ("dp-logreg", "dp-naive-bayes", "dp-forest", "dp-sgd")
# Opacus' warnings that say nothing about the benchmark (secure_mode off; backward hook; RDP order at small eps).
NOISY_WARNINGS = ("Secure RNG turned off", "Full backward hook is firing", "Optimal order is the largest alpha")


def quiet() -> None:
    for message in NOISY_WARNINGS:
        warnings.filterwarnings("ignore", message=message)
    os.environ["PYTHONWARNINGS"] = ",".join(  # spawned workers read filters from the environment only
        filter(None, [os.environ.get("PYTHONWARNINGS"), *(f"ignore:{m}:UserWarning" for m in NOISY_WARNINGS)]))


def cpu_count() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def machine() -> dict:
    from engine import ENGINE_VERSION

    cpu_model = platform.processor()
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else ():
        if line.startswith("model name"):
            cpu_model = line.split(":", 1)[1].strip()
            break
    import diffprivlib
    import sklearn

    return {"platform": platform.platform(), "python": platform.python_version(), "cpu_model": cpu_model,
            "cpus": cpu_count(), "gpu": None, "engine": ENGINE_VERSION, "diffprivlib": diffprivlib.__version__,
            "scikit-learn": sklearn.__version__, "load_average_at_start": list(os.getloadavg())}


def sweep(dataset: str, techniques: tuple[str, ...], epsilons, seeds, store_path: Path, workers: int) -> list[dict]:
    from engine import services
    from engine.config import SweepSpec
    from engine.runner.records import open_store
    from engine.workspace import Workspace

    spec = SweepSpec(dataset=dataset, techniques=techniques, epsilons=tuple(epsilons), seeds=tuple(seeds),
                     clipping_norms=(1.0,))
    workspace = Workspace.at(store_path)
    with open_store(store_path) as store:
        def progress(event) -> None:
            if event.kind in ("finished", "failed"):
                c = event.config
                print(f"  [{event.done}/{event.total}] {dataset} {c.technique} eps={c.target_epsilon} seed={c.seed} "
                      f"{event.kind}{': ' + event.error if event.error else ''}", file=sys.stderr, flush=True)

        report = services.run(services.plan(spec, workspace), workspace, workers=workers, device="cpu",
                              on_progress=progress)
        print(f"{dataset}: {report.total} runs, {report.cached} cached, {report.trained} trained, "
              f"{report.failed} failed", file=sys.stderr, flush=True)
        return store.records(run_ids=report.run_ids, status="ok")


def sklearn_logreg_reference(dataset: str, seeds) -> list[float]:
    """Non-private logistic regression with dp-logreg's C: what local-dp's model reaches on clean records."""
    from sklearn.linear_model import LogisticRegression

    from engine.data import load_dataset
    from engine.techniques.diffprivlib_models import LOGREG_C
    from engine.techniques.estimators import single_threaded_solvers

    data = load_dataset(dataset)
    with single_threaded_solvers():
        model = LogisticRegression(C=LOGREG_C, max_iter=1000).fit(data.x_train, data.y_train)
    return [float(model.score(data.x_test, data.y_test))] * len(seeds)  # deterministic: one fit stands for all


def majority_rate(dataset: str) -> float:
    """The accuracy of a constant prediction: the floor any useful model must beat."""
    from engine.data import load_dataset

    return float(np.bincount(load_dataset(dataset).y_test).max() / len(load_dataset(dataset).y_test))


def summarise(records: list[dict]) -> dict:
    """(technique, target_epsilon) -> accuracy mean, std over seeds, n, mean seconds per run."""
    groups: dict[tuple, list[dict]] = {}
    for record in records:
        groups.setdefault((record["technique"], record["target_epsilon"]), []).append(record)
    return {key: {"mean": float(np.mean([r["accuracy"] for r in rs])),
                  "std": float(np.std([r["accuracy"] for r in rs], ddof=1)) if len(rs) > 1 else 0.0,
                  "n": len(rs), "seconds": float(np.mean([r["train_seconds"] for r in rs])),
                  "epsilon_max": max((r["epsilon"] for r in rs if r["epsilon"] is not None), default=None)}
            for key, rs in groups.items()}


def markdown(dataset: str, summary: dict, references: dict, epsilons) -> str:
    eps_head = " | ".join(f"ε = {e:g}" for e in epsilons)
    lines = [f"**{dataset}** — test accuracy, mean ± std over seeds", "",
             f"| technique | privacy | {eps_head} | s/run |", "|---|---|" + "---|" * (len(epsilons) + 1)]
    techniques = [t for t in (*CLASSIC, "dp-sgd") if any(k[0] == t for k in summary)]
    for technique in techniques:
        cells = []
        for epsilon in epsilons:
            cell = summary.get((technique, epsilon))
            cells.append(f"{cell['mean']:.3f} ± {cell['std']:.3f}" if cell else "–")
        seconds = np.mean([v["seconds"] for k, v in summary.items() if k[0] == technique])
        model = "local" if technique == "local-dp" else "global"
        lines.append(f"| {technique} | {model} | {' | '.join(cells)} | {seconds:.2f} |")
    for name, values in references.items():
        lines.append(f"| {name} | none | " + " | ".join([f"{np.mean(values):.3f}"] * len(epsilons)) + " | |")
    lines += ["", f"**{dataset}** — gap local vs global at equal ε (accuracy points, negative = local below)", "",
              f"| gap | {eps_head} |", "|---|" + "---|" * len(epsilons)]
    versus_logreg, versus_best, best_names = [], [], []
    for epsilon in epsilons:
        local = summary.get(("local-dp", epsilon))
        same = summary.get(("dp-logreg", epsilon))
        best = max(((t, summary[(t, epsilon)]) for t in GLOBAL if (t, epsilon) in summary),
                   key=lambda item: item[1]["mean"], default=None)
        versus_logreg.append(f"{local['mean'] - same['mean']:+.3f}" if local and same else "–")
        versus_best.append(f"{local['mean'] - best[1]['mean']:+.3f}" if local and best else "–")
        best_names.append(best[0] if best else "–")
    lines.append(f"| local-dp − dp-logreg (same model family) | {' | '.join(versus_logreg)} |")
    lines.append(f"| local-dp − best global | {' | '.join(versus_best)} |")
    lines.append(f"| best global technique | {' | '.join(best_names)} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="epsilon {0.1, 10}, seed 0")
    parser.add_argument("--no-dp-sgd", action="store_true", help="skip DP-SGD and the MLP baseline (the slow part)")
    parser.add_argument("--datasets", default=",".join(DATASETS))
    parser.add_argument("--workers", type=int, default=None, help="engine worker processes (default: CPU cores)")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "benchmarks" / "out")
    args = parser.parse_args(argv)
    quiet()
    epsilons, seeds = ((0.1, 10.0), (0,)) if args.quick else (EPSILONS, SEEDS)
    techniques = CLASSIC if args.no_dp_sgd else (*CLASSIC, "dp-sgd", "baseline")
    args.out.mkdir(parents=True, exist_ok=True)
    store_path = args.out / ("bench_classic_dp_quick.sqlite" if args.quick else "bench_classic_dp.sqlite")
    started = time.perf_counter()
    result = {"started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine": machine(),
              "epsilons": list(epsilons), "seeds": list(seeds), "techniques": list(techniques), "datasets": {}}
    report = []
    for dataset in args.datasets.split(","):
        records = sweep(dataset, techniques, epsilons, seeds, store_path, args.workers or cpu_count())
        summary = summarise(records)
        references = {"scikit-learn logistic regression (local-dp's model, clean records)":
                      sklearn_logreg_reference(dataset, seeds)}
        references["majority class (always the test set's commonest label)"] = [majority_rate(dataset)]
        baseline = [r["accuracy"] for r in records if r["technique"] == "baseline"]
        if baseline:
            references["baseline (dp-sgd's MLP, no privacy)"] = baseline
        report.append(markdown(dataset, summary, references, epsilons))
        result["datasets"][dataset] = {
            "summary": [{"technique": t, "target_epsilon": e, **v} for (t, e), v in sorted(
                summary.items(), key=lambda item: (item[0][0], item[0][1] if item[0][1] is not None else -1))],
            "references": {k: float(np.mean(v)) for k, v in references.items()}}
    result["wall_seconds"] = round(time.perf_counter() - started, 1)
    result["load_average_at_end"] = list(os.getloadavg())
    text = "\n".join(report)
    print(text)
    name = "bench_classic_dp_quick" if args.quick else "bench_classic_dp"
    (args.out / f"{name}.md").write_text(text)
    (args.out / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"wall time {result['wall_seconds']} s; figures in {args.out / name}.json", file=sys.stderr)
    return result


if __name__ == "__main__":
    main()
