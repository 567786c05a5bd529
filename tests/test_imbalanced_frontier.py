"""Issue 11's must-show: on an imbalanced upload (8% positive) where the non-private model learns, the default
private technique beats the trivial answer on balanced accuracy, the Frontier draws the trivial line, and a run at
the trivial rate is flagged "learned nothing" and never offered by Decide.

The table is 2,000 rows of Adult's training split with the positives thinned to 8%, uploaded as a user would, with
Adult's published bounds and category lists declared (public knowledge: nothing read from the rows).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.dummy import DummyClassifier

from engine import services
from engine.analysis.decide import DecisionConstraints, rank_candidates, rank_points
from engine.analysis.frontier import frontier_view
from engine.data import get_dataset_info
from engine.data.uploads.inspect import inspect_csv
from engine.data.uploads.register import register_upload
from engine.data.uploads.validate import UploadSpec
from engine.present.charts import frontier_figure
from engine.runner.spec import spec_from_mapping
from engine.techniques.base import RunResult, Technique
from engine.techniques.estimators import evaluate_estimator
from engine.techniques.registry import register_technique, unregister_technique
from engine.workspace import Workspace

ROOT = Path(__file__).resolve().parents[1]

ROWS, POSITIVE_SHARE = 2000, 0.08
NAME = "rare-income"


class _AlwaysMajority(Technique):
    """A 'private' technique that learns nothing: it always answers the training rows' commonest class."""

    uses_epsilon = True
    pure_dp = True
    fixed_model = "majority"

    def run(self, config, data, *, context, on_progress=None):
        model = DummyClassifier(strategy="most_frequent").fit(data.x_train, data.y_train)
        return RunResult(**evaluate_estimator(model, data), train_seconds=0.0, peak_memory_mb=0.0, device="cpu",
                         epsilon=config.target_epsilon)


def _rare_income_csv() -> bytes:
    adult = pd.read_parquet(ROOT / "datasets" / "adult.parquet")
    adult = adult[adult["split"] == "train"].drop(columns=["split"])
    positives = round(ROWS * POSITIVE_SHARE)
    rows = pd.concat([adult[adult["income"] == ">50K"].sample(positives, random_state=3),
                      adult[adult["income"] != ">50K"].sample(ROWS - positives, random_state=3)])
    return rows.sample(frac=1, random_state=3).to_csv(index=False).encode()


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    workspace = Workspace.at(tmp_path_factory.mktemp("imbalanced") / "results.sqlite")
    raw = _rare_income_csv()
    adult = get_dataset_info("adult")
    columns = inspect_csv(raw, "rare_income.csv").frame.columns
    register_upload(raw, inspect_csv(raw, "rare_income.csv"), UploadSpec(
        name=NAME, label_column="income", positive_class=">50K",
        drop_columns=tuple(c for c in columns if c not in adult.numeric and c not in adult.categorical and c != "income"),
        numeric_bounds={column: tuple(spec["bounds"]) for column, spec in adult.numeric.items()},
        declared_categories={column: tuple(values) for column, values in adult.categorical.items()}),
        uploads_dir=workspace.uploads_dir)
    register_technique("always-majority-test", _AlwaysMajority)
    try:
        # The defaults: no batch size, epochs or metric given, so they follow the table.
        spec = spec_from_mapping({"dataset": NAME, "techniques": ["baseline", "dp-sgd", "always-majority-test"],
                                  "epsilons": [1.0], "seeds": [0, 1]})
        report = services.run(services.plan(spec, workspace), workspace, device="cpu")
        assert report.failed == 0
        yield workspace, services.read_runs(workspace)
    finally:
        unregister_technique("always-majority-test")


def test_the_table_is_imbalanced_and_the_defaults_follow_its_size(swept):
    _, runs = swept
    dp_sgd = runs[runs["technique"] == "dp-sgd"].iloc[0]
    assert dp_sgd["trivial_accuracy"] == pytest.approx(1 - POSITIVE_SHARE, abs=0.02)
    assert dp_sgd["batch_size"] < 512 and dp_sgd["steps"] >= 300  # sized: not 512 x 10 epochs on 1,280 rows


def test_the_default_private_model_beats_the_trivial_answer_where_the_non_private_one_learns(swept):
    _, runs = swept
    mean = runs.groupby("technique")["balanced_accuracy"].mean()
    assert mean["baseline"] > 0.65  # the non-private model learns on this table
    assert mean["dp-sgd"] > 0.5 + 0.1  # DP-SGD at epsilon 1, default settings: a clear margin over always-majority
    assert np.allclose(runs.loc[runs["technique"] == "always-majority-test", "balanced_accuracy"], 0.5)


def test_the_frontier_draws_the_trivial_line_and_flags_the_run_that_learned_nothing(swept):
    workspace, runs = swept
    metric = services.default_metric(workspace, [NAME])
    assert metric == "balanced_accuracy"  # no balanced label declared: the metric that fits rare positives
    front, reference = frontier_view(runs, NAME, metric)
    learned = front.set_index("technique")["learned"]
    assert not learned["always-majority-test"] and learned["dp-sgd"]
    names = [trace.name for trace in frontier_figure(front, reference, metric).data]
    assert "always the commonest class: 0.500" in names and "learned nothing" in names


def test_decide_never_offers_the_run_that_learned_nothing_and_says_why(swept):
    _, runs = swept
    ranked = rank_candidates(runs, DecisionConstraints(dataset=NAME, metric="balanced_accuracy"))
    assert set(ranked["technique"]) == {"dp-sgd"}
    points = rank_points(runs, DecisionConstraints(dataset=NAME, metric="balanced_accuracy"))
    reasons = points.set_index("technique")["excluded"]
    assert reasons["always-majority-test"].startswith("learned nothing") and reasons["dp-sgd"] == ""
