"""Uploads are portable (issue 11 item 7): `frontier upload` registers a CSV from a schema, an export of a run on an
upload carries that schema and the table's fingerprint, and another store reproduces the run id from the same CSV
while refusing a different one, in one line, writing nothing."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from engine.cli import app
from engine.data import get_dataset_info
from engine.data.uploads.schema import ColumnSchema, UploadSchema, read_schema, schema_from_yaml, schema_of, schema_yaml

ROOT = Path(__file__).resolve().parents[1]
COLUMNS = ["duration_in_month", "credit_amount", "age_in_years", "housing", "purpose", "credit_history", "credit_risk"]
SCHEMA = """\
name: credit-upload
label: credit_risk
positive: "2"
columns:
  duration_in_month: {bounds: [1, 72]}   # public: the bank's longest term
  credit_amount: {}                      # undeclared: a DP estimate of its bounds
  age_in_years: {bounds: [18, 100]}
  housing: {categories: [A151, A152, A153]}
  purpose: {}                            # undeclared: a DP estimate of its values
preprocessing_epsilon: 2                 # for those two estimates (400 rows: the default 0.1 would keep no purpose)
"""
runner = CliRunner()


def frontier(*args: str):
    return runner.invoke(app, [str(arg) for arg in args])


def one_line_error(result) -> str:
    """The CLI's refusal: exit 2 and exactly one line of output."""
    lines = result.output.strip().splitlines()
    assert result.exit_code == 2 and len(lines) == 1 and lines[0].startswith("error: "), result.output
    return lines[0]


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """credit.csv: 400 rows of the bundled German credit table plus an e-mail column (an identifier) and a zip_code
    (a quasi-identifier, flagged by its name); other.csv: the same with one age changed; schema.yaml: SCHEMA."""
    folder = tmp_path_factory.mktemp("csv")
    table = pd.read_parquet(ROOT / "datasets" / "german_credit.parquet").head(400)[COLUMNS]
    table.insert(0, "email", [f"applicant{i}@example.com" for i in range(len(table))])
    table.insert(1, "zip_code", [10000 + 111 * (i % 7) for i in range(len(table))])
    table.to_csv(folder / "credit.csv", index=False)
    table.assign(age_in_years=table["age_in_years"].where(table.index != 0, 99)).to_csv(folder / "other.csv", index=False)
    (folder / "schema.yaml").write_text(SCHEMA)
    return {"credit": folder / "credit.csv", "other": folder / "other.csv", "schema": folder / "schema.yaml",
            "folder": folder}


@pytest.fixture(scope="module")
def exported(files, tmp_path_factory) -> dict:
    """On one machine: upload + sweep (baseline and dp-logreg, 2 epochs) + export of the dp-logreg run."""
    store = tmp_path_factory.mktemp("machine-a") / "results.sqlite"
    uploaded = frontier("upload", files["credit"], "--schema", files["schema"], "--store", store)
    assert uploaded.exit_code == 0, uploaded.output
    swept = frontier("sweep", "--dataset", "credit-upload", "--technique", "baseline,dp-logreg", "--epsilon", "1",
                     "--seeds", "0", "--epochs", "2", "--store", store, "--quiet")
    assert swept.exit_code == 0 and "2 trained" in swept.output, swept.output
    run_id = next(line for line in swept.output.splitlines() if line.startswith("run ids: ")).split()[-1]
    out = store.parent / "export"
    result = frontier("export", run_id, "--out", out, "--store", store)
    assert result.exit_code == 0 and "warning" not in result.output, result.output
    return {"store": store, "upload_output": uploaded.output, "run_id": run_id, "config": out / "config.yaml",
            "fingerprint": get_dataset_info("credit-upload", store.parent / "datasets").fingerprint}


def test_upload_prints_name_fingerprint_and_what_was_kept_and_dropped(exported):
    output = exported["upload_output"]
    assert f"registered credit-upload (fingerprint {exported['fingerprint']})" in output
    assert "kept 5 column(s): duration_in_month, credit_amount, age_in_years, housing, purpose" in output
    assert "dropped as identifiers (never stored): email, zip_code" in output and "dropped: credit_history" in output
    assert "not covered by epsilon): none" in output
    assert "estimated with DP (epsilon 2, composed into every run on it): credit_amount, purpose" in output
    stored = pd.read_parquet(exported["store"].parent / "datasets" / "credit-upload" / "data.parquet")
    assert "email" not in stored and "credit_history" not in stored  # dropped columns never touch the disk


