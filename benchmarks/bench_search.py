"""DP-SGD at one epsilon: the size-aware defaults (fixed in advance, one run) against a per-epsilon random search
over learning rate, batch size and clipping norm (epochs sized per batch), the best trial chosen on the validation
rows. Reports the chosen configuration's balanced accuracy on the test rows beside what releasing it costs: the
defaults' own epsilon, the search's tuning-aware epsilon (Decide's figure, from the trials at that epsilon only).

Command: .venv/bin/python benchmarks/bench_search.py [--datasets german-credit,heart] [--epsilon 1] [--repeats 3]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import pandas as pd

from engine import services
from engine.analysis.decide import DecisionConstraints, rank_candidates
from engine.runner.spec import spec_from_mapping
from engine.workspace import Workspace

METRIC = "balanced_accuracy"
GRID = {"learning_rate": [1e-3, 5e-3, 2e-2], "batch_size": [32, 64, 128], "clipping_norms": [0.5, 1.0, 2.0]}


def defaults(dataset: str, epsilon: float, seed: int, folder: Path) -> dict:
    workspace = Workspace.at(folder / f"{dataset}-defaults-{seed}.sqlite")
    spec = spec_from_mapping({"dataset": dataset, "techniques": ["baseline", "dp-sgd"], "epsilons": [epsilon],
                              "seeds": [seed]})
    services.run(services.plan(spec, workspace), workspace, device="cpu")
    runs = services.read_runs(workspace)
    private = runs[(runs["technique"] == "dp-sgd") & (runs["status"] == "ok")].iloc[0]
    baseline = runs[runs["technique"] == "baseline"].iloc[0]
    return {"dataset": dataset, "how": "defaults", "trials": 1, "lr": private["learning_rate"],
            "batch": private["batch_size"], "epochs": private["epochs"], "C": private["max_grad_norm"],
            "test_bal_acc": private[METRIC], "epsilon_released": private["epsilon"], "baseline": baseline[METRIC]}


def search(dataset: str, epsilon: float, seed: int, trials: float, folder: Path) -> dict:
    workspace = Workspace.at(folder / f"{dataset}-search-{seed}.sqlite")
    spec = spec_from_mapping({"dataset": dataset, "techniques": ["dp-sgd"], "epsilons": [epsilon], "seeds": [seed],
                              "random_trials": trials, **GRID})
    plan = services.plan(spec, workspace)
    services.run(plan, workspace, device="cpu")
    drawn = len(plan.search.trials)
    row = {"dataset": dataset, "how": f"search ({trials:g} expected)", "trials": drawn}
    scopes = services.searches(workspace)
    if not scopes:
        return {**row, "test_bal_acc": None, "epsilon_released": None}
    (scope,) = scopes
    ranked = rank_candidates(services.read_runs(workspace),
                             DecisionConstraints(dataset=dataset, metric=METRIC, scope=scope))
    if ranked.empty:
        return {**row, "test_bal_acc": None, "epsilon_released": None}
    best = ranked.iloc[0]
    summary = services.decide(workspace, best["run_id"], metric=METRIC, scope=scope)
    run = summary.run
    return {**row, "lr": run["learning_rate"], "batch": run["batch_size"], "epochs": run["epochs"],
            "C": run["max_grad_norm"], "test_bal_acc": summary.metric_mean, "epsilon_released": summary.headline_epsilon,
            "tuning_epsilon": summary.tuning_epsilon, "composed": summary.composition.epsilon}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--datasets", default="german-credit,heart")
    parser.add_argument("--epsilon", type=float, default=1.0)
    parser.add_argument("--trials", type=float, default=6.0)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for dataset in args.datasets.split(","):
            for seed in range(args.repeats):
                rows.append(defaults(dataset, args.epsilon, seed, Path(folder)))
                rows.append(search(dataset, args.epsilon, seed, args.trials, Path(folder)))
                print(pd.DataFrame(rows[-2:]).round(3).to_string(), flush=True)
    table = pd.DataFrame(rows)
    print(table.round(3).to_string())
    print(table.groupby(["dataset", "how"]).agg(test_bal_acc=("test_bal_acc", "mean"),
                                                spread=("test_bal_acc", "std"),
                                                epsilon_released=("epsilon_released", "mean"),
                                                trials=("trials", "mean")).round(3).to_string())


if __name__ == "__main__":
    main()
