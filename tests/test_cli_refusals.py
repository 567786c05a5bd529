"""Issue 12: bad command lines, as a hostile tester wrote them, are one `error:` line with exit 2, never a
traceback, a silent coercion or a silent drop, and they write nothing (no store, no folder, no upload)."""

from __future__ import annotations

import sqlite3

import pytest
from typer.testing import CliRunner

from engine.cli import app

runner = CliRunner()

SWEEP_REFUSALS = [
    (["--epsilon", "-1"], "--epsilon must be > 0"),
    (["--epsilon", "0"], "--epsilon must be > 0"),
    (["--epsilon", "nan"], "finite"),
    (["--epsilon", "one"], "--epsilon must be comma-separated numbers"),
    (["--epsilon", "1,,2"], "--epsilon has an empty value between commas"),
    (["--epsilon", "1,"], "--epsilon has an empty value between commas"),
    (["--bogus", "3"], "No such option: --bogus"),
    (["--epochs"], "requires an argument"),
    (["--clip", "0"], "--clip must be > 0"),
    (["--seeds", "-1"], "--seeds must be >= 0"),
    (["--seeds", "1.5"], "--seeds must be comma-separated whole numbers"),
    (["--epochs", "0"], "--epochs must be >= 1"),
    (["--epochs", "2.7"], "--epochs"),
    (["--batch-size", "0"], "--batch-size must be >= 1"),
    (["--lr", "0"], "--lr must be <= 10 and > 0"),
    (["--lr", "-0.1"], "--lr must be <= 10 and > 0"),
    (["--delta", "1"], "--delta"),
    (["--delta", "0.01"], "not below 1/n"),
    (["--accountant", "gdp"], "Unknown --accountant 'gdp'"),
    (["--model", "resnet"], "--model"),
    (["--model", "cnn"], "cnn"),  # a table is not an image
    (["--dataset", "nope"], "Unknown dataset 'nope'"),
    (["--dataset", "../etc/passwd"], "Unknown dataset"),
    (["--technique", "dp-magic"], "Unknown technique 'dp-magic'"),
    (["--technique", ""], "--technique"),
    (["--device", "tpu"], "Unknown --device"),
    (["--subsample", "100000"], "is not smaller than"),
    (["--subsample", "1"], "--subsample"),
    (["--technique", "dp-sgd", "--clients", "3"], "--clients does not apply to dp-sgd"),
    (["--technique", "baseline", "--rounds", "3"], "--rounds does not apply to baseline"),
    (["--technique", "fedavg", "--mu", "0.1"], "--mu does not apply to fedavg"),
    (["--technique", "fedavg", "--dropout", "1"], "--dropout"),
    (["--technique", "dp-logreg", "--class-weighting", "balanced", "--positive-share", "0.3"], "torch techniques"),
    (["--class-weighting", "sometimes"], "--class-weighting"),
    (["--positive-share", "1.5", "--class-weighting", "balanced"], "--positive-share"),
    (["--workers", "0"], "--workers"),
    (["--workers", "many"], "--workers"),
    (["--config", "/nonexistent/spec.yaml"], "spec.yaml"),
]


def _one_error_line(result, message: str) -> None:
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 2, (result.exit_code, result.output)
    assert "Traceback" not in result.output
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], result.output


@pytest.mark.parametrize("args, message", SWEEP_REFUSALS, ids=[" ".join(a) for a, _ in SWEEP_REFUSALS])
def test_a_bad_sweep_is_one_line_and_writes_nothing(args, message, isolated_store):
    base = ["sweep", "--dataset", "german-credit", "--quiet"] if "--dataset" not in args else ["sweep", "--quiet"]
    _one_error_line(runner.invoke(app, [*base, *args]), message)
    assert not isolated_store.exists() and not isolated_store.parent.exists()