def test_the_export_names_the_table_by_fingerprint_and_carries_only_declared_values(exported):
    config = yaml.safe_load(exported["config"].read_text())
    assert config["sweep"]["dataset"] == "credit-upload" and config["sweep"]["techniques"] == ["dp-logreg"]
    info = get_dataset_info("credit-upload", exported["store"].parent / "datasets")
    carried = config["upload"]
    assert {key: carried[key] for key in ("name", "label", "positive", "undeclared", "preprocessing_epsilon", "fingerprint")} == {
        "name": "credit-upload", "label": "credit_risk", "positive": "2", "undeclared": "dp",
        "preprocessing_epsilon": 2.0, "fingerprint": exported["fingerprint"]}
    # Declared values as declared; the DP estimates as released, with the release that drew them; no min/max.
    assert carried["columns"] == {
        "duration_in_month": {"bounds": [1.0, 72.0]}, "credit_amount": {"dp_bounds": info.numeric["credit_amount"]["bounds"]},
        "age_in_years": {"bounds": [18.0, 100.0]}, "housing": {"categories": ["A151", "A152", "A153"]},
        "purpose": {"dp_categories": info.categorical["purpose"]}}
    assert carried["preprocessing_privacy"]["epsilon"] == 2.0 and carried["preprocessing_privacy"]["delta"] == 1e-6
    low, high = info.numeric["credit_amount"]["bounds"]
    assert math.log2(high).is_integer() and (low, high) != (250.0, 18424.0)  # a power-of-two ladder, not min/max


def test_the_export_reproduces_the_run_id_on_a_fresh_store_from_the_same_csv(exported, files, tmp_path):
    fresh = tmp_path / "machine-b" / "results.sqlite"
    before = frontier("sweep", "--config", exported["config"], "--store", fresh, "--quiet")
    assert "register the same CSV first: frontier upload FILE.csv --schema" in one_line_error(before)
    assert not fresh.parent.exists()
    uploaded = frontier("upload", files["credit"], "--schema", exported["config"], "--store", fresh)
    assert uploaded.exit_code == 0 and exported["fingerprint"] in uploaded.output, uploaded.output
    swept = frontier("sweep", "--config", exported["config"], "--store", fresh, "--quiet")
    assert swept.exit_code == 0, swept.output
    assert "1 trained, 0 cached" in swept.output and f"run ids: {exported['run_id']}" in swept.output
    again = frontier("sweep", "--config", exported["config"], "--store", fresh, "--quiet")
    assert "0 trained, 1 cached" in again.output and f"run ids: {exported['run_id']}" in again.output


def test_a_different_csv_is_refused_in_one_line_and_nothing_is_written(exported, files, tmp_path):
    fresh = tmp_path / "machine-c" / "results.sqlite"
    line = one_line_error(frontier("upload", files["other"], "--schema", exported["config"], "--store", fresh))
    assert f"expected fingerprint {exported['fingerprint']}, found " in line and "other.csv" in line
    assert "Use the CSV the runs were trained on" in line
    assert not fresh.parent.exists()


def test_a_store_holding_other_data_under_that_name_is_refused_before_training(exported, files, tmp_path):
    store = tmp_path / "machine-d" / "results.sqlite"
    assert frontier("upload", files["other"], "--schema", files["schema"], "--store", store).exit_code == 0
    line = one_line_error(frontier("sweep", "--config", exported["config"], "--store", store, "--quiet"))
    assert f"expected fingerprint {exported['fingerprint']}, found " in line and "--replace" in line
    assert not store.exists()  # refused before the store was made


@pytest.mark.parametrize("text, message", [
    ("label: credit_risk\ncolums: {purpose: {}}\n", "Unknown key(s) colums in"),
    ("label: credit_risk\npositive: 2\n", 'positive must be text, got 2 (quote it: "2")'),
    ("label: credit_risk\ncolumns: [purpose, housing]\n", "columns must map each kept column"),
    ("label: credit_risk\ncolumns: {age_in_years: {bound: [18, 100]}}\n", "Unknown key(s) bound in"),
    ("label: credit_risk\ncolumns: {age_in_years: {bounds: [18]}}\n", "bounds must be two finite numbers"),
    ("label: credit_risk\ncolumns: {age_in_years: {bounds: [100, 18]}}\n", "bounds must have low < high"),
    ("label: credit_risk\ncolumns: {age_in_years: {bounds: [yes, 100]}}\n", "bounds must be two finite numbers"),
    ("label: credit_risk\ncolumns: {housing: {categories: A151}}\n", "categories must be a non-empty list"),
    ("label: credit_risk\ncolumns: {housing: {categories: [A151, 3]}}\n", "categories must be text, got 3"),
    ("label: credit_risk\nkeep_identifiers: email\n", "keep_identifiers must be a list"),
    ("- label\n- credit_risk\n", "must be a mapping"),
    ("label: [credit_risk\n", "is not valid YAML"),
    ("label: credit_risk\ncolumns: {housing: {bounds: [0, 1]}}\n", "not a kept numeric column"),
    ("label: credit_risk\ncolumns: {age_in_years: {categories: [a]}}\n", "not a kept text column"),
    ("label: credit_risk\ncolumns: {email: {}}\n", "Column 'email' looks like an identifier"),
    ("label: credit_risk\ncolumns: {salary: {}}\n", "Column(s) 'salary' of the schema are not in credit.csv"),
])
def test_bad_schemas_are_refused_in_one_line_and_nothing_is_written(files, tmp_path, text, message):
    schema = tmp_path / "schema.yaml"
    schema.write_text(text)
    store = tmp_path / "store" / "results.sqlite"
    line = one_line_error(frontier("upload", files["credit"], "--schema", schema, "--name", "loans-x", "--store", store))
    assert message in line
    assert not store.parent.exists()


