"""Class-weighted loss for the torch techniques (issue 11): declared once, public shares only, own cache keys."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
from sklearn.metrics import balanced_accuracy_score, recall_score
from typer.testing import CliRunner

from engine import ENGINE_VERSION
from engine.cli import app
from engine.config import RunConfig
from engine.data import get_dataset_info, load_dataset
from engine.errors import ConfigError
from engine.federated.local import ClientData, LocalOptions, LoopTrainer, ParamLayout, VectorisedTrainer
from engine.models import build_model
from engine.models.loss import cross_entropy
from engine.runner import plan as planning
from engine.runner.plan import spec_for_run
from engine.techniques import scoring_tap
from engine.techniques.base import RunContext
from engine.techniques.class_weights import class_weights
from engine.techniques.registry import create_technique
from engine_support import expand, make_spec

runner = CliRunner()


# --- declaration: CLI, YAML, refusals ----------------------------------------------------------------------------
def test_the_settings_are_cli_flags_and_yaml_keys():
    result = runner.invoke(app, ["sweep", "--help"], terminal_width=200)
    assert "--class-weighting" in result.output and "--positive-share" in result.output
    spec = make_spec(dataset="german-credit", techniques=["baseline"], class_weighting="balanced",
                     positive_share=0.08)
    assert (spec.class_weighting, spec.positive_share) == ("balanced", 0.08)
    assert spec.to_mapping()["class_weighting"] == "balanced"


@pytest.mark.parametrize("values, setting, words", [
    ({"class_weighting": "yes"}, "class_weighting", "choose one of none, balanced"),
    ({"class_weighting": True}, "class_weighting", "must be text"),
    ({"class_weighting": "balanced", "positive_share": 1.5}, "positive_share", "must be > 0 and < 1"),
    ({"class_weighting": "balanced", "positive_share": "8%"}, "positive_share", "must be a number"),
    ({"positive_share": 0.1}, "positive_share", "set class_weighting to balanced"),
    ({"class_weighting": "balanced", "techniques": ["dp-logreg", "dp-forest"]}, "class_weighting",
     "applies to torch techniques only"),
    ({"class_weighting": "balanced", "dataset": "mnist", "techniques": ["baseline"]}, "class_weighting",
     "label.class_shares"),
])
def test_wrong_values_are_one_line_errors_naming_the_setting(values, setting, words):
    with pytest.raises(ConfigError) as caught:
        spec = make_spec(**{"dataset": "german-credit", "techniques": ["baseline"], **values})
        planning.expand(spec, get_dataset_info(spec.dataset), 700)  # (mnist's rows are not needed to refuse it)
    assert caught.value.setting == setting and words in str(caught.value) and "\n" not in str(caught.value)


def test_the_cli_refuses_a_non_torch_technique_in_one_line(isolated_store):
    result = runner.invoke(app, ["sweep", "--dataset", "german-credit", "--technique", "dp-logreg",
                                 "--class-weighting", "balanced", "--quiet"])
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code != 0 and len(lines) == 1 and "--class-weighting applies to torch techniques" in lines[0]


# --- identity: cache keys and points ------------------------------------------------------------------------------
def test_unweighted_runs_keep_their_keys_and_weighted_runs_are_other_points():
    base = dict(dataset="german-credit", techniques=["baseline", "dp-sgd", "dp-logreg"], epsilons=[1], seeds=[0])
    plain, none = expand(make_spec(**base)), expand(make_spec(**base, class_weighting="none"))
    weighted = expand(make_spec(**base, class_weighting="balanced"))
    assert all(not {"class_weighting", "class_shares", "class_shares_source"} & set(c.point_dict()) for c in plain)
    keys = [[c.cache_key("f", ENGINE_VERSION) for c in configs] for configs in (plain, none, weighted)]
    assert keys[0] == keys[1]  # "none" is the unset default: the same runs
    by_technique = {c.technique: c for c in weighted}
    assert by_technique["dp-logreg"].class_weighting is None  # not a torch technique: untouched, same key
    assert keys[2][2] == keys[0][2] and keys[2][0] != keys[0][0] and keys[2][1] != keys[0][1]
    assert plain[0].point_key("f", ENGINE_VERSION) != weighted[0].point_key("f", ENGINE_VERSION)
    # The catalogue's published rate (german-credit: 30% bad) is the public share; the run records its source.
    assert (by_technique["baseline"].class_shares, by_technique["baseline"].class_shares_source) == ("0.7,0.3",
                                                                                                     "catalogue")
    declared = expand(make_spec(**base, class_weighting="balanced", positive_share=0.08))[0]
    assert (declared.class_shares, declared.class_shares_source) == ("0.92,0.08", "setting")
    assert class_weights(declared) == pytest.approx((0.08 / 0.92, 1.0))
    info = get_dataset_info("german-credit")
    for config in (by_technique["baseline"], by_technique["dp-sgd"], declared):  # a point is retrained as itself
        assert expand(spec_for_run(config, info)) == [config]
        assert RunConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config


# --- the loss ------------------------------------------------------------------------------------------------------
def test_weighted_loss_is_a_per_row_mean_independent_of_the_other_rows():
    scores, labels = torch.randn(6, 2), torch.tensor([0, 0, 0, 0, 1, 1])
    weights = (0.25, 1.0)
    rows = torch.nn.functional.cross_entropy(scores, labels, reduction="none") * torch.tensor(weights)[labels]
    assert cross_entropy(weights)(scores, labels).item() == pytest.approx(rows.mean().item())
    # Row 0's share of the batch loss does not change when the other rows' labels do (torch's weighted mean would).
    first = cross_entropy(weights)(scores, labels) - rows[1:].sum() / 6
    flipped = labels.clone()
    flipped[1:] = 1
    rows_flipped = torch.nn.functional.cross_entropy(scores, flipped, reduction="none") * torch.tensor(weights)[flipped]
    again = cross_entropy(weights)(scores, flipped) - rows_flipped[1:].sum() / 6
    assert again.item() == pytest.approx(first.item(), abs=1e-6)
    assert cross_entropy(None)(scores, labels).item() == pytest.approx(
        torch.nn.functional.cross_entropy(scores, labels).item())


def test_federated_trainers_agree_on_the_weighted_loss():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(60, 5)).astype(np.float32), (rng.random(60) < 0.2).astype(np.int64)
    model = build_model("mlp", n_features=5, n_classes=2, hidden_units=8, is_image=False)
    layout = ParamLayout(model)
    data = ClientData(x, y, [np.arange(0, 30), np.arange(30, 60)])
    start = layout.model_vector(model)
    options = LocalOptions(epochs=2, batch_size=8, learning_rate=0.01, class_weights=(0.25, 1.0))
    loop = LoopTrainer(model, layout).train(start, [0, 1], data, options, seed=0, round_index=0)
    vectorised = VectorisedTrainer(model, layout).train(start, [0, 1], data, options, seed=0, round_index=0)
    plain = LoopTrainer(model, layout).train(start, [0, 1], data, dataclasses.replace(options, class_weights=None),
                                             seed=0, round_index=0)
    assert np.allclose(loop, vectorised, atol=1e-4) and not np.allclose(loop, plain, atol=1e-4)


# --- what it changes, on an 8%-positive table ----------------------------------------------------------------------
def imbalanced_credit(share: float = 0.08, negatives: int = 1500, seed: int = 7, test_fraction: int = 2):
    """The credit table with positives subsampled to `share` (train and test: 1/`test_fraction` as many negatives),
    validation rows carved out. benchmarks/bench_class_weights.py uses it too."""
    data, rng = load_dataset("credit"), np.random.default_rng(seed)

    def pick(x, y, n):
        negative = rng.choice(np.flatnonzero(y == 0), n, replace=False)
        positive = rng.choice(np.flatnonzero(y == 1), int(round(n * share / (1 - share))), replace=False)
        rows = np.sort(np.concatenate([negative, positive]))
        return x[rows], y[rows]

    (x_train, y_train), (x_test, y_test) = pick(data.x_train, data.y_train, negatives), pick(data.x_test, data.y_test,
                                                                                              negatives // test_fraction)
    return dataclasses.replace(data, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test,
                               fingerprint="imbalanced-credit").with_validation()


def arg_max_scores(technique: str, config: RunConfig, data) -> tuple[float, float, float]:
    """(balanced accuracy and rare-class recall at the model's arg-max, mean rare-class score) on the test rows."""
    seen = []
    with scoring_tap.listening(seen.append):
        create_technique(technique).run(config, data, context=RunContext(device="cpu"))
    scores = seen[-1]
    decisions = scores.argmax(axis=1)
    return (balanced_accuracy_score(data.y_test, decisions), recall_score(data.y_test, decisions),
            float(scores[:, 1].mean()))


@pytest.mark.parametrize("technique, epsilon", [("baseline", None), ("dp-sgd", 4.0)])
def test_balanced_weighting_lifts_the_rare_class_on_an_imbalanced_table(technique, epsilon):
    data = imbalanced_credit()
    assert 0.07 < data.y_train.mean() < 0.09
    # RDP: calibrating the noise is several times faster than PRV, and what is tested here is the loss.
    private = dict(target_epsilon=epsilon, max_grad_norm=1.0, delta=1e-5, accountant="rdp") if epsilon else {}
    weighted = dict(class_weighting="balanced", class_shares="0.92,0.08", class_shares_source="setting")
    results = {}
    for name, weighting in (("plain", {}), ("balanced", weighted)):
        runs = [arg_max_scores(technique, RunConfig(
            dataset="credit", technique=technique, model="mlp", seed=seed, epochs=20, batch_size=100,
            learning_rate=5e-3, hidden_units=32, **private, **weighting), data) for seed in range(3)]
        results[name] = np.mean(runs, axis=0)  # (balanced accuracy, recall, mean rare score) over seeds
    plain, balanced = results["plain"], results["balanced"]
    # Unweighted, the rare class is almost never the arg-max and gets a small score; weighted, its score rises.
    assert balanced[2] > 2 * plain[2]
    if technique == "baseline":
        assert balanced[1] > plain[1] + 0.2 and balanced[0] > plain[0] + 0.05
    else:  # DP-SGD clips each row's gradient to C = 1: the rare rows' pull is capped, the gain at the arg-max small
        assert balanced[0] >= plain[0] - 0.005 and balanced[1] >= plain[1]


def test_a_weighted_run_records_its_shares_source_and_weights(isolated_store):
    args = ["sweep", "--dataset", "breast-cancer", "--technique", "baseline,dp-sgd", "--epsilon", "2", "--seeds", "0",
            "--epochs", "1", "--batch-size", "64", "--accountant", "rdp", "--device", "cpu", "--quiet"]
    assert runner.invoke(app, args).exit_code == 0
    weighted = runner.invoke(app, [*args, "--class-weighting", "balanced", "--positive-share", "0.4"])
    assert weighted.exit_code == 0 and "2 runs, 0 cached, 2 to train" in weighted.output  # other runs, other keys
    records = json.loads(runner.invoke(app, ["results", "--format", "json"]).output)
    assert len(records) == 4 and len({r["point_id"] for r in records}) == 4
    for record in records:
        extra = record["extra"] if isinstance(record["extra"], dict) else json.loads(record["extra"] or "{}")
        if record["class_weighting"] is None:
            assert record["class_shares"] is None and "class_weights" not in extra
        else:
            assert (record["class_weighting"], record["class_shares"], record["class_shares_source"]) == (
                "balanced", "0.6,0.4", "setting")
            assert extra["class_weights"] == pytest.approx([0.4 / 0.6, 1.0], abs=1e-6)
    private = [r for r in records if r["technique"] == "dp-sgd"]
    assert all(r["epsilon"] <= 2.0 for r in private)  # public shares: the weighting spends no privacy
