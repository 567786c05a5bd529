"""Size-aware training defaults against the old fixed ones (batch 512, 10 epochs) on small tables: dp-sgd at
epsilon 1 and the non-private baseline, 3 seeds, balanced accuracy on the test rows beside the trivial answer.

Command: .venv/bin/python benchmarks/bench_defaults.py [--datasets german-credit,heart] [--epsilon 1]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import pandas as pd

from engine import services
from engine.runner.spec import spec_from_mapping
from engine.workspace import Workspace


def measure(dataset: str, epsilon: float, sizes: dict, folder: Path) -> pd.DataFrame:
    workspace = Workspace.at(folder / f"{dataset}-{'fixed' if sizes else 'sized'}.sqlite")
    spec = spec_from_mapping({"dataset": dataset, "techniques": ["baseline", "dp-sgd"], "epsilons": [epsilon],
                              "seeds": [0, 1, 2], **sizes})
    services.run(services.plan(spec, workspace), workspace, device="cpu")
    runs = services.read_runs(workspace)
    runs = runs[runs["status"] == "ok"]
    return runs.assign(defaults="old: batch 512, 10 epochs" if sizes else "size-aware")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--datasets", default="german-credit,heart")
    parser.add_argument("--epsilon", type=float, default=1.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        frames = [measure(dataset, args.epsilon, sizes, Path(folder)) for dataset in args.datasets.split(",")
                  for sizes in ({"batch_size": 512, "epochs": 10}, {})]
    runs = pd.concat(frames)
    table = runs.groupby(["dataset", "defaults", "technique", "batch_size", "epochs"]).agg(
        balanced_accuracy=("balanced_accuracy", "mean"), spread=("balanced_accuracy", "std"),
        roc_auc=("roc_auc", "mean"), epsilon=("epsilon", "max")).round(3)
    print(table.to_string())
    print("trivial balanced accuracy (always the commonest class): 0.5")


if __name__ == "__main__":
    main()