@pytest.mark.parametrize("yaml_text, message", [
    ("dataset: german-credit\nsecure_aggregation: \"no\"\ntechniques: [fedavg]\n", "must be true or false"),
    ("dataset: german-credit\nbatch_size: true\n", "--batch-size must be a whole number"),
    ("dataset: german-credit\nepochs: 2.7\n", "--epochs must be a whole number"),
    ("dataset: [a, b]\n", "--dataset must be text"),
    ("dataset: german-credit\nepsilom: [1]\n", "epsilom"),
    ("- just\n- a list\n", "mapping"),
    ("dataset: german-credit\n  bad: indent\n", "YAML"),
    ("", "empty"),
])
def test_a_bad_yaml_spec_is_one_line_and_writes_nothing(yaml_text, message, isolated_store, tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml_text)
    _one_error_line(runner.invoke(app, ["sweep", "--config", str(spec), "--quiet"]), message)
    assert not isolated_store.exists() and not isolated_store.parent.exists()


@pytest.mark.parametrize("command", [
    ["results"], ["frontier"], ["export", "0123456789abcdef0123", "--out", "OUT"], ["verify"],
    ["audit", "0123456789abcdef0123"],
])
def test_reading_commands_on_a_missing_or_broken_store_are_one_line(command, isolated_store, tmp_path):
    args = [part if part != "OUT" else str(tmp_path / "out") for part in command]
    _one_error_line(runner.invoke(app, args), "")  # no store yet
    assert not isolated_store.exists()
    broken = tmp_path / "broken.sqlite"
    broken.write_bytes(b"this is not a database" * 100)
    result = runner.invoke(app, [*args, "--store", str(broken)])
    _one_error_line(result, "")
    assert broken.read_bytes() == b"this is not a database" * 100  # left as it was
    assert not (tmp_path / "out").exists()


def test_an_unknown_run_id_is_one_line(isolated_store, tmp_path):
    isolated_store.parent.mkdir(parents=True)
    sqlite3.connect(isolated_store).close()  # an empty SQLite file: a store with no runs
    for command in (["export", "0123456789abcdef0123", "--out", str(tmp_path / "out")],
                    ["audit", "0123456789abcdef0123"]):
        _one_error_line(runner.invoke(app, command), "")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("args, message", [
    (["/nonexistent/file.csv", "--label", "y"], "file.csv"),
    (["FILE", "--label", "no-such-column"], "no-such-column"),
    (["FILE"], "--label"),
    (["FILE", "--label", "y", "--name", "Bad Name!"], "name"),
    (["FILE", "--label", "y", "--undeclared", "maybe"], "got 'maybe'"),
    (["FILE", "--label", "y", "--preprocessing-epsilon", "-1"], "preprocessing epsilon must be a positive number"),
])
def test_a_bad_upload_is_one_line_and_writes_nothing(args, message, isolated_store, tmp_path):
    table = tmp_path / "table.csv"
    table.write_text("x,group,y\n" + "".join(f"{i % 7},{'ab'[i % 2]},{i % 3 == 0}\n" for i in range(60)))
    result = runner.invoke(app, ["upload", *[str(table) if part == "FILE" else part for part in args]])
    _one_error_line(result, message)
    assert not isolated_store.parent.exists()


# --- a fuzz over sweep specs: any mapping of known and unknown keys to any plain values is a SweepSpec or one
# ConfigError line; an accepted spec round-trips through its own mapping -----------------------------------------
from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

from engine.errors import ConfigError  # noqa: E402
from engine.runner.spec import all_settings, spec_from_mapping  # noqa: E402

_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=True),
                     st.text(max_size=12), st.sampled_from(["adult", "heart", "dp-sgd", "fedavg", "iid", "prv", "1e-5",
                                                            "true", "no", "0,1", ""]))
_VALUES = st.one_of(_SCALARS, st.lists(_SCALARS, max_size=4), st.dictionaries(st.text(max_size=4), _SCALARS, max_size=2))
_KEYS = st.one_of(st.sampled_from(sorted(all_settings())), st.text(max_size=10))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(_KEYS, _VALUES, max_size=6))
def test_fuzzed_sweep_specs_are_a_spec_or_one_config_error(values):
    try:
        spec = spec_from_mapping(values)
    except ConfigError as exc:
        message = exc.describe(lambda name: f"--{name}")
        assert message and "\n" not in message and "Traceback" not in message
        return
    spec.validate()
    assert spec_from_mapping(spec.to_mapping()) == spec  # what is accepted is written back as read
