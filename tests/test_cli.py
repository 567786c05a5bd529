"""The `frontier` command, as a person would use it."""

import json

from typer.testing import CliRunner

from engine.cli import app

runner = CliRunner()
QUICK_ARGS = ["--dataset", "breast-cancer", "--technique", "baseline,dp-sgd", "--epsilon", "1,4", "--clip", "1",
              "--seeds", "0", "--epochs", "2", "--batch-size", "64", "--accountant", "rdp", "--device", "cpu", "--quiet"]


def test_datasets_lists_the_catalogue():
    result = runner.invoke(app, ["datasets"])
    assert result.exit_code == 0
    for name in ("adult", "credit", "german-credit", "heart", "mnist", "breast-cancer"):
        assert name in result.output
    cards = json.loads(runner.invoke(app, ["datasets", "--format", "json"]).output)
    assert {"name", "licence", "provenance", "sensitive_columns", "rows"} <= set(cards[0])


def test_sweep_results_and_frontier(isolated_store):
    first = runner.invoke(app, ["sweep", *QUICK_ARGS])
    assert first.exit_code == 0, first.output
    assert "3 runs, 0 cached, 3 to train" in first.output and "3 trained" in first.output
    second = runner.invoke(app, ["sweep", *QUICK_ARGS])
    assert "3 runs, 3 cached, 0 to train" in second.output and "0 trained, 3 cached" in second.output

    records = json.loads(runner.invoke(app, ["results", "--format", "json"]).output)
    assert len(records) == 3 and {r["technique"] for r in records} == {"baseline", "dp-sgd"}
    assert all(r["epsilon"] <= r["target_epsilon"] for r in records if r["technique"] == "dp-sgd")
    csv = runner.invoke(app, ["results", "--format", "csv"]).output
    assert csv.splitlines()[0].startswith("run_id,point_id,status") and len(csv.splitlines()) == 4
    table = runner.invoke(app, ["results"]).output
    assert "dp-sgd" in table and "rdp" in table

    front = runner.invoke(app, ["frontier", "--dataset", "breast-cancer"])
    assert front.exit_code == 0 and "baseline (breast-cancer, mlp, no privacy)" in front.output
    assert "rdp" in front.output and "1e-05" in front.output
    # breast-cancer's label is declared balanced (37% positive): the default metric is accuracy, beside the trivial
    # answer and whether each point learned.
    assert "accuracy on the validation rows" in front.output and "balanced_accuracy" not in front.output
    rows = json.loads(runner.invoke(app, ["frontier", "--dataset", "breast-cancer", "--all", "--format", "json"]).output)
    assert rows and all({"trivial", "learned", "accuracy_mean"} <= set(row) for row in rows)
    assert all(0.5 < row["trivial"] < 0.75 for row in rows)  # the commonest class's share of the validation rows


def test_sweep_reads_a_yaml_config_and_flags_override_it(tmp_path, isolated_store):
    config = tmp_path / "sweep.yaml"
    config.write_text("dataset: breast-cancer\ntechniques: [dp-sgd]\nepsilons: [2]\nclipping_norms: [1]\n"
                      "seeds: [0]\nepochs: 1\nbatch_size: 64\naccountant: rdp\n")
    result = runner.invoke(app, ["sweep", "--config", str(config), "--epsilon", "3", "--quiet", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    records = json.loads(runner.invoke(app, ["results", "--format", "json"]).output)
    assert [r["target_epsilon"] for r in records] == [3.0]


def test_bad_input_is_one_clear_line_nonzero_exit_and_nothing_written(isolated_store):
    for args, message in (
        (["--epsilon", "-1"], "--epsilon must be > 0"),
        (["--dataset", "nope"], "Unknown dataset 'nope'"),
        (["--technique", "dp-magic"], "Unknown technique 'dp-magic'"),
        (["--dataset", "german-credit", "--delta", "0.01"], "not below 1/n"),
        (["--epsilon", "one"], "--epsilon must be comma-separated numbers"),
        (["--device", "tpu"], "Unknown --device"),
    ):
        result = runner.invoke(app, ["sweep", *args])
        assert result.exit_code != 0, args
        lines = [line for line in result.output.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], (args, result.output)
        assert not isolated_store.exists() and not isolated_store.parent.exists()


def test_reading_a_missing_store_says_what_to_do(isolated_store):
    result = runner.invoke(app, ["results"])
    assert result.exit_code != 0 and "run `frontier sweep` first" in result.output
