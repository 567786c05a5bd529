"""An upload's preprocessing reads nothing "public" from the rows (issue 10, item 5).

Bounds and category lists are typed (the Data page, a schema) or, left empty, either estimated with differential
privacy (the default: its epsilon is recorded on the table and composed into every run on it) or read from the rows
and listed as data-derived. A rare value held by one row is never stored or shown unless the user typed it.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest
from typer.testing import CliRunner

from engine import services
from engine.cli import app
from engine.data import get_dataset_info
from engine.data.uploads import dp_preprocessing
from engine.data.uploads.dp_preprocessing import dp_range
from engine.data.uploads.schema import ColumnSchema, UploadSchema, read_schema, schema_of, schema_yaml
from engine.errors import DataError
from engine.present.sentences import decision_sentences
from engine.privacy.composition import compose_runs
from engine.workspace import Workspace
from engine_support import make_spec

ROOT = Path(__file__).resolve().parents[1]
RARE = "ZZ-RARE-PATIENT-GROUP"
runner = CliRunner()


def _cohort(n: int = 3000, seed: int = 7) -> pd.DataFrame:
    """A small cohort: ages, incomes, a ward (3 common values) whose row 700 alone holds RARE, and an outcome."""
    rng = np.random.default_rng(seed)
    age = np.clip(rng.normal(48, 14, n), 18, 95).round()
    income = np.round(rng.lognormal(10.6, 0.5, n), -2)
    ward = rng.choice(["north", "south", "east"], n, p=[0.5, 0.3, 0.2]).astype(object)
    ward[700] = RARE
    risk = (age - 48) / 14 + rng.normal(0, 0.8, n)
    return pd.DataFrame({"age": age, "income": income, "ward": ward, "readmitted": np.where(risk > 0.8, "yes", "no")})


@pytest.fixture(scope="module")
def cohort_csv() -> bytes:
    return _cohort().to_csv(index=False).encode()


def _everything_stored(info) -> bytes:
    return b"".join(path.read_bytes() for path in Path(info.folder).iterdir())


def _sweep(workspace: Workspace, dataset: str) -> str:
    """Train baseline and dp-logreg (epsilon 1) on `dataset`; the dp-logreg run id."""
    spec = make_spec(dataset=dataset, techniques=("baseline", "dp-logreg"), epsilons=(1.0,), seeds=(0,), epochs=2)
    report = services.run(services.plan(spec, workspace), workspace, device="cpu")
    assert report.failed == 0
    runs = services.read_runs(workspace)
    return runs[(runs["dataset"] == dataset) & (runs["technique"] == "dp-logreg")]["run_id"].iloc[0]


# --- the must-show ------------------------------------------------------------------------------------------
def test_a_rare_value_in_one_row_is_never_stored_or_reported_unless_typed(cohort_csv, isolated_store):
    workspace = Workspace.at(isolated_store)
    info = services.upload(cohort_csv, "cohort.csv", UploadSchema(label="readmitted"), workspace)  # nothing declared
    assert info.dp_estimated_columns == ("age", "income", "ward") and info.data_derived_columns == ()
    assert RARE.encode() not in _everything_stored(info)  # catalogue.yaml and data.parquet (its statistics too)
    stored = pd.read_parquet(Path(info.folder) / "data.parquet")
    assert RARE not in set(stored["ward"].dropna()) and set(stored["ward"].dropna()) <= set(info.categorical["ward"])
    assert RARE not in schema_yaml(schema_of(info))
    bundle = services.export(workspace, _sweep(workspace, "cohort"))
    assert RARE not in bundle.report_html and RARE not in bundle.config_yaml
    assert "estimated with differential privacy for age, income, ward" in bundle.report_html

    typed = UploadSchema(label="readmitted", name="cohort-typed",
                         columns={"age": ColumnSchema(), "income": ColumnSchema(),
                                  "ward": ColumnSchema(categories=("north", "south", "east", RARE))})
    info = services.upload(cohort_csv, "cohort.csv", typed, workspace)
    assert info.categorical["ward"] == ["north", "south", "east", RARE] and "ward" not in info.dp_estimated_columns
    assert (pd.read_parquet(Path(info.folder) / "data.parquet")["ward"] == RARE).sum() == 1  # typed: kept
    assert RARE in schema_yaml(schema_of(info))


def test_the_data_page_never_shows_a_rare_value_nobody_typed(cohort_csv, isolated_store):
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.run()
    at.switch_page("views/data.py").run()
    at.file_uploader(key="data_upload").set_value(("cohort.csv", cohort_csv, "text/csv")).run()
    tag = next(box.key for box in at.selectbox if box.key.startswith("data_label_")).removeprefix("data_label_")
    assert at.selectbox(key=f"data_label_{tag}").value == "readmitted"
    # Typed lists start empty, never read from the rows; the DP estimate is the default for what is left empty.
    assert at.text_input(key=f"data_categories_{tag}_ward").value == ""
    editor = next(frame.value for frame in at.dataframe if "public low" in frame.value.columns)
    assert editor["column"].tolist() == ["age", "income"] and editor[["public low", "public high"]].isna().all().all()
    assert not {"smallest in file", "largest in file"} & set(editor.columns)  # nothing to copy from the rows
    assert at.radio(key=f"data_undeclared_{tag}").value == "dp"
    assert at.number_input(key=f"data_preprocessing_epsilon_{tag}").value == 0.1
    at.button(key=f"data_save_{tag}").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]

    fresh = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    fresh.run()
    fresh.switch_page("views/data.py").run()
    fresh.selectbox(key="data_dataset").set_value("cohort").run()
    assert not fresh.exception
    shown = "\n".join(str(e.value) for kind in ("markdown", "caption", "info", "warning", "error", "success", "metric")
                      for e in getattr(fresh, kind))
    shown += "\n".join(frame.value.to_csv() for frame in fresh.dataframe)
    assert "**DP-estimated** for 3 column(s): age, income, ward" in shown and "ε = 0.1" in shown
    assert RARE not in shown
    info = get_dataset_info("cohort", isolated_store.parent / "datasets")
    assert RARE.encode() not in _everything_stored(info)

    # Typed on the page, it is kept.
    at.text_input(key=f"data_categories_{tag}_ward").set_value(f"north, south, east, {RARE}").run()
    at.text_input(key=f"data_name_{tag}").set_value("cohort-typed").run()
    at.button(key=f"data_save_{tag}").click().run()
    assert not at.error, [e.value for e in at.error]
    assert get_dataset_info("cohort-typed", isolated_store.parent / "datasets").categorical["ward"][-1] == RARE


# --- the DP estimate's spend: recorded, composed into every run, verified -----------------------------------
def test_dp_bounds_spend_the_declared_epsilon_and_compose_into_decide_and_verify(cohort_csv, isolated_store):
    workspace = Workspace.at(isolated_store)
    schema = UploadSchema(label="readmitted", preprocessing_epsilon=0.5,
                          columns={"age": ColumnSchema(), "income": ColumnSchema(),
                                   "ward": ColumnSchema(categories=("north", "south", "east"))})
    info = services.upload(cohort_csv, "cohort.csv", schema, workspace)
    spent = info.preprocessing_privacy
    assert (spent["epsilon"], spent["delta"], spent["columns"]) == (0.5, 0.0, ["age", "income"])
    assert spent["epsilon_per_column"] == 0.25 and "diffprivlib" in spent["mechanism"]
    assert services.preprocessing_releases(workspace, "cohort")[0][1:] == (0.5, 0.0)

    run_id = _sweep(workspace, "cohort")
    summary = services.decide(workspace, run_id, "balanced_accuracy")
    records = services.records(workspace, dataset="cohort")
    without = compose_runs(records, delta=summary.composition.delta).epsilon
    assert summary.composition.epsilon > without + 0.3  # the 0.5 spent on the bounds is part of the figure
    assert summary.preprocessing_epsilon == 0.5 and summary.headline_epsilon == summary.composition.epsilon
    assert any("DP preprocessing" in mechanism for mechanism in summary.composition.mechanisms)
    assert "the table's DP preprocessing (ε = 0.5" in decision_sentences(summary)["search"]

    verified = services.verify(workspace, "cohort")
    ours, independent = verified.compositions["cohort"]
    assert verified.ok and verified.preprocessing == {"cohort": 0.5}
    assert ours == pytest.approx(summary.composition.epsilon, rel=1e-6) and ours > without + 0.3
    result = runner.invoke(app, ["verify", "--store", str(isolated_store)])
    assert result.exit_code == 0 and "the table's DP preprocessing (epsilon 0.5) included" in result.output


def test_a_replaced_upload_keeps_composing_the_spend_of_the_version_it_replaced(cohort_csv, isolated_store):
    workspace = Workspace.at(isolated_store)
    schema = UploadSchema(label="readmitted", columns={"age": ColumnSchema(), "ward": ColumnSchema(categories=("north",))})
    services.upload(cohort_csv, "cohort.csv", schema, workspace)
    again = services.upload(cohort_csv, "cohort.csv", schema, workspace)  # same file, same declarations: a no-op
    assert again.fingerprint == get_dataset_info("cohort", workspace.uploads_dir).fingerprint
    assert len(services.preprocessing_releases(workspace, "cohort")) == 1  # nothing spent twice
    other = _cohort(seed=8).to_csv(index=False).encode()
    with pytest.raises(DataError, match="already exists"):
        services.upload(other, "cohort.csv", schema, workspace)
    services.upload(other, "cohort.csv", schema, workspace, replace=True)
    releases = services.preprocessing_releases(workspace, "cohort")
    assert [epsilon for _, epsilon, _ in releases] == [0.1, 0.1] and "replaced version" in releases[1][0]


# --- the estimate itself -------------------------------------------------------------------------------------
@pytest.mark.parametrize("dataset, column, epsilon, covered", [
    ("german_credit", "credit_amount", 0.05, 0.9),  # 1,000 rows, 250 .. 18,424
    ("german_credit", "age_in_years", 0.05, 0.99),
    ("adult", "age", 0.02, 0.99),  # 32,561 + 16,281 rows
    ("adult", "hours-per-week", 0.02, 0.97),
])
def test_the_dp_range_covers_most_of_a_realistic_column_and_is_not_its_min_max(dataset, column, epsilon, covered):
    values = pd.read_parquet(ROOT / "datasets" / f"{dataset}.parquet")[column].to_numpy(float)
    for _ in range(5):
        low, high = dp_range(values, epsilon)
        inside = np.mean((values >= low) & (values <= high))
        assert inside >= covered, (low, high, inside)
        assert (low, high) != (values.min(), values.max())


def test_two_registrations_of_one_file_draw_different_noise(cohort_csv, isolated_store, monkeypatch):
    drawn: list[list[int]] = []
    original = dp_preprocessing.Geometric.randomise

    def recording(self, value):
        noisy = original(self, value)
        drawn[-1].append(noisy - value)
        return noisy

    monkeypatch.setattr(dp_preprocessing.Geometric, "randomise", recording)
    workspace = Workspace.at(isolated_store)
    for name in ("first", "second"):
        drawn.append([])
        services.upload(cohort_csv, "cohort.csv", UploadSchema(label="readmitted", name=name), workspace)
    assert len(drawn[0]) == len(drawn[1]) > 100 and drawn[0] != drawn[1]  # 97 buckets per column, 2 columns, ward


# --- the choice, and its strict reading -----------------------------------------------------------------------
def test_data_derived_stays_a_choice_listed_as_today(cohort_csv, isolated_store):
    result = runner.invoke(app, ["upload", "-", "--label", "readmitted"])  # not a file: one line
    assert result.exit_code == 2
    path = isolated_store.parent.parent / "cohort.csv"
    path.write_bytes(cohort_csv)
    result = runner.invoke(app, ["upload", str(path), "--label", "readmitted", "--undeclared", "data",
                                 "--store", str(isolated_store)])
    assert result.exit_code == 0 and "not covered by epsilon): age, income, ward" in result.output, result.output
    info = get_dataset_info("cohort", isolated_store.parent / "datasets")
    assert info.preprocessing_privacy is None and RARE in info.categorical["ward"]  # the user's choice, listed
    result = runner.invoke(app, ["upload", str(path), "--label", "readmitted", "--name", "cohort-dp",
                                 "--preprocessing-epsilon", "0.3", "--store", str(isolated_store)])
    assert result.exit_code == 0 and "estimated with DP (epsilon 0.3" in result.output, result.output


@pytest.mark.parametrize("values, message", [
    ({"label": "y", "undeclared": "rows"}, "undeclared must be dp"),
    ({"label": "y", "preprocessing_epsilon": 0}, "preprocessing_epsilon must be a positive number"),
    ({"label": "y", "columns": {"age": {"dp_bounds": [8, 128]}}}, "preprocessing_privacy that drew them"),
    ({"label": "y", "columns": {"age": {"bounds": [0, 1], "dp_bounds": [8, 128]}}}, "both bounds and dp_bounds"),
])
def test_schema_reads_the_choice_strictly(values, message):
    with pytest.raises(DataError, match=message):
        read_schema(values)


def test_nothing_is_prefilled_from_the_rows_in_a_validated_spec(cohort_csv):
    from engine.data.uploads.inspect import inspect_csv
    from engine.data.uploads.validate import UploadSpec, validate_upload

    frame = _cohort()
    inspection = inspect_csv(cohort_csv, "cohort.csv")
    plan = validate_upload(inspection, UploadSpec("cohort", "readmitted", "yes"))
    for column in ("age", "income"):
        assert plan.numeric[column]["nullable"] is True  # declared by policy, not read from the rows
        assert plan.numeric[column]["bounds"] != [frame[column].min(), frame[column].max()]
    data = validate_upload(inspection, dataclasses.replace(UploadSpec("cohort", "readmitted", "yes"), undeclared="data"))
    assert data.numeric["age"]["bounds"] == [frame["age"].min(), frame["age"].max()]
    assert set(data.data_derived_columns) == {"age", "income", "ward"} and data.preprocessing_privacy is None