def test_missing_label_and_missing_file_are_one_line_errors(files, tmp_path):
    store = tmp_path / "store" / "results.sqlite"
    assert "--label COLUMN" in one_line_error(frontier("upload", files["credit"], "--store", store))
    assert "is not a file" in one_line_error(frontier("upload", tmp_path / "nope.csv", "--label", "x", "--store", store))
    assert not store.parent.exists()


def test_an_identifier_is_kept_only_when_the_schema_says_so_and_the_export_repeats_it(files, tmp_path):
    schema = tmp_path / "schema.yaml"
    store = tmp_path / "store" / "results.sqlite"
    schema.write_text("label: credit_risk\nundeclared: data\ncolumns: {zip_code: {}, purpose: {}, age_in_years: {}}\n")
    line = one_line_error(frontier("upload", files["credit"], "--schema", schema, "--name", "with-zip", "--store", store))
    assert "Column 'zip_code' looks like an identifier" in line and "keep_identifiers" in line
    schema.write_text(schema.read_text() + "keep_identifiers: [zip_code]\n")
    result = frontier("upload", files["credit"], "--schema", schema, "--name", "with-zip", "--store", store)
    assert result.exit_code == 0 and "kept 3 column(s): zip_code, age_in_years, purpose" in result.output, result.output
    assert schema_of(get_dataset_info("with-zip", store.parent / "datasets")).keep_identifiers == ("zip_code",)


def test_label_only_upload_keeps_everything_but_identifiers_and_its_schema_round_trips(files, tmp_path):
    uploads = tmp_path / "store" / "datasets"
    result = frontier("upload", files["credit"], "--label", "credit_risk", "--name", "credit-all", "--undeclared", "data",
                      "--store", uploads.parent / "results.sqlite")
    assert result.exit_code == 0 and "label credit_risk = 2" in result.output, result.output  # the rarer class
    schema = schema_of(get_dataset_info("credit-all", uploads))
    assert set(schema.columns) == set(COLUMNS) - {"credit_risk"} and all(
        c == ColumnSchema() for c in schema.columns.values())  # nothing declared public, no value read from the rows
    assert schema.undeclared == "data" and schema.preprocessing_privacy is None
    assert schema_from_yaml(schema_yaml(schema), "schema.yaml") == schema
    assert read_schema(schema.to_mapping()) == schema and read_schema({}) == UploadSchema()


def test_the_data_page_offers_an_uploads_schema_for_download(files, isolated_store):
    from streamlit.testing.v1 import AppTest

    assert frontier("upload", files["credit"], "--schema", files["schema"]).exit_code == 0  # into $FRONTIER_STORE
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.run()
    at.switch_page("views/data.py").run()
    assert not at.exception, [exception.value for exception in at.exception]
    assert at.selectbox(key="data_schema_name").value == "credit-upload"
    assert [button.label for button in at.get("download_button")] == ["Download schema.yaml"]
    assert any("registers the same CSV as 'credit-upload'" in caption.value for caption in at.caption)


def test_declared_categories_are_used_as_written_and_values_outside_them_are_reported(files, tmp_path):
    schema = tmp_path / "schema.yaml"
    schema.write_text("label: credit_risk\ncolumns: {age_in_years: {}, housing: {categories: [A151, A152]}}\n")
    store = tmp_path / "store" / "results.sqlite"
    result = frontier("upload", files["credit"], "--schema", schema, "--name", "housing", "--store", store)
    assert result.exit_code == 0, result.output
    assert "row(s) of 'housing' hold values outside its declared categories" in result.output
    info = get_dataset_info("housing", store.parent / "datasets")
    assert info.categorical == {"housing": ["A151", "A152"]} and info.data_derived_columns == ()
    assert info.dp_estimated_columns == ("age_in_years",) and info.preprocessing_privacy["epsilon"] == 0.1
    stored = pd.read_parquet(Path(info.folder) / "data.parquet")
    assert set(stored["housing"].dropna()) == {"A151", "A152"}  # A153, typed by nobody, is not stored
