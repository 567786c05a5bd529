"""CSV uploads: identifier detection, data minimisation on disk, the catalogue, data-derived bounds, bad files, a sweep."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from engine.config import SweepSpec
from engine.data import dataset_names, get_dataset_info, load_dataset
from engine.data.uploads.inspect import inspect_csv
from engine.data.uploads.limits import MIN_TRAIN_PER_CLASS
from engine.data.uploads.register import delete_upload, register_upload
from engine.data.uploads.validate import UploadSpec, slugify, validate_upload
from engine.errors import ConfigError, DataError
from engine_support import make_spec, prepared_data, run_sweep

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "loan_applications.csv"
IDENTIFIERS = {"applicant_id", "full_name", "email", "phone", "national_id", "zip_code"}
FEATURES = ["age", "income", "loan_amount", "term_months", "employment_type", "home_ownership", "purpose", "credit_score"]
LOAN = UploadSpec(name="loans", label_column="defaulted", positive_class="yes")
LOAN_FROM_ROWS = UploadSpec(name="loans", label_column="defaulted", positive_class="yes", undeclared="data")


@pytest.fixture(scope="module")
def raw() -> bytes:
    return FIXTURE.read_bytes()


@pytest.fixture(scope="module")
def inspection(raw):
    return inspect_csv(raw, FIXTURE.name)


@pytest.fixture
def uploads(isolated_store) -> Path:
    return isolated_store.parent / "datasets"


def _csv(frame: pd.DataFrame) -> bytes:
    return frame.to_csv(index=False).encode("utf-8")


def _small_table(n: int = 80, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    return pd.DataFrame({"x": x.round(3), "group": rng.choice(["a", "b", "c"], n),
                         "outcome": np.where(x + rng.normal(0, 0.5, n) > 0, "bad", "good")})


# --- reading and identifier detection -----------------------------------------------------------------------
def test_the_loan_table_is_read_with_kinds_and_missing_counts(inspection):
    assert (inspection.n_rows, inspection.encoding, inspection.delimiter) == (480, "utf-8", ",")
    kinds = {p.name: p.kind for p in inspection.columns}
    assert kinds["age"] == kinds["income"] == kinds["credit_score"] == "numeric"
    assert kinds["employment_type"] == kinds["defaulted"] == "categorical"
    assert kinds["notes"] == "empty" and inspection.empty_columns == ("notes",)
    assert "notes" not in inspection.frame and any("notes" in w for w in inspection.warnings)
    missing = {p.name: p.missing for p in inspection.columns}
    assert missing["age"] > 0 and missing["income"] > 0 and missing["credit_score"] > 0  # "", NA and n/a
    assert missing["loan_amount"] == 0
    assert "Zoë" in " ".join(inspection.frame["full_name"].dropna())  # UTF-8 kept
    assert inspection.class_counts("defaulted") == {"no": 275, "yes": 205}


def test_direct_identifiers_are_flagged_with_reasons(inspection):
    flagged = inspection.suspected_identifiers
    assert set(flagged) == IDENTIFIERS, flagged
    assert "e-mail" in flagged["email"] and "phone" in flagged["phone"]
    assert "social security" in flagged["national_id"] and "personal name" in flagged["full_name"]
    assert "identifier" in flagged["applicant_id"] and "postcode" in flagged["zip_code"]
    assert set(inspection.suggested_drops) == IDENTIFIERS


def test_identifiers_are_found_by_content_when_names_say_nothing():
    n = 60
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({
        "contact": [f"person{i}@example.org" for i in range(n)],
        "ref": [f"{rng.integers(100, 899)}-{rng.integers(10, 99)}-{rng.integers(1000, 9999)}" for _ in range(n)],
        "reach": [f"+44 20 7946 {i:04d}" for i in range(n)],
        "k": np.arange(1, n + 1),
        "who": [f"Person Number{i}" for i in range(n)],
        "bank": [f"GB29 NWBK 6016 1331 {i:04d} 19" for i in range(n)],
        "measurement": rng.normal(size=n).round(4),  # all different, but a measurement
        "hospital_id": rng.choice([1, 2, 3, 4], n),  # a site code, not a person's id
        "has_email": rng.choice(["yes", "no"], n),
        "y": rng.choice(["0", "1"], n),
    })
    flagged = inspect_csv(_csv(frame), "anon.csv").suspected_identifiers
    assert set(flagged) == {"contact", "ref", "reach", "k", "who", "bank"}, flagged
    assert "e-mail" in flagged["contact"] and "social security" in flagged["ref"] and "phone" in flagged["reach"]
    assert "row or record number" in flagged["k"] and "IBAN" in flagged["bank"]


@pytest.mark.parametrize("text, delimiter", [("a;b;y\n1,5;x;0\n2,5;y;1\n", ";"), ("a\tb\ty\n1\tx\t0\n2\ty\t1\n", "\t")])
def test_semicolon_and_tab_files(text, delimiter):
    inspection = inspect_csv(text.encode(), "t.csv")
    assert inspection.delimiter == delimiter and list(inspection.frame.columns) == ["a", "b", "y"]


def test_latin1_file_is_read():
    raw = "name;ville;y\nJosé;Besançon;1\nZoë;Orléans;0\n".encode("latin-1")
    inspection = inspect_csv(raw, "fr.csv")
    assert inspection.encoding == "latin-1" and inspection.frame["ville"].tolist() == ["Besançon", "Orléans"]


BAD_FILES = [
    (b"", "empty"),
    (b"   \n\n", "empty"),
    (b"PK\x03\x04\x14\x00\x06\x00" + b"\x00" * 50, "Excel workbook"),
    (b"%PDF-1.7 whatever", "PDF"),
    (b"abc\x00\x01\x02\x03" * 100, "binary"),
    (b"age,income,y\n", "0 data row"),
    (b"age,income,y\n40,50000,1\n", "1 data row"),
    (b"just one column\n1\n2\n3\n", "Only one column"),
    (b"a,b,c\n1,,\n2,,\n3,,\n", "Only 1 column"),
    (b'a,b,y\n1,2,0\n3,4,5,6,7\n"unclosed,1,0\n', "Could not read"),
]


@pytest.mark.parametrize("raw, message", BAD_FILES, ids=[m for _, m in BAD_FILES])
def test_broken_files_give_a_clear_data_error(raw, message):
    with pytest.raises(DataError, match=message) as caught:
        inspect_csv(raw, "upload.csv")
    assert len(str(caught.value)) > 40  # says how to fix it, not just what broke


# --- validating the user's choices --------------------------------------------------------------------------
@pytest.mark.parametrize("spec, message", [
    (UploadSpec("loans", "outcome", "yes"), r"Label column 'outcome' is not in the file; its columns are applicant_id"),
    (UploadSpec("loans", "notes", "yes"), "empty in every row"),
    (UploadSpec("loans", "defaulted", "maybe"), r"Positive class 'maybe' does not occur.*'no', 'yes'"),
    (UploadSpec("loans", "defaulted", "yes", drop_columns=("defaulted",)), "label column 'defaulted' is among the columns to drop"),
    (UploadSpec("loans", "defaulted", "yes", drop_columns=tuple(FEATURES) + tuple(IDENTIFIERS)), "Nothing is left to train on"),
    (UploadSpec("loans", "defaulted", "yes", drop_columns=("nope",)), "Cannot drop 'nope'"),
    (UploadSpec("Loans!", "defaulted", "yes"), "not valid"),
    (UploadSpec("adult", "defaulted", "yes"), "bundled dataset"),
    (UploadSpec("loans", "defaulted", "yes", numeric_bounds={"age": (90, 18)}), "low < high"),
    (UploadSpec("loans", "defaulted", "yes", numeric_bounds={"purpose": (0, 1)}), "not a kept numeric column"),
    (UploadSpec("loans", "defaulted", "yes", drop_columns=("applicant_id",)), "too many different values"),
])
def test_bad_choices_give_a_clear_data_error(inspection, spec, message):
    with pytest.raises(DataError, match=message):
        validate_upload(inspection, spec)


def test_single_class_and_too_few_rows_per_class():
    table = _small_table()
    single = inspect_csv(_csv(table.assign(outcome="good")), "one.csv")
    with pytest.raises(DataError, match="single class"):
        validate_upload(single, UploadSpec("one", "outcome", "good"))
    rare = table.copy()
    rare["outcome"] = ["bad"] * 8 + ["good"] * (len(rare) - 8)
    with pytest.raises(DataError, match=rf"at least {MIN_TRAIN_PER_CLASS} training rows of each class"):
        validate_upload(inspect_csv(_csv(rare), "rare.csv"), UploadSpec("rare", "outcome", "bad"))


def test_numeric_label_rows_without_label_and_default_drops():
    table = _small_table().assign(outcome=lambda f: (f["outcome"] == "bad").astype(int))
    table["customer_email"] = [f"c{i}@bank.example" for i in range(len(table))]
    table.loc[:4, "outcome"] = None
    inspection = inspect_csv(_csv(table), "numeric label.csv")
    assert set(inspection.class_counts("outcome")) == {"0", "1"}  # whole numbers as written, not "1.0"
    plan = validate_upload(inspection, UploadSpec("numeric-label", "outcome", "1"))  # drop_columns None: suggested
    assert "customer_email" in plan.identifier_columns and "customer_email" not in plan.table
    assert len(plan.table) == len(table) - 5 and any("no value in the label" in w for w in plan.warnings)


def test_slugify():
    assert slugify("Loan Applications 2026.csv") == "loan-applications-2026"
    assert slugify("2026_export.csv") == "export" and slugify("@@.csv") == ""


# --- registering ---------------------------------------------------------------------------------------------
def test_registration_never_writes_identifiers_and_the_catalogue_sees_it(raw, inspection, uploads):
    spec = UploadSpec("loans", "defaulted", "yes", numeric_bounds={"age": (18, 100)},
                      declared_categories={"home_ownership": ("rent", "mortgage", "own")}, undeclared="data")
    info = register_upload(raw, inspection, spec, uploads_dir=uploads)
    folder = uploads / "loans"
    assert Path(info.folder) == folder
    stored = pd.read_parquet(folder / "data.parquet")
    assert sorted(stored.columns) == sorted([*FEATURES, "defaulted"])
    assert not IDENTIFIERS & set(stored.columns)
    on_disk = b"".join(path.read_bytes() for path in folder.iterdir())
    source = inspection.frame
    for column in ("email", "national_id", "phone", "full_name"):  # no identifier value anywhere on disk
        for value in source[column].head(25):
            assert value.encode() not in on_disk, (column, value)
    assert "loans" in dataset_names(uploads) and get_dataset_info("loans", uploads).origin == "uploaded"
    assert info.provenance.startswith("uploaded loan_applications.csv on ") and inspection.sha256 in info.provenance
    assert info.licence == "user-provided" and set(info.identifier_columns) == IDENTIFIERS
    assert info.numeric["age"] == {"bounds": [18.0, 100.0], "nullable": True}  # declared public
    assert all(spec["nullable"] for spec in info.numeric.values())  # every numeric column: read from no row
    assert info.categorical["home_ownership"] == ["rent", "mortgage", "own"]  # as typed

    data = load_dataset("loans", uploads)
    assert (data.n_train, len(data.y_test)) == (360, 120) and data.fingerprint == info.fingerprint
    assert data.info == info and data.subsample(100).info == info  # the entry travels with the arrays
    assert np.isfinite(data.x_train).all() and data.x_train.min() >= -1 and data.x_train.max() <= 1
    derived = set(data.data_derived_bounds)
    assert derived == set(info.data_derived_columns) == set(FEATURES) - {"age", "home_ownership"}
    assert "age=missing" in data.feature_names


def test_same_name_again_replace_and_no_stale_cache(raw, inspection, uploads):
    first = register_upload(raw, inspection, LOAN, uploads_dir=uploads)
    assert register_upload(raw, FIXTURE.name, LOAN, uploads_dir=uploads).fingerprint == first.fingerprint  # a no-op
    assert load_dataset("loans", uploads).n_train == 360
    other = pd.read_csv(io.BytesIO(raw)).head(300)
    other_raw = _csv(other)
    with pytest.raises(DataError, match="already exists.*replace"):
        register_upload(other_raw, "loans2.csv", LOAN, uploads_dir=uploads)
    replaced = register_upload(other_raw, "loans2.csv", LOAN, uploads_dir=uploads, replace=True)
    assert replaced.fingerprint != first.fingerprint
    reloaded = load_dataset("loans", uploads)
    assert reloaded.n_train == 225 and reloaded.fingerprint == replaced.fingerprint
    assert [p.name for p in uploads.iterdir()] == ["loans"]  # no staging folders left behind
    delete_upload("loans", uploads_dir=uploads)
    assert "loans" not in dataset_names(uploads)
    with pytest.raises(ConfigError, match="Unknown dataset 'loans'"):
        load_dataset("loans", uploads)
    with pytest.raises(DataError, match="not an uploaded dataset"):
        delete_upload("adult", uploads_dir=uploads)


def test_a_sweep_on_the_upload_runs_and_records_data_derived_bounds(raw, inspection, store, uploads):
    register_upload(raw, inspection, LOAN_FROM_ROWS, uploads_dir=uploads)
    spec = make_spec(dataset="loans", techniques=("baseline", "dp-sgd"), epsilons=(1.0,), seeds=(0,), epochs=10,
                     batch_size=64, accountant="rdp")
    report = run_sweep(spec, store=store, uploads_dir=uploads, device="cpu")
    assert (report.trained, report.failed) == (2, 0)
    records = {record["technique"]: record for record in store.records(dataset="loans")}
    data = prepared_data(spec, uploads)  # the rows the runs saw: training rows less the validation rows
    majority = max(data.y_test.mean(), 1 - data.y_test.mean())
    for record in records.values():
        assert record["status"] == "ok" and record["dataset_fingerprint"] == data.fingerprint
        assert set(record["data_derived_bounds"]) == set(FEATURES)  # nothing declared public
    assert records["baseline"]["accuracy"] > majority + 0.03, (records["baseline"]["accuracy"], majority)
    assert records["dp-sgd"]["epsilon"] <= 1.0
