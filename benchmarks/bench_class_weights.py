"""Class-weighted loss (issue 11): dp-sgd with and without `class_weighting: balanced`, 3 seeds, on german-credit,
heart and an 8%-positive table (credit with its positives subsampled). Balanced accuracy at the threshold chosen
on the validation rows (what runs report), ROC AUC, and balanced accuracy and rare-class recall at the model's
arg-max (what the weighting changes most directly).

Command: .venv/bin/python benchmarks/bench_class_weights.py [--epsilon 1] [--clip 1] [--seeds 0,1,2]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd
from sklearn.metrics import balanced_accuracy_score, recall_score

from engine.data import get_dataset_info
from engine.runner import plan as planning
from engine.runner.spec import spec_from_mapping
from engine.techniques import scoring_tap
from engine.techniques.base import RunContext
from engine.techniques.registry import create_technique

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from test_class_weights import imbalanced_credit as shared_imbalanced_credit  # noqa: E402

IMBALANCED = "credit, 8% positive"


class Noise(dict):
    """A NoiseCache in memory: seeds of one setting share their calibrated noise."""

    def get_noise(self, key):
        return self.get(key)

    def put_noise(self, key, value):
        self[key] = value


def imbalanced_credit(share: float = 0.08, negatives: int = 3000, seed: int = 7):
    """credit with its positives subsampled to `share` of the rows: the tests' table, at a benchmark's size."""
    return shared_imbalanced_credit(share, negatives, seed, test_fraction=3)


def measure(label: str, dataset: str, data, extra: dict, args, noise: Noise) -> list[dict]:
    rows = []
    for weighting in ("none", "balanced"):
        spec = spec_from_mapping({"dataset": dataset, "techniques": ["dp-sgd"], "epsilons": [args.epsilon],
                                  "clipping_norms": [args.clip], "seeds": args.seeds, "class_weighting": weighting,
                                  **(extra if weighting == "balanced" else {})})
        for config in planning.expand(spec, get_dataset_info(dataset), data.n_train):
            seen = []
            with scoring_tap.listening(seen.append):
                result = create_technique("dp-sgd").run(config, data, context=RunContext("cpu", noise_cache=noise))
            decisions = seen[-1].argmax(axis=1)
            rows.append({"dataset": label, "weighting": weighting, "shares": config.class_shares or "",
                         "batch, epochs": f"{config.batch_size}, {config.epochs}", "seed": config.seed,
                         "balanced_accuracy": result.balanced_accuracy, "roc_auc": result.roc_auc,
                         "argmax_balanced_accuracy": balanced_accuracy_score(data.y_test, decisions),
                         "argmax_rare_recall": recall_score(data.y_test, decisions), "epsilon": result.epsilon})
            print(rows[-1], flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epsilon", type=float, default=1.0)
    parser.add_argument("--clip", type=float, default=1.0)
    parser.add_argument("--seeds", default="0,1,2")
    args = parser.parse_args()
    args.seeds = [int(seed) for seed in args.seeds.split(",")]
    noise = Noise()
    rows = []
    for dataset in ("german-credit", "heart"):  # shares: the catalogue's published positive rate
        rows += measure(dataset, dataset, planning.prepared_data(dataset, None, None), {}, args, noise)
    rows += measure(IMBALANCED, "credit", imbalanced_credit(), {"positive_share": 0.08}, args, noise)
    runs = pd.DataFrame(rows)
    table = runs.groupby(["dataset", "weighting", "shares", "batch, epochs"], sort=False).agg(
        balanced_accuracy=("balanced_accuracy", "mean"), spread=("balanced_accuracy", "std"),
        roc_auc=("roc_auc", "mean"), argmax_balanced_accuracy=("argmax_balanced_accuracy", "mean"),
        argmax_rare_recall=("argmax_rare_recall", "mean"), max_epsilon=("epsilon", "max")).reset_index()
    table = table.round(3).astype(str)
    print("| " + " | ".join(table.columns) + " |\n|" + "---|" * len(table.columns))
    for _, row in table.iterrows():
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
